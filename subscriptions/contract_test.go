package subscriptions

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/streamtier/durable-streams/internal/pgtest"
	"github.com/streamtier/durable-streams/migrations"
)

// reopener opens one fresh database of a backend; every call of the
// function it returns opens that same database again (a restart, or
// another node), closed when the test ends.
type reopener func(t *testing.T) func() store

// storeContract lists the tests that every backend passes unchanged: they
// define what the store's methods mean, whatever the database.
var storeContract = []struct {
	name string
	fn   func(*testing.T, func() store)
}{
	{"Keys", testStoreKeys},
	{"CreateLoad", testStoreCreateLoad},
	{"Update", testStoreUpdate},
	{"Remove", testStoreRemove},
	{"Due", testStoreDue},
	{"Lock", testStoreLock},
}

// storeBackends are the store's databases; start returns the reopener
// of one, starting whatever server it needs for the rest of the test.
var storeBackends = []struct {
	name  string
	start func(t *testing.T) reopener
}{
	{"sqlite", func(*testing.T) reopener {
		return func(t *testing.T) func() store {
			path := filepath.Join(t.TempDir(), "subscriptions.db")
			return func() store {
				return openStoreT(t, func(ctx context.Context) (store, error) { return openSQLite(ctx, path) })
			}
		}
	}},
	{"postgres", func(t *testing.T) reopener {
		srv := pgtest.Start(t)
		return func(t *testing.T) func() store {
			dsn := srv.NewDatabase(t)
			return func() store {
				return openStoreT(t, func(ctx context.Context) (store, error) { return openPostgres(ctx, dsn) })
			}
		}
	}},
}

func openStoreT(t *testing.T, open func(context.Context) (store, error)) store {
	t.Helper()
	st, err := open(context.Background())
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.close() })
	return st
}

// TestStoreContract runs the contract against every backend.
func TestStoreContract(t *testing.T) {
	for _, b := range storeBackends {
		t.Run(b.name, func(t *testing.T) {
			open := b.start(t)
			for _, tc := range storeContract {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
			}
		})
	}
}

// TestStoreFilesMatch checks that both backends' schema files describe
// the same versions under the same names.
func TestStoreFilesMatch(t *testing.T) {
	names := func(fsys fs.FS, dir string) []string {
		ms, err := fs.Glob(fsys, dir+"/*.sql")
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range ms {
			ms[i] = filepath.Base(m)
		}
		return ms
	}
	lite, pg := names(sqliteFiles, "migrations"), names(postgresFiles, "migrations/postgres")
	if !slices.Equal(lite, pg) || len(lite) == 0 {
		t.Errorf("SQLite files %v, PostgreSQL files %v: every version needs a file of the same name in both", lite, pg)
	}
}

func sampleRow(id string) *subRow {
	return &subRow{id: id, cfg: Config{Type: TypeWebhook, Pattern: "a/*", WebhookURL: "https://hook.example/x", LeaseTTLMS: 30000},
		hash: "h-" + id, baseURL: "https://streams.example/v1/stream", createdAt: time.UnixMilli(1_700_000_000_123).UTC(),
		state: state{Status: "active"},
		links: []link{{path: "a/1", glob: true, acked: "-1"}, {path: "b", explicit: true, acked: tok(5)}}}
}

func version(t *testing.T, st store) int64 {
	t.Helper()
	v, err := st.version(context.Background())
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	return v
}

func loadOne(t *testing.T, st store, id string) *subRow {
	t.Helper()
	r, err := st.loadOne(context.Background(), id)
	if err != nil {
		t.Fatalf("loadOne %s: %v", id, err)
	}
	return r
}

func testStoreKeys(t *testing.T, open func() store) {
	ctx := context.Background()
	a, b := open(), open()
	if ks, err := a.keys(ctx); err != nil || len(ks) != 0 {
		t.Fatalf("keys of a new store = %v, %v", ks, err)
	}
	first := keyRow{kid: "k1", kind: "ed25519", secret: []byte{1, 2, 3}}
	if err := a.ensureKey(ctx, first); err != nil {
		t.Fatal(err)
	}
	// A second of the same kind (another node starting) is not stored.
	if err := b.ensureKey(ctx, keyRow{kid: "k2", kind: "ed25519", secret: []byte{4}}); err != nil {
		t.Fatal(err)
	}
	if err := b.ensureKey(ctx, keyRow{kid: "token", kind: "hmac", secret: []byte{9}}); err != nil {
		t.Fatal(err)
	}
	ks, err := b.keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []keyRow{first, {kid: "token", kind: "hmac", secret: []byte{9}}}
	if !reflect.DeepEqual(ks, want) {
		t.Errorf("keys = %+v, want %+v", ks, want)
	}
}

func testStoreCreateLoad(t *testing.T, open func() store) {
	ctx := context.Background()
	st := open()
	v0 := version(t, st)
	r := sampleRow("s1")
	if err := st.create(ctx, r); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := st.create(ctx, sampleRow("s1")); !errors.Is(err, errExists) {
		t.Errorf("second create = %v, want errExists", err)
	}
	if v := version(t, st); v == v0 {
		t.Errorf("version %d unchanged by a create", v)
	}
	if err := st.create(ctx, sampleRow("s0")); err != nil {
		t.Fatal(err)
	}
	// Another process (or a restart) reads exactly what was stored.
	other := open()
	got := loadOne(t, other, "s1")
	if !reflect.DeepEqual(got, r) {
		t.Errorf("loadOne = %+v, want %+v", got, r)
	}
	if none := loadOne(t, other, "nope"); none != nil {
		t.Errorf("loadOne of an absent id = %+v", none)
	}
	all, err := other.load(ctx)
	if err != nil || len(all) != 2 || all[0].id != "s0" || !reflect.DeepEqual(all[1], r) {
		t.Errorf("load = %+v, %v", all, err)
	}
}

func testStoreUpdate(t *testing.T, open func() store) {
	ctx := context.Background()
	st := open()
	if err := st.create(ctx, sampleRow("s")); err != nil {
		t.Fatal(err)
	}
	v0 := version(t, st)
	ns := state{Status: "failed", Generation: 3, WakeID: "w_1", Snapshot: map[string]string{"b": tok(9)}, RetryCount: 2, NextTry: 1234}
	changed := []link{{path: "b", explicit: true, acked: tok(7)}, {path: "c", explicit: true, acked: tok(1)}}
	if err := st.update(ctx, "s", ns, changed, []string{"a/1"}, false); err != nil {
		t.Fatalf("update: %v", err)
	}
	if v := version(t, st); v != v0 {
		t.Errorf("version moved from %d to %d by an update of state and cursors", v0, v)
	}
	got := loadOne(t, open(), "s")
	if !reflect.DeepEqual(got.state, ns) || !reflect.DeepEqual(got.links, changed) {
		t.Errorf("after update: state %+v links %+v; want %+v %+v", got.state, got.links, ns, changed)
	}
	if err := st.update(ctx, "s", ns, nil, []string{"c"}, true); err != nil {
		t.Fatal(err)
	}
	if v := version(t, st); v == v0 {
		t.Errorf("version %d unchanged by an update of the explicit streams", v)
	}
	if err := st.update(ctx, "absent", ns, nil, nil, false); err == nil {
		t.Error("update of an absent subscription succeeded")
	}
}

func testStoreRemove(t *testing.T, open func() store) {
	ctx := context.Background()
	st := open()
	if err := st.create(ctx, sampleRow("s")); err != nil {
		t.Fatal(err)
	}
	v0 := version(t, st)
	if err := st.remove(ctx, "s"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	v1 := version(t, st)
	if v1 == v0 {
		t.Error("version unchanged by a remove")
	}
	if err := st.remove(ctx, "s"); err != nil {
		t.Errorf("remove of an absent id: %v", err)
	}
	if v := version(t, st); v != v1 {
		t.Error("version moved by removing nothing")
	}
	// Its links went with it: the id can be created again from scratch.
	r := sampleRow("s")
	r.links = r.links[:1]
	if err := st.create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := loadOne(t, st, "s"); !reflect.DeepEqual(got.links, r.links) {
		t.Errorf("links of the recreated subscription = %+v", got.links)
	}
}

func testStoreDue(t *testing.T, open func() store) {
	ctx := context.Background()
	st := open()
	states := map[string]state{
		"idle":      {Status: "active"},
		"retry":     {WakeID: "w", NextTry: 2000},
		"now":       {WakeID: "w"},
		"sending":   {WakeID: "w", SendingUntil: 5000},
		"leased":    {WakeID: "w", Delivered: true, LeaseUntil: 3000},
		"delivered": {WakeID: "w", Delivered: true},
	}
	for id, s := range states {
		if err := st.create(ctx, sampleRow(id)); err != nil {
			t.Fatal(err)
		}
		if err := st.update(ctx, id, s, nil, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		at   int64
		want []string
	}{
		{0, nil},
		{1, []string{"now"}},
		{3000, []string{"now", "retry", "leased"}},
		{9000, []string{"now", "retry", "leased", "sending"}},
	} {
		got, err := st.due(ctx, time.UnixMilli(tc.at))
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("due(%d) = %v, %v; want %v", tc.at, got, err, tc.want)
		}
	}
}

func testStoreLock(t *testing.T, open func() store) {
	ctx := context.Background()
	a, b := open(), open()
	if !a.shared() {
		// One process: the manager's mutex is the exclusion; lock only
		// returns.
		unlock, err := a.lock(ctx, "s")
		if err != nil {
			t.Fatal(err)
		}
		unlock()
		return
	}
	unlock, err := a.lock(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Bool
	done := make(chan func())
	go func() {
		u, err := b.lock(ctx, "s")
		if err != nil {
			t.Error(err)
		}
		got.Store(true)
		done <- u
	}()
	// Another id is not held up.
	if u, err := b.lock(ctx, "other"); err != nil {
		t.Fatal(err)
	} else {
		u()
	}
	time.Sleep(100 * time.Millisecond)
	if got.Load() {
		t.Fatal("a second holder got the lock while the first held it")
	}
	unlock()
	select {
	case u := <-done:
		u()
	case <-time.After(10 * time.Second):
		t.Fatal("the lock was not passed on after unlock")
	}
	// A lock whose holder's context is canceled is still released.
	cctx, cancel := context.WithCancel(ctx)
	u, err := a.lock(cctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	u()
	tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
	defer tcancel()
	if u, err := b.lock(tctx, "s"); err != nil {
		t.Fatalf("lock after a canceled holder's unlock: %v", err)
	} else {
		u()
	}
}

// TestStoreUpgradeKeepsData opens a database written by the schema's
// first version (before cluster mode) and finds its rows.
func TestStoreUpgradeKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "subscriptions.db")
	first, err := fs.Sub(sqliteFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	old := openStoreT(t, func(ctx context.Context) (store, error) {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			return nil, err
		}
		v1 := fstest.MapFS{}
		b, err := fs.ReadFile(first, "0001_subscriptions.sql")
		if err != nil {
			return nil, err
		}
		v1["0001_subscriptions.sql"] = &fstest.MapFile{Data: b}
		return &sqlStore{db: db}, migrations.ApplyFS(ctx, db, v1)
	}).(*sqlStore)
	for _, q := range []string{
		`INSERT INTO keys VALUES ('token', 'hmac', x'01', 1)`,
		`INSERT INTO subscriptions VALUES ('s', '{"type":"webhook","lease_ttl_ms":30000}', 'h', 'http://b', 1, '{"status":"active","generation":4}')`,
		`INSERT INTO links VALUES ('s', 'a/1', 0, 1, '-1')`,
	} {
		if _, err := old.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	old.close()
	st := openStoreT(t, func(ctx context.Context) (store, error) { return openSQLite(ctx, path) })
	r := loadOne(t, st, "s")
	if r == nil || r.state.Generation != 4 || len(r.links) != 1 || r.links[0] != (link{path: "a/1", glob: true, acked: "-1"}) {
		t.Fatalf("after the upgrade: %+v", r)
	}
	if ks, err := st.keys(ctx); err != nil || len(ks) != 1 || ks[0].kid != "token" {
		t.Errorf("keys after the upgrade = %+v, %v", ks, err)
	}
	if v := version(t, st); v != 0 {
		t.Errorf("version after the upgrade = %d", v)
	}
}

// Package pgtest runs a real PostgreSQL server for tests of the PostgreSQL
// catalog backend.
//
// The server binaries (initdb, postgres) are looked up in this order:
// $DS_PG_BIN (a directory), the newest /usr/lib/postgresql/<version>/bin
// (Debian's postgresql package, installed by scripts/setup.sh), then initdb
// on $PATH. When none is found the test is skipped, unless $CI is set: then
// it fails, so that a CI job missing the install step cannot pass
// unnoticed.
//
// PostgreSQL refuses to run as root. When the test runs as root (as CI
// does), initdb and postgres run as the "postgres" system user that the
// Debian package creates, on a data directory chowned to it.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/streamtier/durable-streams/internal/proctest"
)

const (
	// ReadyTimeout bounds the wait for the server to accept connections.
	ReadyTimeout = 60 * time.Second
	// stopTimeout is how long Stop waits after SIGINT (fast shutdown)
	// before SIGKILL.
	stopTimeout = 15 * time.Second
	// superuser is the role initdb creates; authentication is trust on
	// loopback only.
	superuser = "postgres"
)

// Server is a running PostgreSQL server on a loopback port, with its own
// temporary data directory.
type Server struct {
	Addr string // 127.0.0.1:<port>
	// AlsoAddr is the same port on the address of AlsoListen, "" without.
	AlsoAddr string

	also netip.Prefix // AlsoListen's address and network; invalid without

	bin     string
	dataDir string
	cred    *syscall.Credential // nil when not running as root

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  *proctest.Output
	dbs  int // databases created so far, for their names
}

// Option configures Start.
type Option func(*Server)

// AlsoListen has the server listen on p's address too (besides loopback,
// on the same port) and trust connections from p's network, e.g.
// 10.83.7.1/24 for hosts in network namespaces on a network holding
// 10.83.7.1 (internal/netnstest). Connect there with Via.
func AlsoListen(p netip.Prefix) Option { return func(s *Server) { s.also = p } }

// Start initializes a fresh cluster, runs PostgreSQL on a free loopback
// port and stops it (removing its data) when the test ends. The server is
// tuned for tests: fsync is off, so it is fast and not crash-safe.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin, tried := findBinaries()
	if bin == "" {
		msg := fmt.Sprintf("PostgreSQL server binaries not found (tried %s); run scripts/setup.sh (or set DS_PG_BIN)", strings.Join(tried, ", "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " [CI is set, so this is a failure, not a skip]")
		}
		t.Skip(msg)
	}
	s := &Server{bin: bin}
	for _, o := range opts {
		o(s)
	}
	if os.Geteuid() == 0 {
		cred, err := lookupCredential(superuser)
		if err != nil {
			t.Fatalf("pgtest: running as root needs the %q user: %v", superuser, err)
		}
		s.cred = cred
	}
	// Not t.TempDir: its parents are private to the test's user, so the
	// postgres user could not reach a directory below them.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s.dataDir = filepath.Join(dir, "data")
	if s.cred != nil {
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := s.command("initdb", "-D", s.dataDir, "-U", superuser, "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	if s.also.IsValid() {
		// initdb's -A trust covers loopback only.
		hba := fmt.Sprintf("host all all %s trust\n", s.also.Masked())
		if err := appendFile(filepath.Join(s.dataDir, "pg_hba.conf"), hba); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	t.Cleanup(s.Stop)

	// Free ports are found by binding and releasing them, so another
	// process may grab one before PostgreSQL does: retry with new ports.
	for attempt := 0; attempt < 3; attempt++ {
		s.Addr = proctest.FreeAddr(t)
		if err = s.start(); err == nil {
			return s
		}
		s.Stop()
	}
	t.Fatalf("pgtest: %v", err)
	return nil
}

// Via returns dsn (of this package's servers) with its host and port
// replaced by addr, e.g. a Server's AlsoAddr.
func Via(dsn, addr string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	u.Host = addr
	return u.String()
}

// DSN returns the connection string of database db as the superuser.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", superuser, s.Addr, db)
}

// NewDatabase creates an empty database with a fresh name and returns its
// DSN. The database goes away with the server.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.dbs++
	name := fmt.Sprintf("test_%d_%s", s.dbs, proctest.RandomHex(4))
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.DSN(name)
}

// Output returns what the server has logged so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// Stop shuts the server down (SIGINT, a fast shutdown that aborts open
// transactions; SIGKILL after 15s) and waits for it to exit. Stopping a
// stopped server is a no-op.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	proctest.Stop(cmd.Process, done, syscall.SIGINT, stopTimeout)
}

// start launches postgres and waits until it accepts connections.
func (s *Server) start() error {
	host, port, _ := net.SplitHostPort(s.Addr)
	listen := host
	if s.also.IsValid() {
		listen += "," + s.also.Addr().String()
		s.AlsoAddr = net.JoinHostPort(s.also.Addr().String(), port)
	}
	out := &proctest.Output{}
	cmd := s.command("postgres", "-D", s.dataDir,
		"-c", "listen_addresses="+listen,
		"-c", "port="+port,
		"-c", "unix_socket_directories=",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.out = cmd, done, out
	s.mu.Unlock()

	deadline := time.Now().Add(ReadyTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("postgres exited before becoming ready\npostgres output:\n%s", out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres at %s not ready after %v (last: %v)\npostgres output:\n%s", s.Addr, ReadyTimeout, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// command returns the server binary name from the binaries' directory, run
// as the postgres user when the test runs as root, with an environment
// free of PG* variables so that a developer's settings do not leak in.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Dir = os.TempDir()
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
		cmd.Env = append(cmd.Env, "HOME="+filepath.Dir(s.dataDir))
	}
	return cmd
}

// appendFile appends text to the file at path.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func lookupCredential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// findBinaries returns the directory holding initdb and postgres, or ""
// and the places tried.
func findBinaries() (string, []string) {
	if d := os.Getenv("DS_PG_BIN"); d != "" {
		if hasServer(d) {
			return d, nil
		}
		return "", []string{"$DS_PG_BIN=" + d}
	}
	tried := []string{"/usr/lib/postgresql/*/bin"}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first: "9.6" < "15" numerically.
	slices.SortFunc(dirs, func(a, b string) int { return majorOf(b) - majorOf(a) })
	for _, d := range dirs {
		if hasServer(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && hasServer(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", append(tried, "initdb on $PATH")
}

func majorOf(binDir string) int {
	v := filepath.Base(filepath.Dir(binDir))
	n, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return n
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

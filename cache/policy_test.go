package cache

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCacheControl(t *testing.T) {
	const year = 31536000
	tests := []struct {
		kind      Kind
		mode      Mode
		remaining time.Duration
		want      string
	}{
		// Hot catch-up reads: one minute, revalidate in the background.
		{CatchUp, Shared, 0, "public, max-age=60, stale-while-revalidate=300"},
		{CatchUp, Private, 0, "private, no-store"},
		{CatchUp, Shared, 30 * time.Second, "public, max-age=30, stale-while-revalidate=300"},
		{CatchUp, Private, 30 * time.Second, "private, no-store"},
		{CatchUp, Shared, 30*time.Second + 999*time.Millisecond, "public, max-age=30, stale-while-revalidate=300"},
		{CatchUp, Shared, 60 * time.Second, "public, max-age=60, stale-while-revalidate=300"},
		{CatchUp, Shared, 2 * time.Hour, "public, max-age=60, stale-while-revalidate=300"},
		{CatchUp, Shared, 500 * time.Millisecond, "public, max-age=0, stale-while-revalidate=300"},
		{CatchUp, Shared, time.Nanosecond, "public, max-age=0, stale-while-revalidate=300"},
		// Long-poll data follows the catch-up rules.
		{LongPollData, Shared, 0, "public, max-age=60, stale-while-revalidate=300"},
		{LongPollData, Private, 0, "private, no-store"},
		{LongPollData, Shared, 10 * time.Second, "public, max-age=10, stale-while-revalidate=300"},
		// Sealed chunks never change: immutable for a year unless the
		// stream expires first, when the age is clamped and "immutable"
		// is dropped.
		{SealedChunk, Shared, 0, fmt.Sprintf("public, max-age=%d, immutable", year)},
		{SealedChunk, Private, 0, "private, no-store"},
		{SealedChunk, Shared, time.Hour, "public, max-age=3600"},
		{SealedChunk, Private, time.Hour, "private, no-store"},
		{SealedChunk, Shared, 2 * 365 * 24 * time.Hour, fmt.Sprintf("public, max-age=%d", year)},
		{SealedChunk, Shared, time.Nanosecond, "public, max-age=0"},
		// Never stored.
		{NoStore, Shared, 0, "no-store"},
		{NoStore, Private, time.Hour, "no-store"},
		{LongPollEmpty, Shared, 0, "no-store"},
		{EventStream, Shared, 0, "no-cache"},
		{EventStream, Private, time.Hour, "private, no-store"},
		{Kind(99), Shared, 0, "no-store"},
	}
	for _, tc := range tests {
		name := fmt.Sprintf("%s/%s/%v", kindName[tc.kind], tc.mode, tc.remaining)
		t.Run(name, func(t *testing.T) {
			got := CacheControl(Request{Kind: tc.kind, Mode: tc.mode, Remaining: tc.remaining})
			if got != tc.want {
				t.Fatalf("CacheControl(%s) = %q, want %q", name, got, tc.want)
			}
		})
	}
}

var kindName = map[Kind]string{CatchUp: "CatchUp", SealedChunk: "SealedChunk", LongPollData: "LongPollData",
	NoStore: "NoStore", EventStream: "EventStream", LongPollEmpty: "LongPollEmpty", Kind(99): "Kind(99)"}

// TestDecide is the full rule table of docs/caching.md: each kind of
// response in each stream state, mode and access situation, with the exact
// headers it gets.
func TestDecide(t *testing.T) {
	const (
		hotPub   = "public, max-age=60, stale-while-revalidate=300"
		hotPriv  = "private, max-age=60, stale-while-revalidate=300"
		immPub   = "public, max-age=31536000, immutable"
		immPriv  = "private, max-age=31536000, immutable"
		tailPub  = "public, no-cache"
		tailPriv = "private, no-cache"
		privNone = "private, no-store"
	)
	// Stream states of a read response.
	type state struct{ sealed, upToDate, closed, empty bool }
	var (
		hotMid      = state{}                                           // open segment, more data after it
		hotTail     = state{upToDate: true}                             // data ending at the tail of an open stream
		emptyTail   = state{upToDate: true, empty: true}                // read at the tail of an open stream
		sealedMid   = state{sealed: true}                               // sealed segment, more data after it
		sealedTail  = state{sealed: true, upToDate: true}               // sealed segment that ends at the open tail
		closedTail  = state{upToDate: true, closed: true}               // final data of a closed stream
		closedEmpty = state{upToDate: true, closed: true, empty: true}  // read at the end of a closed stream
		closedSeal  = state{sealed: true, upToDate: true, closed: true} // final data, sealed by the close
	)
	// Access situations.
	type access struct{ authenticated, publicReadable, edge bool }
	var (
		open      = access{publicReadable: true}                      // no auth
		authPub   = access{authenticated: true, publicReadable: true} // token, public-read stream
		authPriv  = access{authenticated: true}                       // token, restricted stream
		anonEdge  = access{publicReadable: true, edge: true}          // edge secret configured
		authPrivE = access{authenticated: true, edge: true}           // both
		anonPriv  = access{}                                          // no credentials on a restricted stream (cannot reach a read; no credentials in play)
	)
	tests := []struct {
		name   string
		kind   Kind
		mode   Mode
		st     state
		acc    access
		cc     string
		vary   string
		cursor bool
	}{
		// Catch-up, shared mode.
		{"hot mid", CatchUp, Shared, hotMid, open, hotPub, "", false},
		{"hot tail", CatchUp, Shared, hotTail, open, hotPub, "", false},
		{"empty tail", CatchUp, Shared, emptyTail, open, tailPub, "", false},
		{"sealed mid", CatchUp, Shared, sealedMid, open, immPub, "", false},
		{"sealed kind", SealedChunk, Shared, hotMid, open, immPub, "", false},
		{"sealed tail", CatchUp, Shared, sealedTail, open, hotPub, "", false},
		{"closed tail", CatchUp, Shared, closedTail, open, immPub, "", false},
		{"closed empty", CatchUp, Shared, closedEmpty, open, immPub, "", false},
		{"closed sealed", CatchUp, Shared, closedSeal, open, immPub, "", false},
		// Catch-up, private mode: never stored, whatever the state.
		{"private hot mid", CatchUp, Private, hotMid, open, privNone, "", false},
		{"private empty tail", CatchUp, Private, emptyTail, open, privNone, "", false},
		{"private sealed mid", CatchUp, Private, sealedMid, open, privNone, "", false},
		{"private closed tail", CatchUp, Private, closedTail, open, privNone, "", false},
		// Authentication: public only when the stream is public-read.
		{"auth public-read", CatchUp, Shared, hotMid, authPub, hotPub, "", false},
		{"auth restricted", CatchUp, Shared, hotMid, authPriv, hotPriv, "Authorization", false},
		{"auth restricted sealed", CatchUp, Shared, sealedMid, authPriv, immPriv, "Authorization", false},
		{"auth restricted empty tail", CatchUp, Shared, emptyTail, authPriv, tailPriv, "Authorization", false},
		{"auth restricted private", CatchUp, Private, hotMid, authPriv, privNone, "Authorization", false},
		{"anonymous restricted", CatchUp, Shared, hotMid, anonPriv, hotPub, "", false},
		// Edge-selectable mode varies on X-Cache-Mode.
		{"edge", CatchUp, Shared, hotMid, anonEdge, hotPub, "X-Cache-Mode", false},
		{"edge private", CatchUp, Private, sealedMid, anonEdge, privNone, "X-Cache-Mode", false},
		{"edge auth restricted", CatchUp, Shared, hotMid, authPrivE, hotPriv, "Authorization, X-Cache-Mode", false},
		// Long-poll 200: like catch-up, plus a cursor.
		{"long-poll hot", LongPollData, Shared, hotTail, open, hotPub, "", true},
		{"long-poll private", LongPollData, Private, hotTail, open, privNone, "", true},
		{"long-poll sealed", LongPollData, Shared, sealedMid, open, immPub, "", true},
		{"long-poll closed", LongPollData, Shared, closedTail, open, immPub, "", true},
		{"long-poll auth restricted", LongPollData, Shared, hotTail, authPriv, hotPriv, "Authorization", true},
		{"long-poll edge", LongPollData, Shared, hotTail, anonEdge, hotPub, "X-Cache-Mode", true},
		// Long-poll 204: never stored; cursor unless the stream is closed.
		{"long-poll 204", LongPollEmpty, Shared, emptyTail, open, "no-store", "", true},
		{"long-poll 204 closed", LongPollEmpty, Shared, closedEmpty, open, "no-store", "", false},
		{"long-poll 204 auth edge", LongPollEmpty, Shared, emptyTail, authPrivE, "no-store", "", true},
		// SSE.
		{"sse", EventStream, Shared, state{}, open, "no-cache", "", false},
		{"sse private", EventStream, Private, state{}, open, privNone, "", false},
		{"sse auth restricted", EventStream, Shared, state{}, authPriv, "private, no-cache", "Authorization", false},
		{"sse edge", EventStream, Shared, state{}, anonEdge, "no-cache", "X-Cache-Mode", false},
		// offset=now, HEAD, writes, errors.
		{"no-store", NoStore, Shared, hotMid, open, "no-store", "", false},
		{"no-store sealed", NoStore, Shared, sealedMid, authPrivE, "no-store", "", false},
		{"no-store closed", NoStore, Private, closedTail, anonEdge, "no-store", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Request{Kind: tc.kind, Mode: tc.mode,
				Sealed: tc.st.sealed, UpToDate: tc.st.upToDate, Closed: tc.st.closed, Empty: tc.st.empty,
				Authenticated: tc.acc.authenticated, PublicReadable: tc.acc.publicReadable, EdgeSelectable: tc.acc.edge}
			d := Decide(r)
			if d.CacheControl != tc.cc {
				t.Errorf("Cache-Control = %q, want %q", d.CacheControl, tc.cc)
			}
			if got := strings.Join(d.Vary, ", "); got != tc.vary {
				t.Errorf("Vary = %q, want %q", got, tc.vary)
			}
			if d.Cursor != tc.cursor {
				t.Errorf("Cursor = %v, want %v", d.Cursor, tc.cursor)
			}
			if CacheControl(r) != d.CacheControl {
				t.Errorf("CacheControl and Decide disagree")
			}
		})
	}
}

// TestDecideExpiry checks that no cacheable response outlives the stream.
func TestDecideExpiry(t *testing.T) {
	tests := []struct {
		r    Request
		want string
	}{
		{Request{Kind: CatchUp, UpToDate: true, Closed: true, Remaining: 90 * time.Second}, "public, max-age=90"},
		{Request{Kind: CatchUp, Sealed: true, Remaining: 90 * time.Second, Mode: Private}, "private, no-store"},
		{Request{Kind: LongPollData, Remaining: 5 * time.Second}, "public, max-age=5, stale-while-revalidate=300"},
		{Request{Kind: CatchUp, UpToDate: true, Empty: true, Remaining: 5 * time.Second}, "public, no-cache"},
	}
	for _, tc := range tests {
		if got := Decide(tc.r).CacheControl; got != tc.want {
			t.Errorf("Decide(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

func TestDecisionApply(t *testing.T) {
	h := http.Header{}
	h.Set("Vary", "Origin, authorization")
	Decision{CacheControl: "private, no-cache", Vary: []string{"Authorization", HeaderCacheMode}}.Apply(h)
	if got := h.Get("Cache-Control"); got != "private, no-cache" {
		t.Fatalf("Cache-Control %q", got)
	}
	if got := strings.Join(h.Values("Vary"), "|"); got != "Origin, authorization|X-Cache-Mode" {
		t.Fatalf("Vary %q", got)
	}
	h = http.Header{}
	Decision{CacheControl: "no-store"}.Apply(h)
	if _, ok := h["Vary"]; ok {
		t.Fatal("no-store response got a Vary header")
	}
}

func TestPolicyModeFor(t *testing.T) {
	const secret = "s3cret-edge"
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name    string
		def     Mode
		secret  string
		h       http.Header
		want    Mode
		wantErr bool
	}{
		{"default shared", Shared, secret, hdr(), Shared, false},
		{"default private", Private, secret, hdr(), Private, false},
		{"edge picks private", Shared, secret, hdr(HeaderCacheMode, "private", HeaderEdgeSecret, secret), Private, false},
		{"edge picks shared", Private, secret, hdr(HeaderCacheMode, "Shared", HeaderEdgeSecret, secret), Shared, false},
		{"no secret presented", Shared, secret, hdr(HeaderCacheMode, "private"), Shared, false},
		{"wrong secret", Shared, secret, hdr(HeaderCacheMode, "private", HeaderEdgeSecret, "nope"), Shared, false},
		{"secret prefix", Shared, secret, hdr(HeaderCacheMode, "private", HeaderEdgeSecret, secret[:5]), Shared, false},
		{"secret with suffix", Shared, secret, hdr(HeaderCacheMode, "private", HeaderEdgeSecret, secret+"x"), Shared, false},
		{"wrong secret bad mode ignored", Shared, secret, hdr(HeaderCacheMode, "bogus", HeaderEdgeSecret, "nope"), Shared, false},
		{"edge bad mode", Shared, secret, hdr(HeaderCacheMode, "bogus", HeaderEdgeSecret, secret), Shared, true},
		{"edge public alias refused", Shared, secret, hdr(HeaderCacheMode, "public", HeaderEdgeSecret, secret), Shared, true},
		{"secret only", Private, secret, hdr(HeaderEdgeSecret, secret), Private, false},
		{"no edge configured", Shared, "", hdr(HeaderCacheMode, "private", HeaderEdgeSecret, ""), Shared, false},
		{"no edge configured bad mode", Private, "", hdr(HeaderCacheMode, "bogus"), Private, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPolicy(tc.def, tc.secret)
			if p.EdgeSelectable() != (tc.secret != "") || p.Default() != tc.def {
				t.Fatalf("EdgeSelectable %v Default %v", p.EdgeSelectable(), p.Default())
			}
			got, err := p.ModeFor(tc.h)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ModeFor error = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("ModeFor = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"shared", Shared, false},
		{"public", Shared, false},
		{"SHARED", Shared, false},
		{" private ", Private, false},
		{"Private", Private, false},
		{"", Shared, true},
		{"none", Shared, true},
		{"privat", Shared, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseMode(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseMode(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("ParseMode(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
	if Shared.String() != "shared" || Private.String() != "private" {
		t.Fatalf("Mode.String: %q %q", Shared.String(), Private.String())
	}
	for _, m := range []Mode{Shared, Private} {
		if back, err := ParseMode(m.String()); err != nil || back != m {
			t.Fatalf("ParseMode(%q) = %v, %v", m.String(), back, err)
		}
	}
}

func TestETag(t *testing.T) {
	const a, b = "0000000000000000_0000000000000000", "0000000000000001_0000000000000005"
	tests := []struct {
		id     int64
		start  string
		end    string
		closed bool
		want   string
	}{
		{7, a, b, false, `"7:` + a + `:` + b + `"`},
		{7, a, b, true, `"7:` + a + `:` + b + `:c"`},
		{1234567, b, b, false, `"1234567:` + b + `:` + b + `"`},
	}
	for _, tc := range tests {
		got := ETag(tc.id, tc.start, tc.end, tc.closed)
		if got != tc.want {
			t.Errorf("ETag(%d, %q, %q, %v) = %q, want %q", tc.id, tc.start, tc.end, tc.closed, got, tc.want)
		}
	}
	if ETag(1, a, b, false) == ETag(1, a, b, true) {
		t.Fatal("closed and open ETags must differ")
	}
	if ETag(1, a, b, false) == ETag(2, a, b, false) {
		t.Fatal("ETags of different streams must differ")
	}
}

func TestMatches(t *testing.T) {
	etag := ETag(7, "0000000000000000_0000000000000000", "0000000000000000_0000000000000003", false)
	closed := ETag(7, "0000000000000000_0000000000000000", "0000000000000000_0000000000000003", true)
	tests := []struct {
		name   string
		header string
		want   bool
	}{
		{"empty", "", false},
		{"exact", etag, true},
		{"other", `"8:x:y"`, false},
		{"unquoted", etag[1 : len(etag)-1], false},
		{"closed vs open", closed, false},
		{"weak", "W/" + etag, true},
		{"star", "*", true},
		{"star with spaces", "  *  ", true},
		{"list second", `"nope", ` + etag, true},
		{"list first", etag + `, "nope"`, true},
		{"list no space", `"nope",` + etag, true},
		{"list of weak", `W/"nope", W/` + etag, true},
		{"list without match", `"a", "b", W/"c"`, false},
		{"padded", "\t" + etag + " ", true},
		{"prefix only", etag[:len(etag)-2] + `"`, false},
		{"only commas", ",,", false},
		{"lowercase weak prefix", "w/" + etag, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Matches(tc.header, etag); got != tc.want {
				t.Fatalf("Matches(%q, %q) = %v, want %v", tc.header, etag, got, tc.want)
			}
		})
	}
}

package cluster

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// edgeScript is the nginx cluster edge's routing, which must choose as
// place does.
const edgeScript = "../deploy/nginx/durable-streams-cluster.js"

// edgeCase is one request the edge routes: its method, request URI and
// Stream-Forked-From, and the ids of the edge's nodes.
type edgeCase struct {
	Method     string   `json:"method"`
	URI        string   `json:"uri"`
	ForkedFrom string   `json:"forkedFrom,omitempty"`
	IDs        []string `json:"ids"`
}

// TestEdgeScriptPlacesAsPlace runs the edge's njs script with the njs CLI
// over many requests and node sets: for every stream request it must pick
// the node place picks for the stream path the server derives from the
// request (and a fork's creation its source's node), or none for a
// request that names no stream.
func TestEdgeScriptPlacesAsPlace(t *testing.T) {
	njs, err := exec.LookPath("njs")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("njs not found; scripts/setup.sh installs it (Debian package njs)")
		}
		t.Skip("njs not found; scripts/setup.sh installs it (Debian package njs)")
	}
	rng := rand.New(rand.NewPCG(15, 7))
	idSets := [][]string{
		{"n1"},
		{"n1", "n2"},
		{"n1", "n2", "n3"},
		{"n3", "n1", "n2"},
		{"ds-1", "ds-2", "ds-3", "ds-4", "ds-5"},
		{"node-a", "node-b", "node-c", "node-d", "node-e", "node-f", "node-g"},
		{"a", "aa", "b", "node.example:4437", "Ünicode"},
	}
	names := []string{"a", "a/b/c", "chat/room-1", "x y", "50%/off", "€uro", "日本語/ストリーム", "+plus", "a%2Fb", strings.Repeat("long/", 40)}
	for range 300 {
		names = append(names, randomName(rng))
	}
	var cases []edgeCase
	for _, ids := range idSets {
		for i, name := range names {
			uri := (&url.URL{Path: "/v1/stream/" + name}).EscapedPath()
			switch i % 4 {
			case 1:
				uri += "?offset=-1&live=long-poll"
			case 2:
				uri = escapeAll("/v1/stream/" + name)
			}
			cases = append(cases, edgeCase{Method: "GET", URI: uri, IDs: ids})
			// A fork's creation goes to its source, named by URL or path.
			src := names[(i+1)%len(names)]
			from := (&url.URL{Path: "/v1/stream/" + src}).EscapedPath()
			if i%2 == 0 {
				from = "http://edge.example:8080" + from
			}
			cases = append(cases, edgeCase{Method: "PUT", URI: uri, ForkedFrom: from, IDs: ids})
		}
		for _, uri := range []string{"/healthz", "/v1/admin/streams", "/v1/stream/", "/v1/stream/bad%zz", "/v1/streams"} {
			cases = append(cases, edgeCase{Method: "GET", URI: uri, IDs: ids})
		}
	}

	got := runEdgeScript(t, njs, cases)
	if len(got) != len(cases) {
		t.Fatalf("njs printed %d lines for %d cases", len(got), len(cases))
	}
	for i, c := range cases {
		if want := wantNode(t, c); got[i] != want {
			t.Errorf("%s %s (Stream-Forked-From %q) over %v: the edge picks %q, place %q", c.Method, c.URI, c.ForkedFrom, c.IDs, got[i], want)
		}
	}
}

// wantNode is the node place picks for the stream the server derives
// from c (api.API.stream and api.routeKey), "" if c names no stream.
func wantNode(t *testing.T, c edgeCase) string {
	t.Helper()
	u, err := url.ParseRequestURI(c.URI)
	if err != nil {
		return ""
	}
	name, ok := strings.CutPrefix(u.Path, "/v1/stream/")
	if !ok || name == "" {
		return ""
	}
	if c.ForkedFrom != "" {
		p := c.ForkedFrom
		if fu, err := url.Parse(p); err == nil && fu.Scheme != "" {
			p = fu.Path
		} else if unq, err := url.PathUnescape(p); err == nil {
			p = unq
		}
		name = strings.TrimPrefix(p, "/v1/stream/")
	}
	return place(name, c.IDs)
}

// runEdgeScript calls the script's nodeFor for each case and returns its
// answers, one per case.
func runEdgeScript(t *testing.T, njs string, cases []edgeCase) []string {
	t.Helper()
	script, err := filepath.Abs(edgeScript)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	driver := filepath.Join(t.TempDir(), "driver.js")
	src := fmt.Sprintf(`import ds from '%s';
var cases = %s;
for (var i = 0; i < cases.length; i++) {
    var c = cases[i];
    console.log(ds.nodeFor(c.method, c.uri, c.forkedFrom, c.ids) || '-');
}
`, filepath.Base(script), js)
	if err := os.WriteFile(driver, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(njs, "-p", filepath.Dir(script), driver).CombinedOutput()
	if err != nil {
		t.Fatalf("njs: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	for i, l := range lines {
		if l == "-" {
			lines[i] = ""
		}
	}
	return lines
}

// randomName is a stream path of 1 to 60 characters: letters, digits,
// punctuation, spaces, percent signs and non-ASCII runes.
func randomName(rng *rand.Rand) string {
	const ascii = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~/:@!$&'()*+,;= %"
	runes := []rune("éü€日本ßΩ😀")
	var b strings.Builder
	for range 1 + rng.IntN(60) {
		if rng.IntN(8) == 0 {
			b.WriteRune(runes[rng.IntN(len(runes))])
		} else {
			b.WriteByte(ascii[rng.IntN(len(ascii))])
		}
	}
	return b.String()
}

// escapeAll percent-encodes every byte of p but '/', a spelling of the
// same path that clients may send.
func escapeAll(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			b.WriteByte('/')
		} else {
			fmt.Fprintf(&b, "%%%02X", p[i])
		}
	}
	return b.String()
}

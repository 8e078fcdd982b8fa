package e2e

// Helpers of the edge tests (nginx_test.go): nginx started from the
// reference configuration in deploy/nginx, and a counting reverse proxy
// between nginx and the server that tells exactly which requests reached
// the origin.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// edgeReadyTimeout bounds the wait for nginx to answer through to the origin.
const edgeReadyTimeout = 15 * time.Second

// findNginx returns the nginx binary: $DS_NGINX_BIN, then nginx on $PATH,
// then /usr/sbin/nginx (Debian's package puts it there, and /usr/sbin is
// often not on an unprivileged PATH). Without one the test is skipped
// locally and fails in CI.
func findNginx(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DS_NGINX_BIN"); p != "" {
		return p
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	skipOrFatal(t, "nginx not found (DS_NGINX_BIN, PATH, /usr/sbin/nginx); scripts/setup.sh installs it")
	return ""
}

// edgeConfig holds the values of the template's placeholders that a test
// chooses; the rest (listen address, paths) come from startEdge.
type edgeConfig struct {
	secret string // ${DS_EDGE_SECRET}
	mode   string // ${DS_EDGE_CACHE_MODE}
	cache  string // ${DS_EDGE_CACHE}: "" or exact, or aggressive
	// nodes, if set, are the host:port of cluster nodes: the edge is then
	// durable-streams-cluster.conf.template with ${DS_NODE_1}... (the
	// origin argument of startEdge is not used), node i's id
	// ${DS_NODE_<i+1>_ID} being nodeID(i).
	nodes []string
}

// clusterEdgeScript is the cluster edge's njs routing, beside its template.
const clusterEdgeScript = "durable-streams-cluster.js"

// findNginxJS returns nginx's njs module (ngx_http_js_module), which the
// cluster edge needs: $DS_NGINX_JS_MODULE, else where Debian's
// libnginx-mod-http-js puts it. Without it the test is skipped locally
// and fails in CI.
func findNginxJS(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("DS_NGINX_JS_MODULE"); p != "" {
		return p
	}
	const debian = "/usr/lib/nginx/modules/ngx_http_js_module.so"
	if _, err := os.Stat(debian); err == nil {
		return debian
	}
	skipOrFatal(t, "nginx's njs module not found (DS_NGINX_JS_MODULE, %s); scripts/setup.sh installs it", debian)
	return ""
}

// edge is a running nginx built from deploy/nginx.
type edge struct {
	URL       string // http://127.0.0.1:PORT
	dir       string // nginx prefix: config, logs, temp files and cache
	accessLog string
	errorLog  string
	cmd       *exec.Cmd
	done      chan struct{}
	waitErr   error
}

// startEdge renders deploy/nginx into a temp prefix directory with origin
// (host:port) as the upstream, starts nginx in the foreground on a free
// loopback port, and waits until a request passes through it to the origin.
// It is stopped when the test ends; if the test failed its logs are shown.
func startEdge(t *testing.T, origin string, cfg edgeConfig) *edge {
	t.Helper()
	bin := findNginx(t)
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{"logs", "temp", "cache"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	e := &edge{
		URL:       fmt.Sprintf("http://127.0.0.1:%d", port),
		dir:       dir,
		accessLog: filepath.Join(dir, "logs", "access.log"),
		errorLog:  filepath.Join(dir, "logs", "error.log"),
		done:      make(chan struct{}),
	}
	vars := map[string]string{
		"DS_ORIGIN":          origin,
		"DS_EDGE_SECRET":     cfg.secret,
		"DS_EDGE_CACHE_MODE": cfg.mode,
		"DS_EDGE_CACHE":      cfg.cache,
		"NGINX_LISTEN":       fmt.Sprintf("127.0.0.1:%d", port),
		"NGINX_CACHE_DIR":    filepath.Join(dir, "cache"),
		"NGINX_ACCESS_LOG":   e.accessLog,
	}
	name := "durable-streams.conf.template"
	global := "daemon off;"
	if len(cfg.nodes) > 0 {
		name = clusterTemplate
		for i, n := range cfg.nodes {
			vars[fmt.Sprintf("DS_NODE_%d", i+1)] = n
			vars[fmt.Sprintf("DS_NODE_%d_ID", i+1)] = nodeID(i)
		}
		// The template reads its script relative to the configuration
		// directory, and needs the module loaded in the main context.
		js, err := os.ReadFile(filepath.Join(root, "deploy", "nginx", clusterEdgeScript))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, clusterEdgeScript), js, 0o644); err != nil {
			t.Fatal(err)
		}
		global += " load_module " + findNginxJS(t) + ";"
	}
	tmpl, err := os.ReadFile(filepath.Join(root, "deploy", "nginx", name))
	if err != nil {
		t.Fatal(err)
	}
	conf, err := renderTemplate(string(tmpl), vars)
	if err != nil {
		t.Fatalf("deploy/nginx/%s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "durable-streams.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	main, err := os.ReadFile(filepath.Join(root, "deploy", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	mainPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(mainPath, main, 0o644); err != nil {
		t.Fatal(err)
	}

	if os.Geteuid() == 0 {
		// As root, nginx would run its workers as nobody, who cannot
		// write the test's 0700 temp directories (CI runs as root).
		global += " user root;"
	}
	e.cmd = exec.Command(bin, "-p", dir, "-c", mainPath, "-e", e.errorLog, "-g", global)
	out, err := os.Create(filepath.Join(dir, "logs", "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	e.cmd.Stdout, e.cmd.Stderr = out, out
	e.cmd.SysProcAttr = sysProcAttr()
	if err := e.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		e.waitErr = e.cmd.Wait()
		close(e.done)
	}()
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("nginx error log:\n%s\nnginx access log (tail):\n%s", e.tail(e.errorLog), e.tail(e.accessLog))
		}
	})
	if err := e.waitReady(); err != nil {
		t.Fatalf("nginx: %v\n%s", err, e.tail(e.errorLog))
	}
	return e
}

// renderTemplate replaces the template's ${NAME} placeholders like the
// nginx image's envsubst step, and fails on any it does not know, so that a
// placeholder added to the template cannot go unnoticed here.
func renderTemplate(tmpl string, vars map[string]string) (string, error) {
	var missing []string
	out := placeholderRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no value for placeholders %v", missing)
	}
	return out, nil
}

var placeholderRE = regexp.MustCompile(`\$\{[A-Z_][A-Z0-9_]*\}`)

func (e *edge) waitReady() error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(edgeReadyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-e.done:
			return fmt.Errorf("exited before becoming ready: %v", e.waitErr)
		default:
		}
		resp, err := c.Get(e.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /healthz through nginx: %s", resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready at %s after %v: %v", e.URL, edgeReadyTimeout, last)
}

// stop ends nginx quickly (SIGTERM to the master), then its whole process
// group if it lingers.
func (e *edge) stop() {
	select {
	case <-e.done:
		return
	default:
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
		killProcess(e.cmd)
		<-e.done
	}
}

func (e *edge) tail(path string) string {
	return tailFile(path, 60, 16<<10)
}

// originCounter is a reverse proxy in front of the origin that counts the
// requests reaching it, per method and request URI. Between nginx and the
// server it measures exactly what the edge let through.
type originCounter struct {
	Addr string // 127.0.0.1:PORT, the edge's upstream

	srv *http.Server
	mu  sync.Mutex
	n   map[string]int // "GET /v1/stream/a?offset=-1" → count
}

// startOriginCounter proxies to target (the server's base URL) and stops
// when the test ends. Responses are flushed as they come, so long-poll and
// SSE pass through unchanged.
func startOriginCounter(t *testing.T, target string) *originCounter {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	oc := &originCounter{Addr: ln.Addr().String(), n: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
		},
		FlushInterval: -1,
		Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64},
		// A stopped origin is part of some tests: answer 502 quietly.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	oc.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			oc.mu.Lock()
			oc.n[r.Method+" "+r.RequestURI]++
			oc.mu.Unlock()
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := oc.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("origin counter: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = oc.srv.Shutdown(ctx)
	})
	return oc
}

// close stops the counter at once, its connections included: the edge
// finds this node down (connections refused).
func (oc *originCounter) close() { _ = oc.srv.Close() }

// count returns how many GETs of uri (path and query) reached the origin.
func (oc *originCounter) count(uri string) int {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	return oc.n["GET "+uri]
}

// countPrefix sums the GETs whose URI starts with prefix.
func (oc *originCounter) countPrefix(prefix string) int {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	total := 0
	for k, v := range oc.n {
		if strings.HasPrefix(k, "GET "+prefix) {
			total += v
		}
	}
	return total
}

// maxAge returns the max-age directive of a Cache-Control value (-1: none).
func maxAge(cc string) int {
	for _, d := range strings.Split(cc, ",") {
		d = strings.TrimSpace(strings.ToLower(d))
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return -1
}

// hasDirective reports whether Cache-Control value cc has directive d.
func hasDirective(cc, d string) bool {
	for _, p := range strings.Split(cc, ",") {
		if strings.EqualFold(strings.TrimSpace(p), d) {
			return true
		}
	}
	return false
}

// countPath counts the requests of any method for path (any query).
func (oc *originCounter) countPath(path string) int {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	total := 0
	for k, v := range oc.n {
		_, uri, _ := strings.Cut(k, " ")
		if p, _, _ := strings.Cut(uri, "?"); p == path {
			total += v
		}
	}
	return total
}

// Package miniotest runs a real MinIO server for tests of the S3 backend,
// and inspects its buckets through minio-go, an S3 client independent of
// the backend under test (see inspect.go).
//
// The minio binary is looked up in this order: $DS_MINIO_BIN, then
// <repo root>/.tools/bin/minio (installed by scripts/install-minio.sh), then
// "minio" on $PATH. When none is found the test is skipped, unless $CI is set:
// then it fails, so that a CI job missing the install step cannot pass
// unnoticed.
package miniotest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/coldstore"
	"github.com/streamtier/durable-streams/internal/proctest"
)

const (
	// ReadyTimeout bounds the wait for /minio/health/ready.
	ReadyTimeout = 30 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
)

// Server is a running MinIO server with one bucket.
type Server struct {
	Endpoint  string // "http://127.0.0.1:<port>"
	AccessKey string
	SecretKey string
	Bucket    string
	// AlsoEndpoint is "http://<AlsoListen's address>:<port>", a relay to
	// the server; "" without AlsoListen.
	AlsoEndpoint string

	also    netip.Addr // AlsoListen's address; invalid without
	bin     string
	dataDir string
	certDir string
	addr    string // 127.0.0.1:<port>
	console string // 127.0.0.1:<port>

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  *proctest.Output
}

// Option configures Start.
type Option func(*Server)

// AlsoListen makes the server reachable on addr too (AlsoEndpoint), e.g.
// the root namespace's address on the network of hosts in network
// namespaces (internal/netnstest). MinIO listens on one address, so the
// test process relays connections from addr to its loopback address; the
// relay outlives Restart.
func AlsoListen(addr netip.Addr) Option { return func(s *Server) { s.also = addr } }

// Start runs MinIO on free loopback ports with a fresh data directory, random
// credentials and an empty bucket, and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin, tried := findBinary()
	if bin == "" {
		msg := fmt.Sprintf("minio binary not found (tried %s); run scripts/install-minio.sh (or set DS_MINIO_BIN)", strings.Join(tried, ", "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " [CI is set, so this is a failure, not a skip]")
		}
		t.Skip(msg)
	}
	base := t.TempDir()
	s := &Server{
		AccessKey: "ds" + proctest.RandomHex(8),
		SecretKey: proctest.RandomHex(20),
		Bucket:    "ds-test-" + proctest.RandomHex(4),
		bin:       bin,
		dataDir:   filepath.Join(base, "data"),
		certDir:   filepath.Join(base, "certs"),
	}
	for _, o := range opts {
		o(s)
	}
	for _, d := range []string{s.dataDir, s.certDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.Stop)

	// Free ports are found by binding and releasing them, so another process
	// may grab one before MinIO does: retry with new ports.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		s.addr, s.console = proctest.FreeAddr(t), proctest.FreeAddr(t)
		s.Endpoint = "http://" + s.addr
		if err = s.start(); err == nil {
			break
		}
		s.Stop()
	}
	if err != nil {
		t.Fatalf("miniotest: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	if err := s.MakeBucket(ctx, s.Bucket); err != nil {
		t.Fatalf("miniotest: %v\nminio output:\n%s", err, s.Output())
	}
	if s.also.IsValid() {
		s.AlsoEndpoint = "http://" + proctest.Forward(t, netip.AddrPortFrom(s.also, 0).String(), s.addr)
	}
	return s
}

// S3Config returns a configuration for the S3 backend pointing at the
// server's bucket (path-style, static credentials, SDK default retries).
func (s *Server) S3Config() coldstore.S3Config {
	return coldstore.S3Config{
		Endpoint:        s.Endpoint,
		Region:          "us-east-1",
		Bucket:          s.Bucket,
		PathStyle:       true,
		AccessKeyID:     s.AccessKey,
		SecretAccessKey: s.SecretKey,
	}
}

// DataDir is the server's data directory; it survives Stop and Restart.
func (s *Server) DataDir() string { return s.dataDir }

// Output returns what the server has printed so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// Stop terminates the server (SIGTERM, then SIGKILL after 10s) and waits for
// it to exit. The data directory is kept. Stopping a stopped server is a
// no-op.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	proctest.Stop(cmd.Process, done, syscall.SIGTERM, stopTimeout)
}

// Restart stops the server and starts it again on the same address with the
// same data directory and credentials, then waits until it is ready.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	// The port was just released; retry briefly in case the bind races.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		s.Stop()
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("miniotest: restart: %v", err)
}

// start launches the process and waits for readiness.
func (s *Server) start() error {
	out := &proctest.Output{}
	cmd := exec.Command(s.bin, "server", s.dataDir,
		"--address", s.addr,
		"--console-address", s.console,
		"--certs-dir", s.certDir,
		"--quiet")
	cmd.Env = append(filteredEnv(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.out = cmd, done, out
	s.mu.Unlock()

	client := &http.Client{Timeout: 2 * time.Second}
	// Readiness is the health endpoint AND an S3 request that is not
	// answered 503 (XMinioServerNotInitialized can follow a ready health
	// check right after a restart). The S3 probe is unsigned: any answer
	// other than 503 (typically 403) means the object layer is up.
	probes := []string{s.Endpoint + "/minio/health/ready", s.Endpoint + "/" + s.Bucket + "/"}
	deadline := time.Now().Add(ReadyTimeout)
	for _, url := range probes {
		if err := s.waitFor(client, url, done, deadline, out); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) waitFor(client *http.Client, url string, done <-chan struct{}, deadline time.Time, out *proctest.Output) error {
	for {
		select {
		case <-done:
			return fmt.Errorf("minio exited before becoming ready\nminio output:\n%s", out.String())
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			health := strings.HasSuffix(url, "/health/ready")
			if (health && resp.StatusCode == http.StatusOK) || (!health && resp.StatusCode != http.StatusServiceUnavailable) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("minio at %s not ready after %v (last: %v)\nminio output:\n%s", s.addr, ReadyTimeout, statusOrErr(resp, err), out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func statusOrErr(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// filteredEnv is the environment without MINIO_* variables, so that a
// developer's MinIO settings do not leak into the test server.
func filteredEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MINIO_") {
			env = append(env, kv)
		}
	}
	return env
}

// findBinary returns the minio binary to run, or "" and the places tried.
func findBinary() (string, []string) {
	if p := os.Getenv("DS_MINIO_BIN"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", []string{"$DS_MINIO_BIN=" + p}
	}
	var tried []string
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, ".tools", "bin", "minio")
		if isExecutable(p) {
			return p, nil
		}
		tried = append(tried, p)
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	return "", append(tried, "minio on $PATH")
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// RepoRoot returns the nearest directory at or above the working directory
// that contains go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is a server process started by bench.
type server struct {
	cmdTmpl   string
	readyPath string
	dir       string
	addr      string
	baseURL   string
	cmd       *exec.Cmd
	exited    chan struct{}
	lg        *slog.Logger
}

// startServer starts cmdTmpl with a fresh data directory on a free port and
// waits until it answers HTTP.
func startServer(ctx context.Context, cmdTmpl, readyPath string, lg *slog.Logger) (*server, error) {
	dir, err := os.MkdirTemp("", "ds-bench-*")
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &server{cmdTmpl: cmdTmpl, readyPath: readyPath, dir: dir, lg: lg,
		addr: fmt.Sprintf("127.0.0.1:%d", port)}
	s.baseURL = "http://" + s.addr
	if _, err := s.start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// start runs the command and returns how long it took to answer.
func (s *server) start(ctx context.Context) (time.Duration, error) {
	line := strings.NewReplacer("{addr}", s.addr, "{port}", strings.TrimPrefix(s.addr, "127.0.0.1:"), "{dir}", s.dir).Replace(s.cmdTmpl)
	// exec keeps the shell out of the way: the pid is the server's own.
	cmd := exec.Command("/bin/sh", "-c", "exec "+line)
	logf, err := os.Create(filepath.Join(s.dir, "server.log"))
	if err != nil {
		return 0, fmt.Errorf("server log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return 0, fmt.Errorf("start %q: %w", line, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(s.exited) }()
	if err := s.waitReady(ctx, 5*time.Minute); err != nil {
		s.kill()
		return 0, fmt.Errorf("server did not become ready: %w (log: %s)", err, filepath.Join(s.dir, "server.log"))
	}
	d := time.Since(begin)
	s.lg.Debug("server ready", "addr", s.addr, "after", d)
	return d, nil
}

func (s *server) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.exited:
			return errors.New("process exited")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := c.Get(s.baseURL + s.readyPath)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("timeout")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the process to exit.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		s.kill()
	}
	s.cmd = nil
}

func (s *server) kill() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

func (s *server) close(keep bool) {
	s.stop()
	if keep {
		s.lg.Info("kept data dir", "dir", s.dir)
		return
	}
	os.RemoveAll(s.dir)
}

// memUse is a process's resident memory: all of it (VmRSS), and the part
// that is its own (RssAnon: heap, stacks), without the file pages it maps,
// which belong to the page cache and are reclaimable.
type memUse struct{ rss, anon int64 }

func (s *server) memory() (memUse, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return memUse{}, err
	}
	var m memUse
	var found int
	for _, line := range strings.Split(string(b), "\n") {
		for _, f := range []struct {
			key string
			dst *int64
		}{{"VmRSS:", &m.rss}, {"RssAnon:", &m.anon}} {
			if rest, ok := strings.CutPrefix(line, f.key); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err != nil {
					return memUse{}, fmt.Errorf("%s %w", f.key, err)
				}
				*f.dst = kb << 10
				found++
			}
		}
	}
	if found != 2 {
		return memUse{}, errors.New("no VmRSS or RssAnon")
	}
	return m, nil
}

// openFiles counts the server's file descriptors (sockets included).
func (s *server) openFiles() (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
	return len(ents), err
}

// dirBytes is the size of the server's data directory.
func (s *server) dirBytes() int64 {
	var n int64
	_ = filepath.WalkDir(s.dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

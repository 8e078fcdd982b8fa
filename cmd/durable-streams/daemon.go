package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// The files of a daemon in its state directory.
const (
	pidFileName  = "server.pid"  // the pid, one decimal line (for scripts and humans)
	infoFileName = "server.json" // daemonInfo: URL, data dir, start time, ...
	logFileName  = "server.log"  // the daemon's stdout and stderr
	lockFileName = "server.lock" // serializes start and stop
)

const (
	defaultDaemonAddr = "127.0.0.1:4437"
	// maxLogBytes is the size at which start moves server.log to
	// server.log.1, so a long-lived state directory does not grow forever.
	maxLogBytes = 16 << 20
)

// daemonInfo is what start records about the daemon it launched.
type daemonInfo struct {
	PID       int       `json:"pid"`
	URL       string    `json:"url"`
	Addr      string    `json:"addr"`
	DataDir   string    `json:"data_dir"`
	Log       string    `json:"log"`
	Args      []string  `json:"args,omitempty"` // extra serve flags
	StartedAt time.Time `json:"started_at"`
	// StartTicks is the process start time from /proc/<pid>/stat (Linux).
	// Together with the pid it names one process: a pid reused after the
	// daemon died has another start time.
	StartTicks uint64 `json:"start_ticks,omitempty"`
}

// daemon manages the background server of one state directory.
type daemon struct {
	dir string
}

func (d daemon) path(name string) string { return filepath.Join(d.dir, name) }

// defaultStateDir is $DS_STATE_DIR, else $XDG_STATE_HOME/durable-streams,
// else ~/.local/state/durable-streams.
func defaultStateDir() (string, error) {
	if v := envOr("DS_STATE_DIR", ""); v != "" {
		return filepath.Abs(v)
	}
	// The XDG spec says relative values are invalid and to be ignored.
	if x := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "durable-streams"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: %w (set DS_STATE_DIR or pass --state-dir)", err)
	}
	return filepath.Join(home, ".local", "state", "durable-streams"), nil
}

// newDaemon resolves dir ("" means the default) to an absolute path.
func newDaemon(dir string) (daemon, error) {
	if dir == "" {
		d, err := defaultStateDir()
		return daemon{dir: d}, err
	}
	d, err := filepath.Abs(dir)
	if err != nil {
		return daemon{}, fmt.Errorf("state dir: %w", err)
	}
	return daemon{dir: d}, nil
}

// lock takes the state directory's lock, waiting for another start or
// stop to finish; it creates the directory.
func (d daemon) lock(ctx context.Context) (unlock func(), err error) {
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	f, err := os.OpenFile(d.path(lockFileName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	for {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if ok {
			return func() { f.Close() }, nil // closing releases the lock
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// inspect reads the state files. It returns the running daemon's info, or
// nil and a note on what was found instead ("" when there were no files;
// otherwise the reason the files are stale).
func (d daemon) inspect() (*daemonInfo, string) {
	raw, err := os.ReadFile(d.path(pidFileName))
	if err != nil {
		return nil, ""
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return nil, fmt.Sprintf("pid file %s holds no pid", d.path(pidFileName))
	}
	info := &daemonInfo{PID: pid}
	if raw, err := os.ReadFile(d.path(infoFileName)); err == nil {
		var rec daemonInfo
		if json.Unmarshal(raw, &rec) == nil && rec.PID == pid {
			info = &rec
		}
	}
	if why := processGone(info); why != "" {
		return nil, fmt.Sprintf("stale pid file: process %d %s", pid, why)
	}
	return info, ""
}

// processGone returns why info's process is not our daemon, or "" if it
// is. On Linux it tells a reused pid apart by the start time recorded at
// launch, or, without one, by the command line.
func processGone(info *daemonInfo) string {
	if err := signalProcess(info.PID, 0); err != nil {
		if errors.Is(err, syscall.EPERM) {
			return "belongs to another user"
		}
		return "is gone"
	}
	st, err := readProcStat(info.PID)
	if err != nil {
		return "" // no /proc (not Linux): the signal test is all we have
	}
	if st.state == 'Z' || st.state == 'X' {
		return "is gone (zombie)"
	}
	if info.StartTicks != 0 {
		if st.startTicks != info.StartTicks {
			return "is another program (pid reused)"
		}
		return ""
	}
	args, err := readProcCmdline(info.PID)
	if err == nil && !isServeCommand(args) {
		return fmt.Sprintf("is another program (%s)", strings.Join(args, " "))
	}
	return ""
}

// isServeCommand reports whether args look like `durable-streams serve`.
func isServeCommand(args []string) bool {
	return len(args) >= 2 && strings.HasPrefix(filepath.Base(args[0]), "durable-streams") && args[1] == "serve"
}

type procStat struct {
	state      byte
	startTicks uint64
}

// readProcStat parses /proc/<pid>/stat; see proc(5).
func readProcStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) is in parentheses and may itself
	// contain spaces and parentheses: the fields we want follow the last ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return procStat{}, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 20 {
		return procStat{}, errors.New("bad /proc stat")
	}
	start, err := strconv.ParseUint(f[19], 10, 64) // field 22, starttime
	if err != nil || len(f[0]) != 1 {
		return procStat{}, errors.New("bad /proc stat")
	}
	return procStat{state: f[0][0], startTicks: start}, nil
}

func readProcCmdline(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), nil
}

// removeFiles deletes the pid and info files (not the log).
func (d daemon) removeFiles() {
	os.Remove(d.path(pidFileName))
	os.Remove(d.path(infoFileName))
}

// startOptions configure a daemon launch.
type startOptions struct {
	addr    string        // listen address
	dataDir string        // "" means <state dir>/data
	args    []string      // extra flags for serve
	timeout time.Duration // how long to wait for /readyz
}

// start launches the daemon unless one is running, and waits until it is
// ready. It returns the daemon's info and whether this call started it.
func (d daemon) start(ctx context.Context, o startOptions) (*daemonInfo, bool, error) {
	unlock, err := d.lock(ctx)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if info, _ := d.inspect(); info != nil {
		return info, false, nil
	}
	d.removeFiles()

	if o.addr == "" {
		o.addr = defaultDaemonAddr
	}
	baseURL, err := urlForAddr(o.addr)
	if err != nil {
		return nil, false, usageError{err}
	}
	// A busy port would only show up as a failed start in the log: probe
	// it first for a clear message.
	if ln, err := net.Listen("tcp", o.addr); err != nil {
		return nil, false, fmt.Errorf("cannot listen on %s: %w (is another server running there? choose another address with --addr or DS_ADDR)", o.addr, err)
	} else {
		ln.Close()
	}
	if o.dataDir == "" {
		o.dataDir = d.path("data")
	}
	if o.dataDir, err = filepath.Abs(o.dataDir); err != nil {
		return nil, false, fmt.Errorf("data dir: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, false, fmt.Errorf("find own executable: %w", err)
	}
	logPath := d.path(logFileName)
	if fi, err := os.Stat(logPath); err == nil && fi.Size() > maxLogBytes {
		os.Rename(logPath, logPath+".1")
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("log file: %w", err)
	}
	defer logf.Close() // the daemon has its own descriptor
	logStart, _ := logf.Seek(0, io.SeekEnd)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, false, err
	}
	defer devnull.Close()

	args := append([]string{"serve", "--addr", o.addr, "--data-dir", o.dataDir}, o.args...)
	cmd := exec.Command(exe, args...)
	cmd.Dir = d.dir // not the caller's directory, which may be unmounted later
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = detachAttr()
	if err := cmd.Start(); err != nil {
		return nil, false, fmt.Errorf("start server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // also reaps it if it dies while we wait

	info := &daemonInfo{
		PID: cmd.Process.Pid, URL: baseURL, Addr: o.addr, DataDir: o.dataDir, Log: logPath,
		Args: o.args, StartedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
	if st, err := readProcStat(info.PID); err == nil {
		info.StartTicks = st.startTicks
	}
	if err := d.writeFiles(info); err != nil {
		cmd.Process.Kill()
		return nil, false, err
	}
	if err := waitReady(ctx, baseURL, o.timeout, exited); err != nil {
		select {
		case <-exited:
		default:
			// Not ready in time: don't leave a half-started server behind.
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		d.removeFiles()
		return nil, false, fmt.Errorf("%w; server log %s:\n%s", err, logPath, logTail(logPath, logStart, 20))
	}
	return info, true, nil
}

// writeFiles writes the info file, then the pid file, each atomically, so
// a reader that finds the pid file also finds its info.
func (d daemon) writeFiles(info *daemonInfo) error {
	raw, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(d.path(infoFileName), append(raw, '\n')); err != nil {
		return err
	}
	return writeFileAtomic(d.path(pidFileName), []byte(strconv.Itoa(info.PID)+"\n"))
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// waitReady polls GET /readyz until it answers 200, the process exits or
// the timeout passes.
func waitReady(ctx context.Context, baseURL string, timeout time.Duration, exited <-chan error) error {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	last := errors.New("no answer yet")
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err != nil {
			last = err
		} else {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("GET /readyz: %s", resp.Status)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("server exited during start (%v)", err)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("server not ready after %v (last: %v); stopped it", timeout, last)
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logTail returns the last n lines of the log written since offset from.
func logTail(path string, from int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	f.Seek(from, io.SeekStart)
	raw, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// stop ends the running daemon: SIGTERM, then SIGKILL after timeout. It
// returns the stopped daemon's info, or nil if none was running.
func (d daemon) stop(ctx context.Context, timeout time.Duration) (*daemonInfo, error) {
	unlock, err := d.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	info, _ := d.inspect()
	if info == nil {
		d.removeFiles()
		return nil, nil
	}
	if err := signalProcess(info.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return nil, fmt.Errorf("signal pid %d: %w", info.PID, err)
	}
	if !waitGone(ctx, info, timeout) {
		signalProcess(info.PID, syscall.SIGKILL)
		if !waitGone(ctx, info, 10*time.Second) {
			return nil, fmt.Errorf("pid %d still running after SIGKILL", info.PID)
		}
	}
	d.removeFiles()
	return info, nil
}

// waitGone polls until info's process is gone or timeout passes.
func waitGone(ctx context.Context, info *daemonInfo, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if processGone(info) != "" {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// urlForAddr is the base URL a local client uses to reach a listen
// address; wildcard hosts are reached over loopback.
func urlForAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("bad --addr %q: %w", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("bad --addr %q: the daemon needs a fixed port", addr)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// client speaks just enough of the protocol for the workloads. It is kept
// independent of the server's packages and of client/, so that it measures
// any server the same way.
type client struct {
	streams string // URL prefix of streams, ending in /
	hc      *http.Client
}

func newClient(streams string) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 1 << 14,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &client{streams: streams, hc: &http.Client{Transport: tr}}
}

func (c *client) url(path string) string { return c.streams + path }

// do sends a request and returns status, headers and body.
func (c *client) do(ctx context.Context, method, path string, hdr map[string]string, body []byte) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), rd)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// create makes a stream with the given content type.
func (c *client) create(ctx context.Context, path, ctype string) error {
	st, _, b, err := c.do(ctx, http.MethodPut, path, map[string]string{"Content-Type": ctype}, nil)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if st != http.StatusCreated && st != http.StatusOK {
		return fmt.Errorf("create %s: status %d: %s", path, st, b)
	}
	return nil
}

// appendData posts one append and fails unless it was acknowledged.
func (c *client) appendData(ctx context.Context, path, ctype string, data []byte, extra map[string]string) error {
	hdr := map[string]string{"Content-Type": ctype}
	for k, v := range extra {
		hdr[k] = v
	}
	st, _, b, err := c.do(ctx, http.MethodPost, path, hdr, data)
	if err != nil {
		return fmt.Errorf("append %s: %w", path, err)
	}
	if st != http.StatusOK && st != http.StatusNoContent {
		return fmt.Errorf("append %s: status %d: %s", path, st, b)
	}
	return nil
}

// readAll catches up from the start to the tail, calling fn for each piece
// of the bodies as it arrives.
// It returns the number of body bytes read.
func (c *client) readAll(ctx context.Context, path string, fn func([]byte)) (int64, error) {
	off, total := "-1", int64(0)
	// A response may hold the whole stream: read it through one buffer,
	// as a streaming consumer would, rather than hold it all.
	buf := make([]byte, 1<<20)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path)+"?offset="+off, nil)
		if err != nil {
			return total, err
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return total, err
		}
		n, err := readThrough(buf, resp.Body, fn)
		resp.Body.Close()
		total += n
		if err != nil {
			return total, err
		}
		if resp.StatusCode != http.StatusOK {
			return total, fmt.Errorf("read %s at %s: status %d", path, off, resp.StatusCode)
		}
		next := resp.Header.Get("Stream-Next-Offset")
		if resp.Header.Get("Stream-Up-To-Date") == "true" || next == off || next == "" {
			return total, nil
		}
		off = next
	}
}

// readThrough reads r to its end through buf, passing each piece to fn
// (if set), and returns the number of bytes read.
func readThrough(buf []byte, r io.Reader, fn func([]byte)) (int64, error) {
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if fn != nil && n > 0 {
			fn(buf[:n])
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// tail returns the stream's current tail offset (via HEAD).
func (c *client) tail(ctx context.Context, path string) (string, error) {
	st, h, _, err := c.do(ctx, http.MethodHead, path, nil, nil)
	if err != nil {
		return "", err
	}
	if st != http.StatusOK {
		return "", fmt.Errorf("head %s: status %d", path, st)
	}
	return h.Get("Stream-Next-Offset"), nil
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) merge(ds []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, ds...)
	l.mu.Unlock()
}

// quantile returns the q-quantile (0..1) in milliseconds.
func (l *latencies) quantile(q float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	i := int(q * float64(len(l.d)-1))
	return float64(l.d[i]) / float64(time.Millisecond)
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

func itoa(n int) string { return strconv.Itoa(n) }

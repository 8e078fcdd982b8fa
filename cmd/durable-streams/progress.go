package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
)

const (
	// progressMinBytes: smaller inputs are done before a bar would help.
	progressMinBytes = 1 << 20
	// progressDelay: no bar for work that ends sooner than this.
	progressDelay   = 300 * time.Millisecond
	progressRefresh = 200 * time.Millisecond
	progressWidth   = 24
)

func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// progress draws a one-line progress bar of bytes read on a terminal. It
// is an io.Writer so it can count what an io.TeeReader passes through.
type progress struct {
	w       io.Writer
	total   int64 // -1: unknown
	done    int64
	enabled bool
	start   time.Time
	drawn   time.Time // last draw; zero if nothing is on the line
	now     func() time.Time
}

// newProgress returns a progress for total bytes (-1 if unknown), drawn on
// w only if want is set, w is a terminal and the input is large or of
// unknown size.
func newProgress(w io.Writer, total int64, want bool) *progress {
	p := &progress{w: w, total: total, now: time.Now}
	f, ok := w.(*os.File)
	p.enabled = want && ok && isTerminal(f) && (total < 0 || total >= progressMinBytes)
	p.start = p.now()
	return p
}

// Write counts len(b) bytes as done.
func (p *progress) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if !p.enabled {
		return len(b), nil
	}
	now := p.now()
	if now.Sub(p.start) >= progressDelay && now.Sub(p.drawn) >= progressRefresh {
		p.draw(now)
	}
	return len(b), nil
}

// finish draws the final state, if a bar was shown, and ends its line.
func (p *progress) finish() {
	if p.enabled && !p.drawn.IsZero() {
		p.draw(p.now())
		fmt.Fprintln(p.w)
	}
}

func (p *progress) draw(now time.Time) {
	p.drawn = now
	fmt.Fprint(p.w, "\r"+p.line(now)+"\x1b[K")
}

// line renders the bar: "[#####.....]  12.0 MiB / 40.0 MiB  30%  8.1 MiB/s".
func (p *progress) line(now time.Time) string {
	rate := ""
	if secs := now.Sub(p.start).Seconds(); secs > 0 {
		rate = fmtBytes(int64(float64(p.done)/secs)) + "/s"
	}
	if p.total <= 0 {
		return fmt.Sprintf("%s  %s", fmtBytes(p.done), rate)
	}
	frac := min(float64(p.done)/float64(p.total), 1)
	full := int(frac * progressWidth)
	bar := strings.Repeat("#", full) + strings.Repeat(".", progressWidth-full)
	return fmt.Sprintf("[%s]  %s / %s  %3.0f%%  %s", bar, fmtBytes(p.done), fmtBytes(p.total), frac*100, rate)
}

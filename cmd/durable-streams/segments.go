package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/streamtier/durable-streams/admin"
)

const segmentsUsage = `usage: durable-streams segments [--url URL] [--token TOKEN] <command> [flags]

Administers the cold segments of a running server through its admin API
(/v1/admin/).

commands:
  list     list rows of the segment index
             --stream PATH   one stream          --prefix P   streams whose path starts with P
             --state S       sealed or uploaded  --limit N    page size (default 100, at most 1000)
             --after CURSOR  continue a listing  --all        follow every page
  stats    statistics of one stream (--stream PATH), or totals of all streams
  verify   compare the index with the object store; exit status 1 unless clean
  gc       remove orphaned objects and leftovers of deleted streams;
           a dry run unless --apply

flags of every command:
  --url URL      server URL (default $DURABLE_STREAMS_URL, else http://127.0.0.1:4437)
  --token TOKEN  admin bearer token (default $DS_ADMIN_TOKEN)
  --json         print the API's JSON instead of a table
`

// adminClient calls the admin API of a running server.
type adminClient struct {
	base  string
	token string
	hc    *http.Client
}

// apiError is an error answer of the server.
type apiError struct {
	Status  int
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Message)
	switch e.Status {
	case http.StatusUnauthorized:
		msg += " (pass --token or set DS_ADMIN_TOKEN)"
	case http.StatusNotFound:
		if e.Code == "NOT_FOUND" && e.Message == "Not Found" {
			msg += " (is the admin API enabled on this server?)"
		}
	}
	return msg
}

// call sends a request and returns the body of a 2xx answer.
func (c *adminClient) call(ctx context.Context, method, path string, q url.Values) ([]byte, error) {
	rc, err := c.open(ctx, method, path, q)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return body, nil
}

// open sends a request and returns the body of a 2xx answer to read as it
// arrives; the caller closes it.
func (c *adminClient) open(ctx context.Context, method, path string, q url.Values) (io.ReadCloser, error) {
	u := c.base + "/v1/admin/" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp.Body, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	ae := &apiError{Status: resp.StatusCode}
	if json.Unmarshal(body, ae) != nil || ae.Code == "" {
		ae.Code, ae.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(body))
	}
	return nil, ae
}

// callJSON is call that decodes the answer into out.
func (c *adminClient) callJSON(ctx context.Context, method, path string, q url.Values, out any) ([]byte, error) {
	body, err := c.call(ctx, method, path, q)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return nil, fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return body, nil
}

// segmentsCmd holds the flags every segments command takes.
type segmentsCmd struct {
	url, token string
	json       bool
}

func (s *segmentsCmd) common(fs *flag.FlagSet) {
	fs.StringVar(&s.url, "url", s.url, "server URL (DURABLE_STREAMS_URL)")
	fs.StringVar(&s.token, "token", s.token, "admin bearer token (DS_ADMIN_TOKEN)")
}

func (s *segmentsCmd) client() (*adminClient, error) {
	u, err := url.Parse(s.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError{fmt.Errorf("bad --url %q: want http(s)://host[:port]", s.url)}
	}
	return &adminClient{base: strings.TrimRight(s.url, "/"), token: s.token, hc: &http.Client{}}, nil
}

func segments(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := segmentsCmd{url: envOr("DURABLE_STREAMS_URL", "http://127.0.0.1:4437"), token: envOr("DS_ADMIN_TOKEN", "")}
	top := flag.NewFlagSet("segments", flag.ContinueOnError)
	top.SetOutput(stderr)
	top.Usage = func() { fmt.Fprint(stderr, segmentsUsage) }
	cmd.common(top)
	if err := flagError(top.Parse(args)); err != nil {
		return err
	}
	if top.NArg() == 0 {
		fmt.Fprint(stderr, segmentsUsage)
		return usageError{errors.New("segments: missing command")}
	}
	name, rest := top.Arg(0), top.Args()[1:]
	if name == "help" {
		fmt.Fprint(stdout, segmentsUsage)
		return nil
	}
	fs := flag.NewFlagSet("segments "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmd.common(fs)
	fs.BoolVar(&cmd.json, "json", false, "print the API's JSON")
	var run func(context.Context, *adminClient, io.Writer) error
	switch name {
	case "list":
		var o listOpts
		fs.StringVar(&o.stream, "stream", "", "only this stream (its path)")
		fs.StringVar(&o.prefix, "prefix", "", "only streams whose path starts with this")
		fs.StringVar(&o.state, "state", "", "only segments in this state: sealed or uploaded")
		fs.IntVar(&o.limit, "limit", 0, "page size (default 100, at most 1000)")
		fs.StringVar(&o.after, "after", "", "cursor: continue after a previous page")
		fs.BoolVar(&o.all, "all", false, "follow every page")
		run = func(ctx context.Context, c *adminClient, w io.Writer) error {
			return o.run(ctx, c, w, stderr, cmd.json)
		}
	case "stats":
		var stream string
		fs.StringVar(&stream, "stream", "", "the stream's path (default: totals of all streams)")
		run = func(ctx context.Context, c *adminClient, w io.Writer) error {
			return runStats(ctx, c, w, stream, cmd.json)
		}
	case "verify":
		run = func(ctx context.Context, c *adminClient, w io.Writer) error { return runVerify(ctx, c, w, cmd.json) }
	case "gc":
		var apply bool
		fs.BoolVar(&apply, "apply", false, "delete for real (default: dry run)")
		run = func(ctx context.Context, c *adminClient, w io.Writer) error { return runGC(ctx, c, w, apply, cmd.json) }
	default:
		fmt.Fprint(stderr, segmentsUsage)
		return usageError{fmt.Errorf("segments: unknown command %q", name)}
	}
	if err := flagError(fs.Parse(rest)); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("segments %s: unexpected argument %q", name, fs.Arg(0))}
	}
	c, err := cmd.client()
	if err != nil {
		return err
	}
	if err := run(ctx, c, stdout); err != nil {
		return fmt.Errorf("segments %s: %w", name, err)
	}
	return nil
}

type listOpts struct {
	stream, prefix, state, after string
	limit                        int
	all                          bool
}

func (o *listOpts) run(ctx context.Context, c *adminClient, w, stderr io.Writer, raw bool) error {
	q := url.Values{}
	for k, v := range map[string]string{"stream": o.stream, "prefix": o.prefix, "state": o.state} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.limit != 0 {
		q.Set("limit", strconv.Itoa(o.limit))
	}
	n, next, err := listPages(ctx, c, w, pagedList[admin.Segment]{path: "segments", key: "segments", q: q,
		after: o.after, all: o.all, raw: raw, print: printSegments})
	if err != nil {
		return err
	}
	if !raw && n == 0 {
		fmt.Fprintln(stderr, "no segments")
	}
	if next != "" {
		fmt.Fprintf(stderr, "more segments: --all, or --after %s\n", next)
	}
	return nil
}

// pagedList is an admin listing answered in pages: {"<key>": [...],
// "next": "<cursor>"}.
type pagedList[T any] struct {
	path, key string // the route and the field of the items
	q         url.Values
	after     string // the cursor to start after
	all       bool   // follow every page
	raw       bool   // write the API's JSON
	print     func(w io.Writer, items []T, header bool)
}

// listPages writes a listing, following its pages with all: the API's
// JSON with raw (one document for all pages, written as they arrive),
// print's table otherwise. It returns how many items the table had and
// the cursor of the page after the last one written, if any.
func listPages[T any](ctx context.Context, c *adminClient, w io.Writer, l pagedList[T]) (n int, next string, err error) {
	if l.raw && l.all {
		fmt.Fprintf(w, `{%q:[`, l.key)
	}
	for after, first := l.after, true; ; first = false {
		if after != "" {
			l.q.Set("after", after)
		}
		var page map[string]json.RawMessage
		body, err := c.callJSON(ctx, http.MethodGet, l.path, l.q, &page)
		if err != nil {
			return n, "", err
		}
		if page[l.key] == nil {
			return n, "", fmt.Errorf("bad answer: no %q", l.key)
		}
		next = ""
		if cur, ok := page["next"]; ok {
			if err := json.Unmarshal(cur, &next); err != nil {
				return n, "", fmt.Errorf("bad answer: %w", err)
			}
		}
		switch {
		case l.raw && !l.all:
			_, err := w.Write(body)
			return n, "", err
		case l.raw:
			var items []json.RawMessage
			if err := json.Unmarshal(page[l.key], &items); err != nil {
				return n, "", fmt.Errorf("bad answer: %w", err)
			}
			for _, it := range items {
				if n > 0 {
					fmt.Fprint(w, ",")
				}
				w.Write(it)
				n++
			}
		default:
			var items []T
			if err := json.Unmarshal(page[l.key], &items); err != nil {
				return n, "", fmt.Errorf("bad answer: %w", err)
			}
			l.print(w, items, first)
			n += len(items)
		}
		if next == "" || !l.all {
			if l.raw {
				fmt.Fprintln(w, "]}")
			}
			return n, next, nil
		}
		after = next
	}
}

func printSegments(w io.Writer, segs []admin.Segment, header bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "STREAM\tID\tSEG\tSTATE\tFIRST\tEND\tMESSAGES\tBYTES\tCHECKSUM\tCREATED")
	}
	for _, g := range segs {
		name := g.Stream
		if g.StreamState == admin.StreamDeleted {
			name = "(deleted)"
		} else if g.StreamState == admin.StreamSoftDeleted {
			name += " (deleted)"
		}
		sum := "-"
		if g.State == admin.StateUploaded {
			sum = fmt.Sprintf("%08x", g.Checksum)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", name, g.StreamID, g.Seg, g.State,
			g.FirstPos, g.EndPos, g.Messages, g.Bytes, sum, g.CreatedAt.Local().Format(time.DateTime))
	}
	tw.Flush()
}

func runStats(ctx context.Context, c *adminClient, w io.Writer, stream string, raw bool) error {
	q := url.Values{}
	if stream != "" {
		q.Set("stream", stream)
	}
	var st admin.StreamStats
	var tot admin.Totals
	out := any(&tot)
	if stream != "" {
		out = &st
	}
	body, err := c.callJSON(ctx, http.MethodGet, "stats", q, out)
	if err != nil {
		return err
	}
	if raw {
		_, err := w.Write(body)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if stream == "" {
		fmt.Fprintf(tw, "streams\t%d (%d soft-deleted)\n", tot.Streams, tot.SoftDeleted)
		fmt.Fprintf(tw, "segments\t%s\n", coldSummary(tot.Cold))
		fmt.Fprintf(tw, "cold bytes\t%s\n", fmtBytes(tot.Cold.Bytes))
		fmt.Fprintf(tw, "deleted streams\t%d with index rows awaiting collection\n", tot.DeletedStreams)
		fmt.Fprintf(tw, "pending gc\t%d\n", tot.PendingGC)
		return tw.Flush()
	}
	fmt.Fprintf(tw, "stream\t%s\n", st.Path)
	fmt.Fprintf(tw, "stream id\t%d\n", st.StreamID)
	fmt.Fprintf(tw, "state\t%s\n", st.State)
	fmt.Fprintf(tw, "content type\t%s\n", st.ContentType)
	fmt.Fprintf(tw, "closed\t%t\n", st.Closed)
	if st.Tail != nil {
		fmt.Fprintf(tw, "tail\t%d (offset %s)\n", *st.Tail, st.TailOffset)
	}
	if st.Hot != nil {
		fmt.Fprintf(tw, "hot log\t%s on disk, %d messages, %s of data\n", fmtBytes(st.Hot.FileBytes), st.Hot.Rows, fmtBytes(st.Hot.DataBytes))
	}
	fmt.Fprintf(tw, "segments\t%s\n", coldSummary(st.Cold))
	fmt.Fprintf(tw, "cold bytes\t%s\n", fmtBytes(st.Cold.Bytes))
	return tw.Flush()
}

func coldSummary(cs admin.ColdStats) string {
	return fmt.Sprintf("%d (uploaded %d, sealed %d)", cs.Segments, cs.ByState[admin.StateUploaded], cs.ByState[admin.StateSealed])
}

func runVerify(ctx context.Context, c *adminClient, w io.Writer, raw bool) error {
	var rep admin.Report
	body, err := c.callJSON(ctx, http.MethodPost, "verify", nil, &rep)
	if err != nil {
		return err
	}
	if raw {
		w.Write(body)
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "objects\t%d (%s)\n", rep.Objects, fmtBytes(rep.ObjectBytes))
		fmt.Fprintf(tw, "index rows\t%d\n", rep.IndexRows)
		fmt.Fprintf(tw, "verified\t%d\n", rep.Verified)
		fmt.Fprintf(tw, "in progress\t%d\n", rep.InProgress)
		fmt.Fprintf(tw, "missing\t%d\n", rep.MissingCount)
		fmt.Fprintf(tw, "orphaned\t%d\n", rep.OrphanedCount)
		fmt.Fprintf(tw, "mismatched\t%d\n", rep.MismatchedCount)
		tw.Flush()
		if !rep.Clean {
			fmt.Fprintln(w)
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PROBLEM\tKEY\tSTREAM\tSEG\tBYTES\tREASON")
			for _, l := range []struct {
				name string
				ps   []admin.Problem
			}{{"missing", rep.Missing}, {"orphaned", rep.Orphaned}, {"mismatched", rep.Mismatched}} {
				for _, p := range l.ps {
					id, seg := "-", "-"
					if p.StreamID != 0 {
						id = strconv.FormatInt(p.StreamID, 10)
					}
					if p.Seg != nil {
						seg = strconv.FormatInt(*p.Seg, 10)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", l.name, p.Key, id, seg, p.Bytes, p.Reason)
				}
			}
			tw.Flush()
			if rep.Truncated {
				fmt.Fprintln(w, "(lists truncated; the counts above are complete)")
			}
		}
	}
	if !rep.Clean {
		return fmt.Errorf("%d missing, %d orphaned, %d mismatched", rep.MissingCount, rep.OrphanedCount, rep.MismatchedCount)
	}
	return nil
}

func runGC(ctx context.Context, c *adminClient, w io.Writer, apply, raw bool) error {
	var rep admin.GCReport
	body, err := c.callJSON(ctx, http.MethodPost, "gc", url.Values{"dry_run": {strconv.FormatBool(!apply)}}, &rep)
	if err != nil {
		return err
	}
	if raw {
		_, err := w.Write(body)
		return err
	}
	verb := "deleted"
	if rep.DryRun {
		verb = "would delete"
		fmt.Fprintln(w, "dry run: nothing was changed (--apply to delete)")
	}
	fmt.Fprintf(w, "%s %d objects (%s), %d index rows of deleted streams; %d gc queue entries finished; %d objects skipped\n",
		verb, rep.ObjectCount, fmtBytes(rep.Bytes), rep.IndexRowCount, rep.QueueCount, rep.SkippedCount)
	printGCObjects := func(title string, objs []admin.GCObject) {
		if len(objs) == 0 {
			return
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "%s\tSTREAM\tBYTES\tMODIFIED\tREASON\n", title)
		for _, o := range objs {
			id := "-"
			if o.StreamID != 0 {
				id = strconv.FormatInt(o.StreamID, 10)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", o.Key, id, o.Bytes, o.Modified.Local().Format(time.DateTime), o.Reason)
		}
		tw.Flush()
	}
	printGCObjects(strings.ToUpper(verb), rep.Objects)
	if len(rep.IndexRows) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DELETED STREAM\tINDEX ROWS")
		for _, r := range rep.IndexRows {
			fmt.Fprintf(tw, "%d\t%d\n", r.StreamID, r.Rows)
		}
		tw.Flush()
	}
	if len(rep.Queue) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GC QUEUE\tQUEUED\tHOT FILES")
		for _, q := range rep.Queue {
			fmt.Fprintf(tw, "%d\t%s\t%d\n", q.StreamID, q.QueuedAt.Local().Format(time.DateTime), len(q.HotFiles))
		}
		tw.Flush()
	}
	printGCObjects("SKIPPED", rep.Skipped)
	if rep.Truncated {
		fmt.Fprintln(w, "(lists truncated; the counts above are complete)")
	}
	return nil
}

// fmtBytes prints a byte count with a binary unit.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

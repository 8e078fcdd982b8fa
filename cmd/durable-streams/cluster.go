package main

import (
	"context"
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

const clusterUsage = `usage: durable-streams cluster status [flags]

Shows the nodes of a cluster as its shared catalog records them, through
the admin API of any node (/v1/admin/cluster): each node's advertise URL,
whether it is live (heartbeat within the node TTL), the age of its last
heartbeat, the leases it holds and the streams whose lease names it
(expired leases included: their unsealed data may be only on that node).
A single node (SQLite catalog) answers for itself.

Exit status 1 when a node is not live (streams may be unavailable), so the
command can serve as a check.

flags:
  --url URL      server URL (default $DURABLE_STREAMS_URL, else http://127.0.0.1:4437)
  --token TOKEN  admin bearer token (default $DS_ADMIN_TOKEN)
  --json         print the API's JSON instead of a table
  --node ID      list the streams this node holds leases on, with their epochs
  --limit N      page size with --node (default 100, at most 1000)
  --all          with --node: follow every page
`

func clusterCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) == 0 {
			fmt.Fprint(stderr, clusterUsage)
			return usageError{errors.New("cluster: missing command")}
		}
		fmt.Fprint(stdout, clusterUsage)
		return nil
	}
	if args[0] != "status" {
		fmt.Fprint(stderr, clusterUsage)
		return usageError{fmt.Errorf("cluster: unknown command %q", args[0])}
	}
	cmd := segmentsCmd{url: envOr("DURABLE_STREAMS_URL", "http://127.0.0.1:4437"), token: envOr("DS_ADMIN_TOKEN", "")}
	fs := flag.NewFlagSet("cluster status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, clusterUsage) }
	cmd.common(fs)
	fs.BoolVar(&cmd.json, "json", false, "print the API's JSON")
	var o leaseOpts
	fs.StringVar(&o.node, "node", "", "list this node's leases")
	fs.IntVar(&o.limit, "limit", 0, "page size with --node (default 100, at most 1000)")
	fs.BoolVar(&o.all, "all", false, "with --node: follow every page")
	if err := flagError(fs.Parse(args[1:])); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("cluster status: unexpected argument %q", fs.Arg(0))}
	}
	if o.node == "" && (o.all || o.limit != 0) {
		return usageError{errors.New("cluster status: --all and --limit need --node")}
	}
	c, err := cmd.client()
	if err != nil {
		return err
	}
	if o.node != "" {
		err = o.run(ctx, c, stdout, stderr, cmd.json)
	} else {
		err = runClusterStatus(ctx, c, stdout, cmd.json)
	}
	if err != nil {
		return fmt.Errorf("cluster status: %w", err)
	}
	return nil
}

func runClusterStatus(ctx context.Context, c *adminClient, w io.Writer, raw bool) error {
	var st admin.ClusterStatus
	body, err := c.callJSON(ctx, http.MethodGet, "cluster", nil, &st)
	if err != nil {
		return err
	}
	if raw {
		w.Write(body)
	} else {
		printClusterStatus(w, st)
	}
	var down []string
	for _, n := range st.Nodes {
		if !n.Live {
			down = append(down, n.ID)
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("%d of %d nodes not live: %s", len(down), len(st.Nodes), strings.Join(down, ", "))
	}
	return nil
}

func printClusterStatus(w io.Writer, st admin.ClusterStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tURL\tLIVE\tHEARTBEAT\tLEASES\tSTREAMS")
	for _, n := range st.Nodes {
		id, u, live, beat := n.ID, n.URL, "no", "-"
		if id == "" {
			id = "(this node)"
		}
		if n.Self {
			id += " *"
		}
		if u == "" {
			u = "-"
		}
		if n.Live {
			live = "yes"
		}
		switch {
		case n.HeartbeatAgeSeconds != nil:
			beat = time.Duration(*n.HeartbeatAgeSeconds*float64(time.Second)).Round(100*time.Millisecond).String() + " ago"
		case st.Mode == admin.ModeCluster:
			beat = "unregistered"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", id, u, live, beat, n.Leases, n.Streams)
	}
	tw.Flush()
	fmt.Fprintln(w)
	t := st.Totals
	if st.Mode == admin.ModeSingle {
		fmt.Fprintf(w, "single node (SQLite catalog): %d streams, no leases\n", t.Streams)
		return
	}
	fmt.Fprintf(w, "cluster: %d nodes, %d live (node TTL %s; * answered)\n", t.Nodes, t.LiveNodes,
		time.Duration(st.NodeTTLSeconds*float64(time.Second)))
	fmt.Fprintf(w, "streams: %d, %d leased, %d with an expired lease, %d without a holder\n",
		t.Streams, t.Leased, t.Expired, t.Streams-t.Leased-t.Expired)
}

type leaseOpts struct {
	node  string
	limit int
	all   bool
}

func (o *leaseOpts) run(ctx context.Context, c *adminClient, w, stderr io.Writer, raw bool) error {
	q := url.Values{"node": {o.node}}
	if o.limit != 0 {
		q.Set("limit", strconv.Itoa(o.limit))
	}
	n, next, err := listPages(ctx, c, w, pagedList[admin.NodeLease]{path: "cluster", key: "leases", q: q,
		all: o.all, raw: raw, print: printLeases})
	if err != nil {
		return err
	}
	if !raw && n == 0 {
		fmt.Fprintf(stderr, "no leases name node %q\n", o.node)
	}
	if next != "" {
		fmt.Fprintln(stderr, "more leases: --all")
	}
	return nil
}

func printLeases(w io.Writer, ls []admin.NodeLease, header bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "STREAM\tID\tEPOCH\tHELD\tEXPIRES")
	}
	for _, l := range ls {
		held := "no"
		if l.Held {
			held = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", l.Stream, l.StreamID, l.Epoch, held, l.ExpiresAt.Local().Format(time.DateTime))
	}
	tw.Flush()
}

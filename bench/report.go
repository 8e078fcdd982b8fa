package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// report reads result lines (-json output of several runs and targets) and
// prints a Markdown table of medians with the ratio of two targets.
func report(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ours := fs.String("ours", "ours", "target label of this server")
	peer := fs.String("peer", "node", "target label of the peer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	type key struct{ workload, metric string }
	samples := map[key]map[string][]float64{}
	units := map[key]string{}
	var order []key
	for _, name := range fs.Args() {
		if err := readResults(name, func(r result) {
			k := key{r.Workload, r.Metric}
			if samples[k] == nil {
				samples[k] = map[string][]float64{}
				order = append(order, k)
			}
			samples[k][r.Target] = append(samples[k][r.Target], r.Value)
			units[k] = r.Unit
		}); err != nil {
			return err
		}
	}
	slices.SortStableFunc(order, func(a, b key) int {
		wa, wb := workloads[a.workload].order, workloads[b.workload].order
		return wa - wb
	})
	fmt.Fprintf(stdout, "| workload | metric | unit | %s | %s | %s / %s |\n|---|---|---|---:|---:|---:|\n", *ours, *peer, *ours, *peer)
	for _, k := range order {
		o, okO := median(samples[k][*ours])
		p, okP := median(samples[k][*peer])
		ratio := "n/a"
		// A ratio of signed quantities (e.g. ack_to_recv, which can be
		// negative) means nothing.
		if okO && okP && o > 0 && p > 0 {
			ratio = fmt.Sprintf("%.2f×", o/p)
		}
		fmt.Fprintf(stdout, "| %s | %s | %s | %s | %s | %s |\n", k.workload, k.metric, units[k], cell(o, okO), cell(p, okP), ratio)
	}
	return nil
}

func readResults(name string, fn func(result)) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("report: %s: %w", name, err)
		}
		fn(r)
	}
	return sc.Err()
}

func median(v []float64) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

func cell(v float64, ok bool) string {
	switch {
	case !ok:
		return "–"
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

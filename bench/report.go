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
// prints a Markdown table of medians with the ratio of this server to each
// peer.
func report(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ours := fs.String("ours", "ours", "target label of this server")
	peerList := fs.String("peer", "node", "target labels of the peers, comma-separated (one ratio column each)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	peers := strings.Split(*peerList, ",")
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
	head := []string{"workload", "metric", "unit", *ours}
	rule := []string{"---", "---", "---", "---:"}
	for _, p := range peers {
		head, rule = append(head, p), append(rule, "---:")
	}
	for _, p := range peers {
		head, rule = append(head, *ours+" / "+p), append(rule, "---:")
	}
	fmt.Fprintf(stdout, "| %s |\n|%s|\n", strings.Join(head, " | "), strings.Join(rule, "|"))
	for _, k := range order {
		o, okO := median(samples[k][*ours])
		row := []string{k.workload, k.metric, units[k], cell(o, okO)}
		var ratios []string
		for _, peer := range peers {
			p, okP := median(samples[k][peer])
			row = append(row, cell(p, okP))
			ratio := "n/a"
			// A ratio of signed quantities (e.g. ack_to_recv, which can
			// be negative) means nothing.
			if okO && okP && o > 0 && p > 0 {
				ratio = fmt.Sprintf("%.2f×", o/p)
			}
			ratios = append(ratios, ratio)
		}
		fmt.Fprintf(stdout, "| %s |\n", strings.Join(append(row, ratios...), " | "))
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

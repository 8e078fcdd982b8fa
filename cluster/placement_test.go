package cluster

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func testPaths(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("tenant-%d/stream/%d", i%37, i)
	}
	return out
}

func TestPlaceDeterministic(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	rev := slices.Clone(nodes)
	slices.Reverse(rev)
	for _, p := range testPaths(1000) {
		if a, b := place(p, nodes), place(p, rev); a != b || a == "" {
			t.Fatalf("place(%q) = %q with one node order, %q with another", p, a, b)
		}
	}
	if got := place("x", nil); got != "" {
		t.Errorf("place over no nodes = %q, want \"\"", got)
	}
	if got := place("x", []string{"only"}); got != "only" {
		t.Errorf("place over one node = %q, want it", got)
	}
}

// TestPlaceBalance: each node gets its share of many paths, within a few
// standard deviations of the binomial spread.
func TestPlaceBalance(t *testing.T) {
	paths := testPaths(30000)
	for _, n := range []int{2, 3, 5, 8} {
		var nodes []string
		for i := range n {
			nodes = append(nodes, fmt.Sprintf("node-%d", i))
		}
		count := map[string]int{}
		for _, p := range paths {
			count[place(p, nodes)]++
		}
		mean := float64(len(paths)) / float64(n)
		sd := math.Sqrt(mean * (1 - 1/float64(n)))
		for _, node := range nodes {
			if d := math.Abs(float64(count[node]) - mean); d > 5*sd {
				t.Errorf("%d nodes: %s got %d paths, want %.0f ± %.0f", n, node, count[node], mean, 5*sd)
			}
		}
	}
}

// TestPlaceMinimalMovement: a node joining takes paths only from the
// others (about 1/n of them), and a node leaving gives away only its own.
func TestPlaceMinimalMovement(t *testing.T) {
	paths := testPaths(20000)
	before := []string{"a", "b", "c", "d"}
	after := append(slices.Clone(before), "e")
	moved := 0
	for _, p := range paths {
		x, y := place(p, before), place(p, after)
		if x != y {
			moved++
			if y != "e" {
				t.Fatalf("%q moved from %s to %s when e joined", p, x, y)
			}
		}
	}
	if share := float64(moved) / float64(len(paths)); share < 0.17 || share > 0.23 {
		t.Errorf("a fifth node took %.3f of the paths, want about 0.2", share)
	}
	without := []string{"a", "c", "d"}
	for _, p := range paths {
		x, y := place(p, before), place(p, without)
		if x != y && x != "b" {
			t.Fatalf("%q moved from %s to %s when b left", p, x, y)
		}
	}
}

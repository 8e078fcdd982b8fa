package cluster

import (
	"hash/fnv"
)

// Placement of streams without a live owner is rendezvous (highest random
// weight) hashing: every node scores every stream path with a hash of the
// pair, and the highest score wins. All nodes that agree on the live set
// agree on the choice without talking to each other, and when a node joins
// or leaves, only the streams it wins or won move (about 1/n of them),
// unlike modulo hashing which moves almost all.

// place returns the node of nodes that rendezvous hashing picks for path;
// "" if nodes is empty. Ties (64-bit collisions) go to the smaller id so
// the choice never depends on the order of nodes.
func place(path string, nodes []string) string {
	var best string
	var bestScore uint64
	for _, n := range nodes {
		s := score(n, path)
		if best == "" || s > bestScore || (s == bestScore && n < best) {
			best, bestScore = n, s
		}
	}
	return best
}

// score is node's weight for path: FNV-1a of node, a separator no id
// holds, and path, then a 64-bit finalizer (SplitMix64's) so that inputs
// differing in their last bytes still spread over the whole range.
func score(node, path string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(path))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

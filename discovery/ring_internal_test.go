package discovery

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"testing"
)

// TestRingIndexMatchesBinarySearch checks the ring's slot index against a plain binary search.
func TestRingIndexMatchesBinarySearch(t *testing.T) {
	for _, n := range []int{1, 2, 5, 33} {
		eps := make([]*Endpoint, n)
		for i := range eps {
			eps[i] = NewEndpoint(Instance{Address: "10.1.0." + strconv.Itoa(i), Port: 80, Weight: i%3 + 1})
		}
		p := ConsistentHash(func(*http.Request) string { return "" }).NewPicker(eps).(*hashPicker)
		probe := func(h uint64) {
			want, _ := slices.BinarySearch(p.hashes, h)
			if want == len(p.hashes) {
				want = 0
			}
			if got := p.lookup(h); got != p.owners[want] {
				t.Fatalf("n=%d hash %x: lookup finds %s, binary search %s", n, h, got.HostPort(), p.owners[want].HostPort())
			}
		}
		for _, h := range append(slices.Clone(p.hashes), 0, 1, ^uint64(0)) {
			probe(h)
			probe(h + 1)
			probe(h - 1)
		}
		for range 100000 {
			probe(rand.Uint64())
		}
	}
}

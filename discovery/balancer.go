package discovery

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Balancer builds Pickers. A Proxy calls NewPicker every time its set of routable endpoints
// changes (instances added or removed, ejected or readmitted) and uses the Picker until the next
// change. Implementations must be safe for concurrent use.
type Balancer interface {
	// NewPicker returns a Picker over endpoints, which is non-empty and never modified afterwards.
	NewPicker(endpoints []*Endpoint) Picker
}

// Picker chooses the endpoint for one request. Pick is called concurrently on the request path:
// it should not allocate or block. It returns nil only when it has nothing to pick, which the
// Proxy answers with 503.
type Picker interface {
	Pick(r *http.Request) *Endpoint
}

// RoundRobin returns a balancer that cycles through the endpoints in order, ignoring weights.
// Over any k*N consecutive picks of one Picker every endpoint is chosen exactly k times. Safe for
// concurrent use; a pick is one atomic increment.
func RoundRobin() Balancer { return roundRobin{} }

type roundRobin struct{}

func (roundRobin) NewPicker(eps []*Endpoint) Picker { return &cyclePicker{eps: eps} }

type cyclePicker struct {
	next atomicCounter
	eps  []*Endpoint
}

func (p *cyclePicker) Pick(*http.Request) *Endpoint {
	n := p.next.v.Add(1) - 1
	return p.eps[n%uint64(len(p.eps))]
}

// WeightedRoundRobin returns a balancer that gives each endpoint a share of requests proportional
// to its Instance.Weight, interleaved smoothly (the nginx "smooth weighted round robin" order,
// precomputed, so a pick is one atomic increment). Weights are reduced by their greatest common
// divisor; when they still sum to more than 4096 they are scaled down, keeping every endpoint at
// least weight 1. Safe for concurrent use.
func WeightedRoundRobin() Balancer { return weightedRoundRobin{} }

type weightedRoundRobin struct{}

const maxWRRSchedule = 4096

func (weightedRoundRobin) NewPicker(eps []*Endpoint) Picker {
	w := make([]int, len(eps))
	g, total := 0, 0
	for i, e := range eps {
		w[i] = e.weight
		g = gcd(g, w[i])
	}
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total > maxWRRSchedule {
		scaled := 0
		for i := range w {
			w[i] = max(1, w[i]*maxWRRSchedule/total)
			scaled += w[i]
		}
		total = scaled
	}
	sched := make([]*Endpoint, 0, total)
	cur := make([]int, len(eps))
	for range total {
		best := 0
		for i := range cur {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		sched = append(sched, eps[best])
	}
	return &cyclePicker{eps: sched}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// P2C returns a least-requests balancer using the power of two choices: it samples two distinct
// endpoints at random and picks the one with fewer requests in flight per unit of weight (ties go
// to the first sample). It adapts to slow instances without a global scan. Safe for concurrent use.
func P2C() Balancer { return p2c{} }

type p2c struct{}

func (p2c) NewPicker(eps []*Endpoint) Picker { return &p2cPicker{eps: eps} }

type p2cPicker struct{ eps []*Endpoint }

func (p *p2cPicker) Pick(*http.Request) *Endpoint {
	n := uint32(len(p.eps))
	if n == 1 {
		return p.eps[0]
	}
	r := rand.Uint64()
	i := uint32(r) % n
	j := uint32(r>>32) % (n - 1)
	if j >= i {
		j++
	}
	a, b := p.eps[i], p.eps[j]
	if b.inflight.Load()*int64(a.weight) < a.inflight.Load()*int64(b.weight) {
		return b
	}
	return a
}

// HashKey extracts the key a consistent-hash balancer routes on. It returns "" when the request
// has none. It must be safe for concurrent use and should not allocate.
type HashKey func(r *http.Request) string

// ConsistentHash returns a balancer that sends every request with the same key to the same
// endpoint, for sticky routing: a ring of virtual nodes (100 per unit of relative weight, at most
// 1000 per endpoint) placed by the xxhash of each instance's ID, so that adding or removing one of
// N instances moves only about 1/N of the keys, and gateway replicas agree on the placement.
// Requests without a key are spread at random. Safe for concurrent use if key is. A nil key is
// refused by WithBalancer.
func ConsistentHash(key HashKey) Balancer { return consistentHash{key: key} }

type consistentHash struct{ key HashKey }

func (b consistentHash) validate() error {
	if b.key == nil {
		return errors.New("discovery: ConsistentHash: key function is nil")
	}
	return nil
}

const vnodesPerWeight = 100

func (b consistentHash) NewPicker(eps []*Endpoint) Picker {
	minW := eps[0].weight
	for _, e := range eps {
		minW = min(minW, e.weight)
	}
	type vnode struct {
		h uint64
		e *Endpoint
	}
	var ring []vnode
	for _, e := range eps {
		n := min(vnodesPerWeight*e.weight/minW, 10*vnodesPerWeight)
		id := e.inst.key()
		buf := make([]byte, 0, len(id)+8)
		for i := range n {
			buf = strconv.AppendInt(append(append(buf[:0], id...), '#'), int64(i), 10)
			ring = append(ring, vnode{h: xxhash.Sum64(buf), e: e})
		}
	}
	slices.SortFunc(ring, func(x, y vnode) int {
		switch {
		case x.h < y.h:
			return -1
		case x.h > y.h:
			return 1
		}
		return 0
	})
	p := &hashPicker{key: b.key, eps: eps, hashes: make([]uint64, len(ring)), owners: make([]*Endpoint, len(ring))}
	for i, v := range ring {
		p.hashes[i], p.owners[i] = v.h, v.e
	}
	// An index over the ring by the top bits of the hash, about one slot per virtual node, so a
	// lookup scans a handful of entries instead of binary-searching the whole ring.
	bits := 1
	for 1<<bits < len(ring) {
		bits++
	}
	p.shift = uint(64 - bits)
	p.index = make([]uint32, 1<<bits+1)
	j := 0
	for slot := range 1 << bits {
		for j < len(ring) && p.hashes[j]>>p.shift < uint64(slot) {
			j++
		}
		p.index[slot] = uint32(j)
	}
	p.index[1<<bits] = uint32(len(ring))
	return p
}

type hashPicker struct {
	key    HashKey
	eps    []*Endpoint
	hashes []uint64    // sorted virtual node positions
	owners []*Endpoint // owners[i] owns hashes[i]
	index  []uint32    // index[s] = first i with hashes[i]>>shift >= s
	shift  uint
}

func (p *hashPicker) Pick(r *http.Request) *Endpoint {
	k := p.key(r)
	if k == "" {
		return p.eps[rand.Uint64()%uint64(len(p.eps))]
	}
	return p.lookup(xxhash.Sum64String(k))
}

// lookup returns the owner of the first virtual node at or after h on the ring.
func (p *hashPicker) lookup(h uint64) *Endpoint {
	slot := h >> p.shift
	i, end := int(p.index[slot]), int(p.index[slot+1])
	for i < end && p.hashes[i] < h {
		i++
	}
	if i == len(p.hashes) {
		i = 0
	}
	return p.owners[i]
}

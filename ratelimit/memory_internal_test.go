package ratelimit

import (
	"math/rand/v2"
	"testing"
)

// checkShard verifies the table's invariants against model: every key is found where its value
// is, every occupied slot is reachable from its home slot, and n counts the occupied slots.
func checkShard(t *testing.T, sh *memShard, model map[uint64]int64) {
	t.Helper()
	occupied := 0
	for i, e := range sh.tab {
		if e.key == 0 {
			continue
		}
		occupied++
		if got := sh.find(e.key); got != i {
			t.Fatalf("key %#x at slot %d found at %d", e.key, i, got)
		}
	}
	if occupied != sh.n || sh.n != len(model) {
		t.Fatalf("occupied %d, n %d, model %d", occupied, sh.n, len(model))
	}
	if len(sh.tab) > 0 && sh.n > len(sh.tab)*3/4 {
		t.Fatalf("table %d slots holds %d keys: over three-quarters full", len(sh.tab), sh.n)
	}
	for k, v := range model {
		i := sh.find(k)
		if i < 0 || sh.tab[i].st.a != v {
			t.Fatalf("key %#x: slot %d, want value %d", k, i, v)
		}
	}
}

// TestMemShardTableModel drives one shard's table with random inserts, updates and deletions
// (keys crowded into few home slots, so probe runs wrap and backward shifts happen) and checks it
// against a map after every step.
func TestMemShardTableModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const maxSlots = 256
	sh := &memShard{logs: map[uint64]*logEntry{}}
	model := map[uint64]int64{}
	deletes := 0
	for step := range 20000 {
		// low bits from a narrow range: long clusters; high bits vary so keys differ
		k := uint64(rng.IntN(4))<<56 | uint64(rng.IntN(80))<<8 | uint64(248+rng.IntN(8)) // 2,560 keys
		if rng.IntN(3) == 0 {
			if i := sh.find(k); i >= 0 {
				sh.deleteAt(uint64(i))
				delete(model, k)
				deletes++
			} else if _, ok := model[k]; ok {
				t.Fatalf("step %d: key %#x lost", step, k)
			}
		} else if _, ok := model[k]; ok || len(model) < maxSlots*3/4 {
			v := int64(step)
			sh.put(memEntry{key: k, st: state{a: v}, exp: 1 << 62}, 0, 1<<30, maxSlots)
			model[k] = v
		}
		checkShard(t, sh, model)
	}
	if deletes < 300 {
		t.Fatalf("only %d deletions: the test exercises too few", deletes)
	}
}

// TestMemShardEvictsAtBound: inserting far more keys than the bound keeps the shard at the bound,
// drops expired entries first and evicts live ones only when none of the sample has expired.
func TestMemShardEvictsAtBound(t *testing.T) {
	const limit, maxSlots = 100, 256
	sh := &memShard{logs: map[uint64]*logEntry{}}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 10000 {
		k := rng.Uint64() | 1
		sh.put(memEntry{key: k, st: state{a: int64(i)}, exp: int64(1000 + i)}, 0, limit, maxSlots)
		if sh.n > limit {
			t.Fatalf("insert %d: %d keys, bound %d", i, sh.n, limit)
		}
	}
	if sh.n != limit || len(sh.tab) > maxSlots {
		t.Fatalf("%d keys in %d slots, want %d keys in at most %d", sh.n, len(sh.tab), limit, maxSlots)
	}
	// every entry has expired at now=1<<40: inserts reclaim them instead of evicting live ones
	for i := range 20 {
		sh.put(memEntry{key: rng.Uint64() | 1, exp: 1 << 50}, 1<<40, limit, maxSlots)
		if sh.n > limit {
			t.Fatalf("insert %d: %d keys, bound %d", i, sh.n, limit)
		}
	}
	live := 0
	for _, e := range sh.tab {
		if e.key != 0 && e.exp == 1<<50 {
			live++
		}
	}
	if live != 20 {
		t.Fatalf("%d of 20 unexpired keys kept, want all (expired entries should go first)", live)
	}
}

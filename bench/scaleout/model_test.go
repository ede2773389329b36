package main

import (
	"fmt"
	"slices"
	"testing"
)

// The slot of a key is on-disk layout: it must never change.
func TestSlotOfIsStable(t *testing.T) {
	for _, k := range []string{"", "e\x00ev-1", "p\x00account\x00acme"} {
		a, b := SlotOf(k, DefaultSlots), SlotOf(k, DefaultSlots)
		if a != b || a < 0 || a >= DefaultSlots {
			t.Fatalf("SlotOf(%q) = %d, then %d", k, a, b)
		}
	}
	// FNV-1a 64 of "e\x00ev-1" mod 4096, pinned.
	if got, want := SlotOf("e\x00ev-1", DefaultSlots), pinnedSlot; got != want {
		t.Fatalf("SlotOf changed: %d, was %d (keys would move groups)", got, want)
	}
}

const pinnedSlot = 2329 // computed apart from Go (FNV-1a 64 by hand)

func balanced(t *testing.T, m *PartitionMap) {
	t.Helper()
	c := m.Counts()
	if slices.Max(c)-slices.Min(c) > 1 {
		t.Fatalf("%d groups: slot counts %d..%d", m.Groups, slices.Min(c), slices.Max(c))
	}
}

func TestNewMapIsBalanced(t *testing.T) {
	for g := 1; g <= 100; g++ {
		balanced(t, NewMap(DefaultSlots, g))
	}
}

// Growing moves only the surplus of each group, keeps every other slot
// where it was, and leaves the map balanced.
func TestGrowMovesTheFewestSlots(t *testing.T) {
	for _, steps := range [][]int{{1, 2, 4, 8, 16, 32}, {3, 4, 5, 7, 12, 33}, {1, 100}} {
		m := NewMap(DefaultSlots, steps[0])
		for _, g := range steps[1:] {
			before := m.Counts()
			want := targets(DefaultSlots, g)
			surplus := 0
			for i, c := range before {
				surplus += max(0, c-want[i])
			}
			n, moved := m.Grow(g)
			balanced(t, n)
			if moved != surplus {
				t.Fatalf("%d → %d groups: moved %d slots, surplus was %d", m.Groups, g, moved, surplus)
			}
			changed := 0
			for s := range n.Owner {
				if n.Owner[s] != m.Owner[s] {
					changed++
					if n.Owner[s] < m.Groups && before[n.Owner[s]] >= want[n.Owner[s]] {
						t.Fatalf("slot %d moved to g%d, which had no room", s, n.Owner[s])
					}
				}
			}
			if changed != moved {
				t.Fatalf("%d slots changed owner, Grow says %d", changed, moved)
			}
			m = n
		}
	}
}

// Keys (not only slots) spread evenly: the hash does not cluster.
func TestKeysSpreadEvenly(t *testing.T) {
	m := NewMap(DefaultSlots, 32)
	per := make([]int, 32)
	const n = 64000
	for i := range n {
		per[m.Group(PlacementKey(FnSpec{ID: "f"}, fmt.Sprintf("01J%06d", i), "", ""))]++
	}
	for g, c := range per {
		if c < n/32*9/10 || c > n/32*11/10 {
			t.Fatalf("group %d holds %d of %d keys (mean %d)", g, c, n, n/32)
		}
	}
}

func TestPlacementKey(t *testing.T) {
	plain := FnSpec{ID: "plain"}
	other := FnSpec{ID: "other"}
	if PlacementKey(plain, "ev1", "", "") != PlacementKey(other, "ev1", "", "") {
		t.Fatal("unkeyed runs of one event must be placed together")
	}
	conc := FnSpec{ID: "conc", PacingKey: "event.data.user"}
	if PlacementKey(conc, "ev1", "", "u1") != PlacementKey(conc, "ev2", "", "u1") {
		t.Fatal("runs of one concurrency key must be placed together")
	}
	if PlacementKey(conc, "ev1", "", "u1") == PlacementKey(FnSpec{ID: "conc2", PacingKey: "event.data.user"}, "ev1", "", "u1") {
		t.Fatal("function-scoped keys of two functions are two keys")
	}
	acct := func(id string) FnSpec { return FnSpec{ID: id, PacingKey: "event.data.acct", Scope: "account"} }
	if PlacementKey(acct("a"), "ev1", "", "x") != PlacementKey(acct("b"), "ev9", "", "x") {
		t.Fatal("an account-scoped key is shared by the functions naming it")
	}
	// Admission (here: debounce by user) wins over pacing.
	deb := FnSpec{ID: "deb", AdmissionKey: "event.data.user", PacingKey: "event.data.org"}
	if PlacementKey(deb, "ev1", "u1", "o1") != PlacementKey(deb, "ev2", "u1", "o2") {
		t.Fatal("runs must follow their admission key")
	}
}

func doubling(upto int) []int {
	var gs []int
	for g := 1; g <= upto; g *= 2 {
		gs = append(gs, g)
	}
	return gs
}

// Throughput never drops as groups are added (each on its own node), and
// cross-partition work grows from nothing.
func TestThroughputIsMonotone(t *testing.T) {
	rows, _ := Curve(DefaultParams(), DefaultMix(), doubling(1024))
	if rows[0].CrossRuns != 0 || rows[0].CrossPer100 != 0 {
		t.Fatalf("one group has cross-partition work: %+v", rows[0])
	}
	for i := 1; i < len(rows); i++ {
		if rows[i].RunsPerSec < rows[i-1].RunsPerSec {
			t.Fatalf("%d groups: %.0f runs/s, fewer than %.0f at %d", rows[i].Groups, rows[i].RunsPerSec, rows[i-1].RunsPerSec, rows[i-1].Groups)
		}
		if rows[i].CrossRuns < rows[i-1].CrossRuns || rows[i].CrossPer100 < rows[i-1].CrossPer100 {
			t.Fatalf("%d groups: less cross-partition work than at %d", rows[i].Groups, rows[i-1].Groups)
		}
	}
}

// Without anything that crosses partitions, throughput per node is the
// same at every size once every node leads a group.
func TestScalesLinearlyWithoutCrossWork(t *testing.T) {
	rows, _ := Curve(DefaultParams(), Mix{}, []int{4, 8, 16, 32, 64})
	per := rows[0].RunsPerSec / float64(rows[0].Nodes)
	for _, r := range rows {
		if q := r.RunsPerSec / float64(r.Nodes) / per; q < 0.98 || q > 1.02 {
			t.Fatalf("%d groups: %.0f runs/s per node, %.0f at 4", r.Groups, r.RunsPerSec/float64(r.Nodes), per)
		}
		if r.Bound != "node CPU, even" || r.CrossPer100 != 0 {
			t.Fatalf("%d groups: bound %q, %.1f cross messages", r.Groups, r.Bound, r.CrossPer100)
		}
	}
}

// With a shared key asked per step, the key's owner saturates: throughput
// stays under the global ceiling and stops growing, and the model says
// which group binds.
func TestSharedKeyOwnerSaturates(t *testing.T) {
	p, mix := DefaultParams(), DefaultMix()
	p.AllowanceBatch = 1
	mix.SharedKey = 0.3
	rows, _ := Curve(p, mix, doubling(256))
	last := rows[len(rows)-1]
	for _, r := range rows {
		if r.RunsPerSec > r.GlobalCeiling {
			t.Fatalf("%d groups: %.0f runs/s above the global ceiling %.0f", r.Groups, r.RunsPerSec, r.GlobalCeiling)
		}
	}
	if prev := rows[len(rows)-2]; last.RunsPerSec > 1.1*prev.RunsPerSec {
		t.Fatalf("still growing at %d groups: %.0f → %.0f runs/s", last.Groups, prev.RunsPerSec, last.RunsPerSec)
	}
	if want := fmt.Sprintf("shared-key owner g%d", last.sharedOwner); last.Bound != want {
		t.Fatalf("bound %q, want %q", last.Bound, want)
	}
}

// A hot placement key binds on its group's node, however many groups: its
// runs cannot be split, so throughput stays under what its group's leader
// alone can give them.
func TestHotKeyBinds(t *testing.T) {
	p, mix := DefaultParams(), DefaultMix()
	mix.Hot = 0.05
	limit := p.CoresPerNode * p.Util * 1000 / (mix.Hot * p.StepsPerRun * p.CPUPerStepMs)
	gs := []int{32, 64, 128}
	rows, _ := Curve(p, mix, gs)
	even, _ := Curve(p, DefaultMix(), gs)
	for i, r := range rows {
		if want := fmt.Sprintf("hot key's group g%d", r.hotAt); r.Bound != want {
			t.Fatalf("%d groups: bound %q, want %q", r.Groups, r.Bound, want)
		}
		if r.RunsPerSec > limit {
			t.Fatalf("%d groups: %.0f runs/s, past the hot group's %.0f", r.Groups, r.RunsPerSec, limit)
		}
		if r.RunsPerSec >= even[i].RunsPerSec {
			t.Fatalf("%d groups: a hot key costs nothing (%.0f runs/s)", r.Groups, r.RunsPerSec)
		}
	}
}

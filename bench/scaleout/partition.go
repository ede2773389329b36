package main

import "hash/fnv"

// DefaultSlots is the size of the fixed slot space placement keys hash
// into. Groups own slots, never keys, so moving load between groups moves
// whole slots (a key range of the projection once keys carry their slot).
const DefaultSlots = 4096

// SlotOf maps a placement key to its slot: FNV-1a, stable across processes
// and releases (it is part of the on-disk layout, so it can never change).
func SlotOf(key string, slots int) int {
	h := fnv.New64a()
	h.Write([]byte(key))
	return int(h.Sum64() % uint64(slots))
}

// PartitionMap says which group owns each slot. In the design it lives in
// the meta group, with an epoch bumped by every change.
type PartitionMap struct {
	Groups int
	Owner  []int // slot → group
}

// NewMap gives groups contiguous, balanced ranges of slots (sizes differ by
// at most one).
func NewMap(slots, groups int) *PartitionMap {
	m := &PartitionMap{Groups: groups, Owner: make([]int, slots)}
	for s := range m.Owner {
		m.Owner[s] = s * groups / slots
	}
	return m
}

// Group is the group that owns a placement key.
func (m *PartitionMap) Group(key string) int { return m.Owner[SlotOf(key, len(m.Owner))] }

// Counts is the number of slots each group owns.
func (m *PartitionMap) Counts() []int {
	c := make([]int, m.Groups)
	for _, g := range m.Owner {
		c[g]++
	}
	return c
}

// targets is how many slots each of n groups should own: slots/n, the
// remainder going to the lowest-numbered groups.
func targets(slots, n int) []int {
	t := make([]int, n)
	for g := range t {
		t[g] = slots / n
		if g < slots%n {
			t[g]++
		}
	}
	return t
}

// Grow adds groups (numbered after the existing ones) and moves the fewest
// slots that balance the map again: each group gives up only its surplus
// over its new target, from the end of what it owns. It returns the new map
// and how many slots moved. Keys whose slot did not move keep their group.
func (m *PartitionMap) Grow(groups int) (*PartitionMap, int) {
	if groups < m.Groups {
		panic("scaleout: Grow cannot remove groups (a merge is another operation)")
	}
	n := &PartitionMap{Groups: groups, Owner: append([]int(nil), m.Owner...)}
	want := targets(len(m.Owner), groups)
	have := n.Counts()
	moved := 0
	next := 0 // the first group that may still be short of its target
	for s := len(n.Owner) - 1; s >= 0; s-- {
		g := n.Owner[s]
		if have[g] <= want[g] {
			continue
		}
		for have[next] >= want[next] {
			next++
		}
		have[g]--
		have[next]++
		n.Owner[s] = next
		moved++
	}
	return n, moved
}

// FnSpec is what the router needs of a function to place its runs: the key
// expressions of its flow control, as the registry holds them.
type FnSpec struct {
	ID string
	// AdmissionKey is set when the function has batch, debounce, singleton,
	// rate limit or an idempotency key: controls that decide whether a run
	// exists, so they must be decided serially where the run is created.
	// "-" stands for such a control without a key expression (function-wide).
	AdmissionKey string
	// PacingKey is the expression of its first concurrency or throttle key
	// ("" for none or for a key without an expression, which is enforced by
	// allowances instead of by placement).
	PacingKey string
	// Scope of the pacing key: "fn" (default), "env" or "account"; the last
	// two are shared by every function that names them.
	Scope string
}

// PlacementKey is the key a run is placed by. adm and pace are the values
// the router evaluated for the function's admission and pacing keys on the
// event (CEL, pure, as Apply evaluates them).
//
//  1. an admission control: its key, scoped to the function (a function-wide
//     one puts all the function's runs in one group: that is its semantics);
//  2. else a pacing key with an expression: its key (env/account scope
//     without the function, so functions sharing it are placed together);
//  3. else the event id: all unkeyed runs of one event land in one group,
//     with the event, so accepting it is one append as today.
func PlacementKey(fn FnSpec, eventID, adm, pace string) string {
	switch {
	case fn.AdmissionKey != "":
		return "a\x00" + fn.ID + "\x00" + adm
	case fn.PacingKey != "":
		if fn.Scope == "env" || fn.Scope == "account" {
			return "p\x00" + fn.Scope + "\x00" + pace
		}
		return "p\x00fn\x00" + fn.ID + "\x00" + pace
	}
	return "e\x00" + eventID
}

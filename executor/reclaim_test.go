package executor

import (
	"errors"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// A claim is taken over at once when its claimant does not answer or has
// restarted, kept while the claimant has the call in hand and follows this
// leader, and taken over only after probeStrikes probes in a row found it
// otherwise (a claim may not have reached its claimant yet).
func TestGoneClaims(t *testing.T) {
	e := New(Config{NodeID: "n1"}, nil, nil)
	c := fsm.Call{RunID: "r1", ID: "step", Claimed: true, Node: "n2", Boot: "b2", Gen: 3}
	inHand := Held{Node: "n2", Boot: "b2", Leader: "n1", Calls: [][2]string{{"r0", "step"}, {"r1", "step"}}}
	notInHand := Held{Node: "n2", Boot: "b2", Leader: "n1", Calls: [][2]string{{"r1", "other"}}}
	otherLeader := inHand
	otherLeader.Leader = "n3"
	restarted := inHand
	restarted.Boot = "b9"

	strikes := map[string]int{}
	for i, tc := range []struct {
		held Held
		err  error
		gone bool
	}{
		{err: errors.New("connection refused"), gone: true},
		{held: restarted, gone: true},
		{held: inHand},
		{held: notInHand},
		{held: inHand}, // in hand again: the strike is forgotten
		{held: notInHand},
		{held: otherLeader, gone: true}, // two in a row
		{held: inHand},
		{held: otherLeader},
		{held: inHand},
	} {
		if why := e.gone(c, &tc.held, tc.err, strikes); (why != "") != tc.gone {
			t.Fatalf("probe %d (%+v, %v): gone %q, want %v", i, tc.held, tc.err, why, tc.gone)
		}
	}
}

// Held lists the calls in flight and those waiting in the buffer, once.
func TestHeldListsCallsInHand(t *testing.T) {
	e := New(Config{NodeID: "n1"}, nil, nil)
	e.fair.owners["r1"], e.fair.owners["r2"] = owner{fn: "f", app: "a"}, owner{fn: "f", app: "a"}
	e.buffer([]fsm.Call{{RunID: "r1", ID: "step"}, {RunID: "r2", ID: "step"}})
	e.mu.Lock()
	e.occupyLocked(callKey("r1", "step"), slot{})
	e.mu.Unlock()
	h := e.Held()
	if h.Node != "n1" || h.Boot != e.boot || len(h.Calls) != 2 || !h.has("r1", "step") || !h.has("r2", "step") {
		t.Fatalf("held %+v", h)
	}
}

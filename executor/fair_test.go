package executor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// fairExec is an executor whose buffer the tests fill by hand: the picking
// itself reads nothing from the projection.
func fairExec(t *testing.T, maxInflight, perFn, perApp int) *Executor {
	t.Helper()
	return New(Config{NodeID: "n1", MaxInflight: maxInflight, MaxInflightPerFunction: perFn, MaxInflightPerApp: perApp}, nil, nil)
}

// queue buffers n app calls of function fn (app app), one run each.
func queue(e *Executor, fn, app string, n int) {
	for i := range n {
		run := fmt.Sprintf("%s-run%d", fn, i)
		e.fair.owners[run] = owner{fn: fn, app: app}
		e.buffer([]fsm.Call{{RunID: run, ID: "step", Type: fsm.CallHTTP}})
	}
}

// fns names the function of each call, in order.
func fns(calls []fsm.Call) string {
	var out []string
	for _, c := range calls {
		out = append(out, strings.SplitN(c.RunID, "-run", 2)[0])
	}
	return strings.Join(out, " ")
}

func TestPickServesFunctionsInTurnWithinShares(t *testing.T) {
	e := fairExec(t, 8, 3, 5)
	queue(e, "a", "x", 10) // a flood, read first
	queue(e, "b", "x", 10)
	queue(e, "c", "y", 1)
	claim, send := e.pick(0)
	// In turn, not in read order; a stops at its share (3), app x at its (5).
	if got, want := fns(claim), "a b c a b a"; got != want || len(send) != 0 {
		t.Fatalf("picked %q (send %d), want %q", got, len(send), want)
	}
	if claim, _ := e.pick(0); len(claim) != 0 {
		t.Fatalf("picked %q past the shares", fns(claim))
	}
	// A call of a ends: its slot goes to a again (b is held by app x).
	e.release("a-run0", "step")
	if claim, _ := e.pick(0); fns(claim) != "a" {
		t.Fatalf("after a slot of a freed: picked %q", fns(claim))
	}
	// A call of b ends: b is next in turn within app x.
	e.release("b-run0", "step")
	if claim, _ := e.pick(0); fns(claim) != "b" {
		t.Fatalf("after a slot of b freed: picked %q", fns(claim))
	}
}

func TestPickFiresTimersWhateverTheShares(t *testing.T) {
	e := fairExec(t, 4, 1, 1)
	queue(e, "a", "x", 3)
	e.buffer([]fsm.Call{{RunID: "a-run1", ID: "nap", Type: fsm.CallSleep}, {RunID: "a-run2", ID: "nap", Type: fsm.CallSleep}})
	claim, _ := e.pick(0)
	var timers, calls int
	for _, c := range claim {
		if c.Type == fsm.CallSleep {
			timers++
		} else {
			calls++
		}
	}
	if timers != 2 || calls != 1 {
		t.Fatalf("picked %d timers and %d app calls, want both timers and one call (the share)", timers, calls)
	}
}

// Calls leased to us beyond a share (records proposed together) wait in
// the buffer and are sent as is, without a new claim, when the share frees.
func TestAdoptHoldsLeasedCallsBeyondTheShare(t *testing.T) {
	e := fairExec(t, 8, 1, 8)
	e.term = &term{}
	queue(e, "a", "x", 1)
	if claim, _ := e.pick(0); len(claim) != 1 {
		t.Fatalf("picked %d calls, want 1", len(claim))
	}
	e.fair.owners["a-leased"] = owner{fn: "a", app: "x"}
	leased := fsm.Call{RunID: "a-leased", ID: "step", Type: fsm.CallHTTP, Claimed: true, Node: "n1", Boot: e.boot, Due: 1000}
	e.Adopt([]fsm.Call{leased})
	if !e.fair.queued[callKey("a-leased", "step")] {
		t.Fatal("a leased call beyond the share was not held back")
	}
	if l := e.LeaseNext(); l == nil || l.Max != 7-1 || !hasRoom(l, "a", 0) {
		t.Fatalf("lease while a is full: %+v, want max 6 and no room for a", l)
	}
	e.release("a-run0", "step")
	claim, send := e.pick(999)
	if len(claim) != 0 || len(send) != 1 || send[0].RunID != "a-leased" {
		t.Fatalf("after the share freed: claim %v, send %v; want the leased call sent as is", claim, send)
	}
}

// The record that ends a call leases its run's next call the slot it
// frees (LeaseNext.Keep), even when calls leased beyond the shares wait in
// the buffer: else in a burst every run under way waited behind the
// backlog of first calls.
func TestAnsweredCallKeepsItsSlotForTheRunsNextCall(t *testing.T) {
	e := fairExec(t, 2, 1, 2)
	e.term = &term{}
	queue(e, "a", "x", 1)
	if claim, _ := e.pick(0); len(claim) != 1 {
		t.Fatalf("picked %d calls, want 1", len(claim))
	}
	for _, run := range []string{"a-leased1", "a-leased2"} {
		e.fair.owners[run] = owner{fn: "a", app: "x"}
		e.Adopt([]fsm.Call{{RunID: run, ID: "step", Type: fsm.CallHTTP, Claimed: true, Node: "n1", Boot: e.boot, Due: 1000}})
	}
	if e.fair.leased != 2 {
		t.Fatalf("%d leased calls held back, want 2", e.fair.leased)
	}
	if l := e.LeaseNext(); l != nil {
		t.Fatalf("a lease with every slot spoken for: %+v", l)
	}
	l := e.leaseAfter(fsm.Call{RunID: "a-run0", ID: "step", Type: fsm.CallHTTP})
	if l == nil || l.Max != 1 || !l.Keep {
		t.Fatalf("lease of the answer of a-run0: %+v, want max 1, kept for its run", l)
	}
	// A fired timer frees no slot of an app call: nothing to keep.
	if l := e.leaseAfter(fsm.Call{RunID: "a-run9", ID: "nap", Type: fsm.CallSleep}); l != nil {
		t.Fatalf("lease of a timer with every slot spoken for: %+v", l)
	}
}

func hasRoom(l *fsm.LeaseNext, fn string, n int) bool {
	for _, r := range l.Rooms {
		if r.Fn == fn {
			return r.N == n
		}
	}
	return false
}

// A call leased to us replaces a copy of it that the buffer read from the
// queue before the claim: that copy's own claim would be refused as stale,
// and the lease would then stall until it ran out.
func TestAdoptReplacesAnUnclaimedCopy(t *testing.T) {
	e := fairExec(t, 1, 1, 1)
	e.term = &term{ctx: context.Background(), wg: &sync.WaitGroup{}}
	queue(e, "a", "x", 1)
	e.mu.Lock()
	e.occupyLocked(callKey("other", "step"), slot{}) // no free slot: adopted calls wait in the buffer
	e.mu.Unlock()
	leased := fsm.Call{RunID: "a-run0", ID: "step", Type: fsm.CallHTTP, Gen: 1, Claimed: true, Node: "n1", Boot: e.boot, Due: 1 << 62}
	for range 2 { // adopting the same claim twice keeps one copy
		e.Adopt([]fsm.Call{leased})
	}
	k := callKey("a-run0", "step")
	e.mu.Lock()
	got, ok := e.fair.find(k)
	n, ready := len(e.fair.queued), e.fair.fns["a"].ready
	e.mu.Unlock()
	if !ok || !got.leased || got.c.Gen != 1 || n != 1 || ready != 1 {
		t.Fatalf("buffer holds %+v (found %v), %d calls, %d ready of a; want only the leased claim", got, ok, n, ready)
	}
	e.release("other", "step")
	if _, send := e.pick(0); len(send) != 1 || send[0].Gen != 1 {
		t.Fatalf("sent %v, want the leased claim", send)
	}
}

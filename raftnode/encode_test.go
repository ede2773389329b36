package raftnode

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// unencodable is a record msgpack cannot encode (a channel field).
type unencodable struct{ C chan int }

func (unencodable) Kind() fsm.Kind { return fsm.KindEventAccepted }
func (unencodable) Time() int64    { return 0 }

// A record that cannot be encoded fails its own Propose only, even when it
// is queued together with another caller's records (group commit).
func TestUnencodableRecordFailsOnlyItsCaller(t *testing.T) {
	n := openNode(t, t.TempDir(), "n1", freeAddr(t), nil)
	waitFor(t, "leadership", n.IsLeader)
	ctx := context.Background()
	if err := n.raft.Barrier(0).Error(); err != nil { // the term's first entry is in
		t.Fatal(err)
	}
	base := n.raft.LastIndex()

	// Hold the FSM in its notify hook so that entries stay in flight: once
	// maxInflight are, the batch loop stops taking proposals and the next
	// ones queue up, to go out in one batch when the FSM is let go.
	gate := make(chan struct{})
	n.f.SetNotify(func() { <-gate })
	released := false
	release := func() {
		if !released {
			released = true
			close(gate)
		}
	}
	defer release()
	errs := make(chan error, maxInflight)
	propose := func(r fsm.Record) {
		_, err := n.Propose(ctx, r)
		errs <- err
	}
	for i := 0; i < maxInflight; i++ {
		go propose(event(string(rune('a' + i))))
		waitFor(t, "entry appended", func() bool { return n.raft.LastIndex() == base+uint64(i)+1 })
	}
	// One more is taken by the batch loop, which then waits for a slot.
	taken, err := newProposal([]fsm.Record{event("taken")})
	if err != nil {
		t.Fatal(err)
	}
	n.proposals <- taken
	waitFor(t, "proposal taken", func() bool { return len(n.proposals) == 0 })
	// These two queue up together, to go out in one batch once the FSM is
	// let go; a bad record refused at once does not wait for that.
	var goodErr, badErr error
	var goodBack, badBack atomic.Bool
	go func() {
		_, goodErr = n.Propose(ctx, event("good"))
		goodBack.Store(true)
	}()
	go func() {
		_, badErr = n.Propose(ctx, unencodable{})
		badBack.Store(true)
	}()
	waitFor(t, "proposals queued", func() bool { return len(n.proposals) == 2 || badBack.Load() })
	release()
	waitFor(t, "proposals answered", func() bool { return goodBack.Load() && badBack.Load() })
	if goodErr != nil {
		t.Fatalf("a good record failed with the bad one of its batch: %v", goodErr)
	}
	if badErr == nil {
		t.Fatal("an unencodable record was accepted")
	}
	if r := <-taken.done; r.err != nil {
		t.Fatalf("proposal taken alone: %v", r.err)
	}
	for i := 0; i < maxInflight; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
	}
}

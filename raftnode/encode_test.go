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
	// maxInflight are, the batch loop waits for a slot and the next
	// proposals queue up, to go out in one entry when the FSM is let go.
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
	// These queue up together; a bad record refused at once does not wait
	// for them.
	var firstErr, goodErr, badErr error
	var firstBack, goodBack, badBack atomic.Bool
	go func() {
		_, firstErr = n.Propose(ctx, event("first"))
		firstBack.Store(true)
	}()
	waitFor(t, "the first proposal queued", func() bool { return len(n.proposals) == 1 })
	go func() {
		_, goodErr = n.Propose(ctx, event("good"))
		goodBack.Store(true)
	}()
	go func() {
		_, badErr = n.Propose(ctx, unencodable{})
		badBack.Store(true)
	}()
	waitFor(t, "proposals queued", func() bool { return len(n.proposals) == 2 && badBack.Load() })
	release()
	waitFor(t, "proposals answered", func() bool { return firstBack.Load() && goodBack.Load() })
	if firstErr != nil || goodErr != nil {
		t.Fatalf("good records failed with the bad one of their batch: %v, %v", firstErr, goodErr)
	}
	if badErr == nil {
		t.Fatal("an unencodable record was accepted")
	}
	if got := n.raft.LastIndex() - base; got != maxInflight+1 {
		t.Fatalf("%d entries, want %d: the proposals queued while Raft was full did not share one", got, maxInflight+1)
	}
	for i := 0; i < maxInflight; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
	}
}

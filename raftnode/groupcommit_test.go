package raftnode

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
)

// holds runs n small entries through g, each hold gathering gathered
// proposals, and returns how many were held.
func holds(g *groupCommit, n, gathered int) int {
	held := 0
	for i := 0; i < n; i++ {
		if g.hold(1) {
			held++
			g.held(gathered)
		}
	}
	return held
}

func TestGroupCommitNeverHoldsWhenOff(t *testing.T) {
	for _, d := range []time.Duration{0, -1} {
		g := groupCommit{delay: d, gain: 10}
		if n := holds(&g, 100, 5); n != 0 {
			t.Errorf("delay %v: held %d entries, want none", d, n)
		}
	}
}

func TestGroupCommitSendsFullEntriesAtOnce(t *testing.T) {
	g := groupCommit{delay: time.Millisecond, gain: 10}
	if g.hold(holdBelow) || g.hold(1000) {
		t.Fatal("an entry of holdBelow records or more was held")
	}
	if !g.hold(holdBelow - 1) {
		t.Fatal("a small entry was not held although holds were gathering")
	}
}

// A lone chain of steps gathers nothing: only the probes are held.
func TestGroupCommitProbesWhenHoldsGatherNothing(t *testing.T) {
	g := groupCommit{delay: time.Millisecond}
	if n := holds(&g, holdProbe-1, 0); n != 0 {
		t.Fatalf("held %d of the first %d entries, want none before the first probe", n, holdProbe-1)
	}
	if n := holds(&g, 1, 0); n != 1 {
		t.Fatal("the probe was not held")
	}
	if n := holds(&g, 10*holdProbe, 0); n != 10 {
		t.Fatalf("held %d of %d entries, want one in %d", n, 10*holdProbe, holdProbe)
	}
}

// Holds continue while they gather, and stop soon after load goes away.
func TestGroupCommitFollowsTheLoad(t *testing.T) {
	g := groupCommit{delay: time.Millisecond}
	holds(&g, holdProbe, 2) // the probe gathers two proposals
	if n := holds(&g, 100, 2); n != 100 {
		t.Fatalf("under load held %d of 100 entries, want all", n)
	}
	// Load goes: a few more holds find nothing, then only probes.
	if n := holds(&g, 10, 0); n == 0 || n == 10 {
		t.Fatalf("after the load held %d of the next 10 entries, want a few", n)
	}
	if n := holds(&g, holdProbe, 0); n > 1 {
		t.Fatalf("held %d of %d entries long after the load, want at most the probe", n, holdProbe)
	}
}

// With real Raft: a lone chain of proposals goes out an entry each, without
// waiting (the delay is long enough that a wait would time the test out);
// the probe then waits, and a proposal made while it waits shares its
// entry. Seven records fill the entry to holdBelow, which ends the wait.
func TestSmallEntryWaitsForOthersToShareIt(t *testing.T) {
	n := openNodeWith(t, Config{NodeID: "n1", RaftAddr: freeAddr(t), DataDir: t.TempDir(), Bootstrap: true,
		CommitDelay: time.Hour})
	waitFor(t, "leadership", n.IsLeader)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // fail, not hang, if a wait never ends
	defer cancel()
	for i := range holdProbe - 1 {
		if _, err := n.Propose(ctx, event(fmt.Sprintf("lone%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	before := n.raft.LastIndex()
	probe := make(chan error, 1)
	go func() {
		res, err := n.Propose(ctx, event("probe"))
		if err == nil && (len(res) != 1 || res[0].Code != fsm.OK) {
			err = fmt.Errorf("probe: %+v", res)
		}
		probe <- err
	}()
	waitFor(t, "the probe to wait", func() bool { return n.Stats().CommitHolds == 1 })
	recs := make([]fsm.Record, holdBelow-1)
	for i := range recs {
		recs[i] = event(fmt.Sprintf("joiner%d", i))
	}
	res, err := n.Propose(ctx, recs...)
	if err != nil || len(res) != len(recs) {
		t.Fatalf("joiner: %v %+v", err, res)
	}
	if err := <-probe; err != nil {
		t.Fatal(err)
	}
	if got := n.raft.LastIndex() - before; got != 1 {
		t.Fatalf("the probe and the proposal made while it waited took %d entries, want 1", got)
	}
}

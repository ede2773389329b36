package raftnode

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/internal/testnet"
	"github.com/hashicorp/raft"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	return testnet.FreeAddr(t, "127.0.0.1")
}

type testNode struct {
	*Node
	f    *fsm.FSM
	once sync.Once
}

func openNode(t *testing.T, dir, id, addr string, peers []raft.Server) *testNode {
	t.Helper()
	return openNodeWith(t, Config{NodeID: id, RaftAddr: addr, DataDir: dir, Bootstrap: true, Peers: peers})
}

func openNodeWith(t *testing.T, cfg Config) *testNode {
	t.Helper()
	f, err := fsm.Open(filepath.Join(cfg.DataDir, "fsm"), fsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{Node: n, f: f}
	t.Cleanup(func() { tn.close() })
	return tn
}

func (n *testNode) close() {
	n.once.Do(func() {
		n.Node.Close()
		n.f.Close()
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func event(id string) *fsm.EventAccepted {
	return &fsm.EventAccepted{At: 1000, ID: id, Name: "test/e", JSON: []byte(`{"name":"test/e","data":{}}`)}
}

func TestSingleNodeProposeReturnsResults(t *testing.T) {
	n := openNode(t, t.TempDir(), "n1", freeAddr(t), nil)
	waitFor(t, "leadership", n.IsLeader)
	ctx := context.Background()
	res, err := n.Propose(ctx, event("e1"), event("e2"), event("e1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].Code != fsm.OK || res[1].Code != fsm.OK || res[2].Code != fsm.Duplicate {
		t.Fatalf("results %+v", res)
	}
	// Many concurrent proposals share entries (group commit) yet each gets
	// its own result.
	errs := make(chan error, 200)
	for i := range 200 {
		go func() {
			res, err := n.Propose(ctx, event(fmt.Sprintf("c%d", i)))
			if err == nil && (len(res) != 1 || res[0].Code != fsm.OK || res[0].ID != fmt.Sprintf("c%d", i)) {
				err = fmt.Errorf("proposal %d: %+v", i, res)
			}
			errs <- err
		}()
	}
	for range 200 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	applied, _ := n.f.Applied()
	if applied >= 200 {
		t.Logf("note: %d entries for 203 records (no batching happened this run)", applied)
	}
}

// TestThreeNodes runs a real three-node cluster on loopback: writes commit
// through the leader, a follower refuses writes, every node converges to the
// same state digest, and after the leader dies a new one takes writes.
func TestThreeNodes(t *testing.T) {
	ids := []string{"n1", "n2", "n3"}
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	nodes := make([]*testNode, 3)
	for i := range ids {
		var peers []raft.Server
		for j := range ids {
			if j != i {
				peers = append(peers, raft.Server{ID: raft.ServerID(ids[j]), Address: raft.ServerAddress(addrs[j])})
			}
		}
		nodes[i] = openNode(t, t.TempDir(), ids[i], addrs[i], peers)
	}
	leader := func(among []*testNode) *testNode {
		for _, n := range among {
			if n.IsLeader() {
				return n
			}
		}
		return nil
	}
	waitFor(t, "a leader", func() bool { return leader(nodes) != nil })
	l := leader(nodes)
	ctx := context.Background()
	if _, err := l.Propose(ctx, event("a1"), event("a2")); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n != l {
			if _, err := n.Propose(ctx, event("x")); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("follower propose: %v, want ErrNotLeader", err)
			}
		}
	}
	converged := func(among []*testNode) func() bool {
		return func() bool {
			want, _ := among[0].f.Applied()
			d0, _ := among[0].f.StateDigest()
			for _, n := range among[1:] {
				got, _ := n.f.Applied()
				d, _ := n.f.StateDigest()
				if got != want || d != d0 {
					return false
				}
			}
			return want > 0
		}
	}
	waitFor(t, "all nodes to apply the same entries", converged(nodes))

	l.close()
	var rest []*testNode
	for _, n := range nodes {
		if n != l {
			rest = append(rest, n)
		}
	}
	waitFor(t, "a new leader", func() bool { return leader(rest) != nil })
	res, err := leader(rest).Propose(ctx, event("b1"), event("a1"))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Code != fsm.OK || res[1].Code != fsm.Duplicate {
		t.Fatalf("after failover: %+v (a1 must be known to the new leader)", res)
	}
	waitFor(t, "the survivors to converge", converged(rest))
}

// TestSnapshotThenRestart takes a Raft snapshot (which flushes the
// projection and lets Raft compact its log), restarts the node on the same
// dir, and checks the projection is intact and writes go on.
func TestSnapshotThenRestart(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := openNode(t, dir, "n1", addr, nil)
	waitFor(t, "leadership", n.IsLeader)
	ctx := context.Background()
	for i := range 50 {
		if _, err := n.Propose(ctx, event(fmt.Sprintf("s%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	before, _ := n.f.StateDigest()
	applied, _ := n.f.Applied()
	n.close()

	n2 := openNode(t, dir, "n1", addr, nil)
	waitFor(t, "leadership after restart", n2.IsLeader)
	after, _ := n2.f.StateDigest()
	if got, _ := n2.f.Applied(); got < applied || after != before {
		t.Fatalf("after restart: applied %d (was %d), digest changed: %v", got, applied, after != before)
	}
	res, err := n2.Propose(ctx, event("s0"), event("new"))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Code != fsm.Duplicate || res[1].Code != fsm.OK {
		t.Fatalf("results after restart %+v", res)
	}
}

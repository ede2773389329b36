package raftnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/raft"
)

// memNodeCfg is a single voter on raft's in-memory transport.
func memNodeCfg(dir, id string) Config {
	_, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	return Config{NodeID: id, RaftAddr: id, DataDir: dir, Bootstrap: true, Solo: true, Transport: trans,
		SnapshotThreshold: 1 << 20, TrailingLogs: 1}
}

func proposeEvents(t *testing.T, n *testNode, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := n.Propose(context.Background(), event(fmt.Sprintf("x%d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestartBehindSnapshot is the state a crash leaves when it strikes
// after raft stored an installed snapshot and before Restore finished: the
// projection is behind the newest snapshot and the log no longer has the
// entries in between. Raft, told not to restore on start, replays only what
// follows the snapshot, so the node must restore the projection itself.
func TestRestartBehindSnapshot(t *testing.T) {
	dir := t.TempDir()
	n := openNodeWith(t, memNodeCfg(dir, "n1"))
	waitFor(t, "leadership", n.IsLeader)
	proposeEvents(t, n, 0, 10)
	n.close()
	// Keep the projection as it is now (flushed by close).
	old := filepath.Join(t.TempDir(), "fsm")
	if err := os.CopyFS(old, os.DirFS(filepath.Join(dir, "fsm"))); err != nil {
		t.Fatal(err)
	}

	n = openNodeWith(t, memNodeCfg(dir, "n1"))
	waitFor(t, "leadership", n.IsLeader)
	proposeEvents(t, n, 10, 30)
	if err := n.Snapshot(); err != nil { // compacts the log up to here
		t.Fatal(err)
	}
	want, _ := n.f.StateDigest()
	n.close()

	if err := os.RemoveAll(filepath.Join(dir, "fsm")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "fsm"), os.DirFS(old)); err != nil {
		t.Fatal(err)
	}
	n = openNodeWith(t, memNodeCfg(dir, "n1"))
	waitFor(t, "leadership", n.IsLeader)
	if err := n.raft.Barrier(0).Error(); err != nil {
		t.Fatal(err)
	}
	if got, _ := n.f.StateDigest(); got != want {
		applied, _ := n.f.Applied()
		t.Fatalf("after restart the projection (applied %d) is not the snapshot's state", applied)
	}
	res, err := n.Propose(context.Background(), event("x25"), event("new"))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Code != fsm.Duplicate || res[1].Code != fsm.OK {
		t.Fatalf("results after restart %+v", res)
	}
}

// TestSkippedCommandPanics hands the adapter an entry while the command
// before it never reached the projection: it must stop rather than drift.
// No-ops and barriers in between are fine.
func TestSkippedCommandPanics(t *testing.T) {
	f, err := fsm.Open("/p", fsm.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	logs := raft.NewInmemStore()
	data, err := fsm.EncodeEntry(event("a"))
	if err != nil {
		t.Fatal(err)
	}
	a := &raftFSM{f: f, logs: logs}
	cmd := func(i uint64) *raft.Log { return &raft.Log{Index: i, Type: raft.LogCommand, Data: data} }
	if err := logs.StoreLogs([]*raft.Log{cmd(1), {Index: 2, Type: raft.LogNoop}, {Index: 3, Type: raft.LogBarrier},
		cmd(4), {Index: 5, Type: raft.LogConfiguration}, cmd(6), cmd(7)}); err != nil {
		t.Fatal(err)
	}
	a.ApplyBatch([]*raft.Log{cmd(1)})
	a.ApplyBatch([]*raft.Log{cmd(4), {Index: 5, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(raft.Configuration{})}})
	if i, _ := f.Applied(); i != 5 {
		t.Fatalf("applied %d after a configuration entry, want 5", i)
	}
	mustPanic := func(what string, logs ...*raft.Log) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Fatalf("%s: no panic", what)
			}
		}()
		a.ApplyBatch(logs)
	}
	mustPanic("command 6 skipped", cmd(7))
	mustPanic("entry 8 not in the log", cmd(6), cmd(9))
}

// TestInstallSnapshotOnLaggingFollower cuts a follower off while the leader
// compacts its log, then lets it back: it catches up by InstallSnapshot
// (Restore's swap), and then by ordinary entries (the gap check passes).
func TestInstallSnapshotOnLaggingFollower(t *testing.T) {
	ids := []string{"a", "b", "c"}
	trans := map[string]*raft.InmemTransport{}
	var servers []raft.Server
	for _, id := range ids {
		_, trans[id] = raft.NewInmemTransport(raft.ServerAddress(id))
		servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id)})
	}
	for _, x := range ids {
		for _, y := range ids {
			if x != y {
				trans[x].Connect(raft.ServerAddress(y), trans[y])
			}
		}
	}
	nodes := map[string]*testNode{}
	for _, id := range ids {
		nodes[id] = openNodeWith(t, Config{NodeID: id, RaftAddr: id, DataDir: t.TempDir(), Bootstrap: id == "a",
			Peers: servers[1:], Transport: trans[id], SnapshotThreshold: 1 << 20, TrailingLogs: 1})
	}
	all := []*testNode{nodes["a"], nodes["b"], nodes["c"]}
	waitFor(t, "a leader", func() bool { return leaderOf(all) != nil })
	l := leaderOf(all)
	var lagging *testNode
	for _, n := range all {
		if n != l {
			lagging = n
			break
		}
	}
	lt := trans[lagging.ID()]
	lt.DisconnectAll()
	for _, id := range ids {
		if id != lagging.ID() {
			trans[id].Disconnect(raft.ServerAddress(lagging.ID()))
		}
	}
	proposeEvents(t, l, 0, 40)
	if err := l.Snapshot(); err != nil {
		t.Fatal(err)
	}
	proposeEvents(t, l, 40, 45)
	for _, id := range ids {
		if id != lagging.ID() {
			trans[id].Connect(raft.ServerAddress(lagging.ID()), lt)
			lt.Connect(raft.ServerAddress(id), trans[id])
		}
	}
	proposeEvents(t, l, 45, 50)
	waitFor(t, "the follower to converge", func() bool {
		want, _ := all[0].f.Applied()
		d0, _ := all[0].f.StateDigest()
		for _, n := range all[1:] {
			got, _ := n.f.Applied()
			d, _ := n.f.StateDigest()
			if got != want || d != d0 {
				return false
			}
		}
		return true
	})
	if got := lagging.raft.Stats()["last_snapshot_index"]; got == "0" {
		t.Fatal("the follower caught up without installing a snapshot")
	}
}

func leaderOf(among []*testNode) *testNode {
	for _, n := range among {
		if n.IsLeader() {
			return n
		}
	}
	return nil
}

// TestApplyBatchMixedResults: a configuration entry in a batch moves the
// index but has no results; the command after it keeps its own.
func TestApplyBatchMixedResults(t *testing.T) {
	f, err := fsm.Open("/p", fsm.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := fsm.EncodeEntry(event("a"))
	if err != nil {
		t.Fatal(err)
	}
	a := &raftFSM{f: f, logs: raft.NewInmemStore()}
	out := a.ApplyBatch([]*raft.Log{
		{Index: 1, Type: raft.LogConfiguration, Data: raft.EncodeConfiguration(raft.Configuration{})},
		{Index: 2, Type: raft.LogCommand, Data: data},
	})
	if res, ok := out[1].([]fsm.Result); out[0] != nil || !ok || len(res) != 1 || res[0].Code != fsm.OK {
		t.Fatalf("results %#v", out)
	}
}

package log

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// listFSM records the data of every command applied to it.
type listFSM struct {
	mu      sync.Mutex
	applied []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, string(l.Data))
	return nil
}

func (f *listFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied)
}

func (*listFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (*listFSM) Restore(io.ReadCloser) error         { return errors.New("no snapshots") }

func startRaft(t *testing.T, s *Store, fsm raft.FSM, restoreCommitted bool) *raft.Raft {
	t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = "n1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotThreshold = 1 << 20
	conf.LogOutput = io.Discard
	conf.RestoreCommittedLogs = restoreCommitted // needs a CommitTrackingLogStore
	_, trans := raft.NewInmemTransport("n1")
	r, err := raft.NewRaft(conf, fsm, s, s, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func stopRaft(t *testing.T, r *raft.Raft, s *Store) {
	t.Helper()
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRaftSingleNode runs real hashicorp/raft on the store through a first
// boot on an empty store (missing stable keys must read as "not found"), a
// restart that replays committed entries from the persisted commit index,
// and a plain restart that re-elects itself and re-applies everything.
func TestRaftSingleNode(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	r := startRaft(t, s, &listFSM{}, true)
	err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
		{ID: "n1", Address: "n1"},
	}}).Error()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leadership", func() bool { return r.State() == raft.Leader })
	var want []string
	for i := range 20 {
		want = append(want, fmt.Sprint("cmd-", i))
		if err := r.Apply([]byte(want[i]), 5*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	stopRaft(t, r, s)

	// Restart with RestoreCommittedLogs: NewRaft itself applies every
	// command up to the persisted commit index, before any election.
	s = openStore(t, dir)
	commit, err := s.GetCommitIndex()
	if err != nil || commit == 0 {
		t.Fatalf("GetCommitIndex = %d, %v; want > 0", commit, err)
	}
	var n int // commands at or below the commit index
	for i := uint64(1); i <= commit; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if l.Type == raft.LogCommand {
			n++
		}
	}
	fsm := &listFSM{}
	r = startRaft(t, s, fsm, true)
	if got := r.AppliedIndex(); got != commit {
		t.Fatalf("after NewRaft applied index = %d, want persisted commit %d", got, commit)
	}
	waitFor(t, "committed commands replayed", func() bool { return len(fsm.list()) >= n })
	if got := fsm.list(); n == 0 || !slices.Equal(got, want[:n]) {
		t.Fatalf("replayed %q, want %q", got, want[:n])
	}
	// raft v1.8.0 rebuilds its membership only from entries after the
	// applied index, so with no snapshot this node now has no configuration
	// and cannot elect itself; stop here rather than wait for leadership.
	stopRaft(t, r, s)

	s = openStore(t, dir)
	fsm = &listFSM{}
	r = startRaft(t, s, fsm, false)
	defer stopRaft(t, r, s)
	waitFor(t, "leadership after restart", func() bool { return r.State() == raft.Leader })
	waitFor(t, "all commands re-applied", func() bool { return len(fsm.list()) >= len(want) })
	if got := fsm.list(); !slices.Equal(got, want) {
		t.Fatalf("re-applied %q, want %q", got, want)
	}
}

package raftnode

import (
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/hashicorp/raft"
)

// raftFSM adapts *fsm.FSM to raft.BatchingFSM: a batch of committed entries
// becomes one Pebble batch.
//
// Raft hands a BatchingFSM its commands and configuration changes only; its
// no-ops (one per term) and barriers move raft's applied index unseen. So
// that the projection can never silently skip a command, every index raft
// hands over is checked to follow the projection's: what lies between must
// be entries other than commands (no-ops, barriers) in the log, or at or
// below floor, an index raft is known to have applied in full (a snapshot's).
type raftFSM struct {
	f     *fsm.FSM
	logs  raft.LogStore
	floor atomic.Uint64
	// committed is the highest index known committed in this node's log
	// (what the log store may archive; raftnode/archive.go).
	committed atomic.Uint64
	// onSnapshot is told of every snapshot raft stores (nil: nothing).
	onSnapshot func(index, term uint64)
	// checkpoints takes a checkpoint with each snapshot (nil: off).
	checkpoints *checkpoints
}

var _ raft.BatchingFSM = (*raftFSM)(nil)

func (a *raftFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	entries := make([]fsm.Entry, 0, len(logs))
	pos := make([]int, 0, len(logs)) // pos[j]: the log of entries[j]
	prev, _ := a.f.Applied()
	prev = max(prev, a.floor.Load())
	for i, l := range logs {
		if l.Index > prev+1 {
			a.checkGap(prev, l.Index)
		}
		prev = max(prev, l.Index)
		switch l.Type {
		case raft.LogCommand:
			entries = append(entries, fsm.Entry{Index: l.Index, Data: l.Data})
			pos = append(pos, i)
		case raft.LogConfiguration:
			entries = append(entries, fsm.Entry{Index: l.Index, IndexOnly: true})
			pos = append(pos, i)
		}
	}
	out := make([]interface{}, len(logs))
	if len(entries) == 0 {
		return out
	}
	results := a.f.ApplyEntries(entries)
	// Raft hands over committed entries of this node's log only: all of
	// them, and every entry stored below them, are committed (except below
	// a snapshot from the leader that this log did not match, which
	// noteSnapshot has already recorded as an archive gap).
	raiseTo(&a.committed, logs[len(logs)-1].Index)
	for j, i := range pos {
		if logs[i].Type == raft.LogCommand {
			out[i] = results[j]
		}
	}
	return out
}

// checkGap panics unless every index strictly between prev and next is in
// the log and not a command. Going on would leave the projection without
// entries every other replica has.
func (a *raftFSM) checkGap(prev, next uint64) {
	for i := prev + 1; i < next; i++ {
		var l raft.Log
		if err := a.logs.GetLog(i, &l); err != nil {
			panic(fmt.Sprintf("raftnode: projection at index %d is handed entry %d, and entry %d is not in the log (%v)", prev, next, i, err))
		}
		if l.Type == raft.LogCommand {
			panic(fmt.Sprintf("raftnode: projection at index %d is handed entry %d, skipping entry %d", prev, next, i))
		}
	}
}

// raise records that raft has applied every entry up to index.
func (a *raftFSM) raise(index uint64) { raiseTo(&a.floor, index) }

// raiseTo sets v to index unless it is already at or above it.
func raiseTo(v *atomic.Uint64, index uint64) {
	for {
		f := v.Load()
		if index <= f || v.CompareAndSwap(f, index) {
			return
		}
	}
}

func (a *raftFSM) Apply(l *raft.Log) interface{} { return a.ApplyBatch([]*raft.Log{l})[0] }

func (a *raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := a.f.Snapshot()
	if err != nil {
		return nil, err
	}
	if a.checkpoints != nil {
		// Raft asks for snapshots on the goroutine that applies entries:
		// the projection is still at the snapshot's index.
		a.checkpoints.take(a.f)
	}
	return snapshot{s}, nil
}

func (a *raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return a.f.Restore(rc)
}

type snapshot struct{ s *fsm.Snapshot }

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() { s.s.Release() }

// snapshotStore tells the FSM the index of each snapshot raft stores: one it
// took (the FSM had applied everything up to it) or one it installs (Restore
// follows, and raft goes on after its index). The stream itself holds the
// projection's own index, which may be lower by trailing barriers.
type snapshotStore struct {
	raft.SnapshotStore
	a *raftFSM
}

func (s snapshotStore) Create(version raft.SnapshotVersion, index, term uint64, c raft.Configuration,
	ci uint64, t raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, c, ci, t)
	if err != nil {
		return nil, err
	}
	return &indexSink{SnapshotSink: sink, a: s.a, index: index, term: term}, nil
}

type indexSink struct {
	raft.SnapshotSink
	a           *raftFSM
	index, term uint64
}

// Close stores the snapshot. An installed snapshot is stored before raft
// calls Restore, so onSnapshot sees it while the log still holds what this
// node had below it.
func (s *indexSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	s.a.raise(s.index)
	if s.a.onSnapshot != nil {
		s.a.onSnapshot(s.index, s.term)
	}
	return nil
}

// catchUp runs before raft starts. With NoSnapshotRestoreOnStart raft takes
// its newest snapshot as applied and replays only the entries after it. If
// the projection is behind that snapshot (a crash after raft stored an
// installed snapshot and before Restore finished) and the log lacks a
// command in between, the projection is restored from the snapshot first.
func catchUp(f *fsm.FSM, snaps raft.SnapshotStore, logs raft.LogStore, lg *slog.Logger) error {
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return err
	}
	meta := metas[0]
	applied, _ := f.Applied()
	if applied >= meta.Index || onlyNoops(logs, applied+1, meta.Index) {
		return nil
	}
	lg.Warn("projection is behind the newest snapshot; restoring it", "applied", applied, "snapshot", meta.Index)
	_, rc, err := snaps.Open(meta.ID)
	if err != nil {
		return fmt.Errorf("raftnode: open snapshot %s: %w", meta.ID, err)
	}
	defer rc.Close()
	if err := f.Restore(rc); err != nil {
		return fmt.Errorf("raftnode: restore snapshot %s: %w", meta.ID, err)
	}
	return nil
}

// onlyNoops reports whether entries lo..hi are all in the log and none of
// them is a command.
func onlyNoops(logs raft.LogStore, lo, hi uint64) bool {
	for i := lo; i <= hi; i++ {
		var l raft.Log
		if logs.GetLog(i, &l) != nil || l.Type == raft.LogCommand {
			return false
		}
	}
	return true
}

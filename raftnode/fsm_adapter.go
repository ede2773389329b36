package raftnode

import (
	"io"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/hashicorp/raft"
)

// raftFSM adapts *fsm.FSM to raft.BatchingFSM: a batch of committed entries
// becomes one Pebble batch.
type raftFSM struct{ f *fsm.FSM }

var _ raft.BatchingFSM = raftFSM{}

func (a raftFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	entries := make([]fsm.Entry, 0, len(logs))
	pos := make([]int, 0, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			entries = append(entries, fsm.Entry{Index: l.Index, Data: l.Data})
			pos = append(pos, i)
		}
	}
	out := make([]interface{}, len(logs))
	if len(entries) == 0 {
		return out
	}
	results := a.f.ApplyEntries(entries)
	for j, i := range pos {
		out[i] = results[j]
	}
	return out
}

func (a raftFSM) Apply(l *raft.Log) interface{} { return a.ApplyBatch([]*raft.Log{l})[0] }

func (a raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := a.f.Snapshot()
	if err != nil {
		return nil, err
	}
	return snapshot{s}, nil
}

func (a raftFSM) Restore(rc io.ReadCloser) error {
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

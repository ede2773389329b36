package raftnode

import (
	"fmt"

	"github.com/hashicorp/raft"
)

// LiveLog reads committed entries from Raft's own log store, for
// point-in-time states (package pointintime). It holds only what Raft has
// not compacted away behind a snapshot; a log archive that keeps older
// entries offers the same three methods.
type LiveLog struct {
	n *Node
}

// LiveLog returns the reader over this node's Raft log store.
func (n *Node) LiveLog() LiveLog { return LiveLog{n} }

// FirstIndex is the lowest index the log store still holds.
func (l LiveLog) FirstIndex() (uint64, error) { return l.n.store.FirstIndex() }

// LastIndex is the projection's applied index: every entry up to it is
// committed, and none after it is known applied here.
func (l LiveLog) LastIndex() (uint64, error) {
	i, _ := l.n.fsm.Applied()
	return i, nil
}

// Entries calls fn with each entry in [from, to] in order; an entry
// compacted away meanwhile is an error.
func (l LiveLog) Entries(from, to uint64, fn func(*raft.Log) error) error {
	var e raft.Log
	for i := from; i <= to; i++ {
		if err := l.n.store.GetLog(i, &e); err != nil {
			return fmt.Errorf("raftnode: log entry %d: %w", i, err)
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return nil
}

// Snapshots is the store of Raft's snapshots (the newest two), whose
// streams are the projection's (fsm.Snapshot).
func (n *Node) Snapshots() raft.SnapshotStore { return n.snaps }

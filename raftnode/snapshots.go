package raftnode

import "github.com/hashicorp/raft"

// Snapshots is the store of Raft's snapshots (the newest two), whose
// streams are the projection's (fsm.Snapshot).
func (n *Node) Snapshots() raft.SnapshotStore { return n.snaps }

// CheckpointIndexes lists the log indexes of the projection's checkpoints,
// ascending (none when checkpoints are off).
func (n *Node) CheckpointIndexes() []uint64 {
	if n.applier.checkpoints == nil {
		return nil
	}
	return n.applier.checkpoints.Indexes()
}

// CopyCheckpoint makes dir a private copy of the checkpoint at index, for a
// projection to be opened on.
func (n *Node) CopyCheckpoint(index uint64, dir string) error {
	if n.applier.checkpoints == nil {
		return errNoCheckpoint
	}
	return n.applier.checkpoints.CopyTo(index, dir)
}

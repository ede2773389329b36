package raftnode

import "github.com/hashicorp/raft"

// Snapshots is the store of Raft's snapshots (the newest two), whose
// streams are the projection's (fsm.Snapshot).
func (n *Node) Snapshots() raft.SnapshotStore { return n.snaps }

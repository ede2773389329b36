// Package raftnode owns hashicorp/raft for one Cairn node: the Pebble log
// store, snapshots, the TCP transport (under mutual TLS when configured),
// and the bridge between raft.FSM and fsm.FSM. It is, with package log, the
// only code that imports raft.
//
// Propose is the one way to change state. It batches concurrent proposals
// into one Raft entry (group commit: one fsync for many records) and returns
// each record's fsm.Result once the entry is committed and applied. When the
// outcome cannot be known (leadership lost, timeout after the entry was
// handed to Raft) it returns ErrOutcomeUnknown, never a guess.
//
// Nothing here assumes a single node: a lone voter is just a cluster of one.
package raftnode

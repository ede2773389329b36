package raftnode

import "errors"

var (
	// ErrNotLeader: this node cannot accept writes; nothing was proposed.
	ErrNotLeader = errors.New("raftnode: not the leader")
	// ErrOutcomeUnknown: the write was handed to Raft but we could not see it
	// commit (leadership lost, timeout). It may or may not be in the log.
	ErrOutcomeUnknown = errors.New("raftnode: outcome unknown")
	// ErrShutdown: the node is shutting down; nothing was proposed.
	ErrShutdown = errors.New("raftnode: shutting down")
	// ErrUnreachable: a new member's Raft address did not answer (or, with
	// TLS, failed the handshake); the configuration is unchanged.
	ErrUnreachable = errors.New("raftnode: member unreachable")
)

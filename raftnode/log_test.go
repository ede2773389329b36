package raftnode

import "testing"

// A node's first election (no leader ever heard of) is no warning; one
// after losing a leader is.
func TestFirstElectionIsNoWarning(t *testing.T) {
	for line, want := range map[string]bool{
		`2026-11-30T22:21:37.077Z [WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr= last-leader-id=`:                 true,
		`2026-11-30T22:21:37.077Z [WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr="" last-leader-id=""`:             true,
		`2026-11-30T22:21:37.077Z [WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr=127.0.0.1:7301 last-leader-id=n1`: false,
		`2026-11-30T22:21:37.077Z [WARN]  raft: failed to contact: server-id=n2 time=1s`:                                                         false,
	} {
		if got := firstElection(line); got != want {
			t.Errorf("firstElection(%q) = %v, want %v", line, got, want)
		}
	}
}

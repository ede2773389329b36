package raftnode

import "time"

// DefaultCommitDelay is how long batchLoop may hold a small entry for more
// proposals when holding has been gathering some (see groupCommit).
const DefaultCommitDelay = 2 * time.Millisecond

// Group commit beyond what piles up on its own. While entries are being
// fsynced, proposals queue and go out together. But an app that answers one
// step at a time (the TS SDK's single-threaded handler) sends its requests a
// millisecond or two apart, a little slower than a commit: each one then
// becomes an entry of its own, with its own fsync, Raft round and Apply
// batch. Holding a small entry for a couple of milliseconds gathers the
// requests of other runs into it, like a database's commit delay.
//
// Holding only pays when others propose meanwhile. A lone run's chain of
// steps, each waiting for the one before, would only be slowed, so the
// holds are tuned by what they gathered: once they gather little, small
// entries go out at once, and one in holdProbe holds again to notice when
// load returns.
const (
	// holdBelow: entries with at least this many records go out at once.
	holdBelow = 8
	// holdProbe: while holds gather too little, one small entry in this
	// many holds anyway.
	holdProbe = 32
	// holdWorth is the proposals a hold must gather on average (gain) for
	// the next small entry to be held.
	holdWorth = 0.5
)

// groupCommit decides which entries batchLoop holds. It is pure logic over
// counts, with no clock, so tests drive it with any sequence of outcomes.
type groupCommit struct {
	delay time.Duration // 0: never hold
	// gain is a moving average of the proposals each hold gathered.
	gain float64
	// sinceHold counts small entries sent at once since the last hold.
	sinceHold int
}

// hold says whether an entry of records records should wait up to g.delay
// for more proposals.
func (g *groupCommit) hold(records int) bool {
	if g.delay <= 0 || records >= holdBelow {
		return false
	}
	if g.gain >= holdWorth || g.sinceHold+1 >= holdProbe {
		g.sinceHold = 0
		return true
	}
	g.sinceHold++
	return false
}

// held records how many proposals a hold gathered.
func (g *groupCommit) held(gathered int) {
	g.gain = 0.75*g.gain + 0.25*float64(gathered)
}

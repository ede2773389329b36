package executor

import (
	"context"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/oklog/ulid/v2"
)

// Bulk replays are started a chunk at a time: at most replayChunk reruns
// per replay every replayTick, so a replay of thousands of runs joins the
// function's queue gradually, behind its concurrency and throttle, instead
// of all at once.
const (
	replayChunk = 100
	replayTick  = 100 * time.Millisecond
)

// replayLoop starts the reruns of open bulk replays while this node leads.
// Each rerun names its place in the replay; Apply takes a place once, so
// places a deposed leader proposed already are refused as stale, never
// started twice.
func (e *Executor) replayLoop(ctx context.Context) {
	t := time.NewTicker(replayTick)
	defer t.Stop()
	for {
		e.startReplayChunks(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Executor) startReplayChunks(ctx context.Context) {
	replays, err := e.fsm.ActiveReplays()
	if err != nil {
		e.log.Error("listing replays", "err", err)
		return
	}
	for _, rp := range replays {
		places, err := e.fsm.ReplayRuns(rp.ID, rp.Next, replayChunk)
		if err != nil {
			e.log.Error("reading replay", "replay", rp.ID, "err", err)
			continue
		}
		now := time.Now().UnixMilli()
		recs := make([]fsm.Record, len(places))
		for i, p := range places {
			recs[i] = &fsm.RunRerun{At: now, RunID: ulid.Make().String(), From: p.Old, By: rp.Actor,
				Replay: rp.ID, Seq: rp.Next + i}
		}
		if _, err := e.prop.Propose(ctx, recs...); err != nil {
			e.log.Warn("proposing replay reruns", "replay", rp.ID, "err", err)
		}
	}
}

package executor

import (
	"context"
	"time"

	"github.com/cairn-dev/cairn/cronschedule"
	"github.com/cairn-dev/cairn/fsm"
)

// cronLoop fires cron triggers while this node leads. Each tick it proposes
// a CronFired for every schedule that came due; Apply dedups by scheduled
// time, so a schedule fires once even across leader changes. After a
// downtime only the latest missed time of a schedule fires, not every one.
func (e *Executor) cronLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.CronTick)
	defer t.Stop()
	// first holds, for schedules never fired, when this term first saw them:
	// a new cron function starts counting from then, not from the epoch.
	first := map[string]time.Time{}
	for {
		e.fireDueCrons(ctx, first)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Executor) fireDueCrons(ctx context.Context, first map[string]time.Time) {
	fns, err := e.fsm.CronFunctions()
	if err != nil {
		e.log.Error("listing cron functions", "err", err)
		return
	}
	now := e.cfg.Clock()
	var recs []fsm.Record
	for _, fn := range fns {
		last, err := e.fsm.LastCronFired(fn.FnID)
		if err != nil {
			e.log.Error("reading cron state", "fn", fn.FnID, "err", err)
			continue
		}
		for _, spec := range fn.Crons {
			sched, err := cronschedule.Parse(spec)
			if err != nil {
				continue // refused at registration; nothing to do
			}
			from := time.UnixMilli(last)
			if last == 0 {
				k := fn.FnID + "\x00" + spec
				if _, ok := first[k]; !ok {
					first[k] = now
				}
				from = first[k]
			}
			var due time.Time
			for next := sched.Next(from); !next.After(now); next = sched.Next(next) {
				due = next
			}
			if !due.IsZero() {
				recs = append(recs, &fsm.CronFired{At: now.UnixMilli(), FnID: fn.FnID, Cron: spec,
					ScheduledAt: due.UnixMilli(), Lease: e.LeaseNext()})
			}
		}
	}
	if len(recs) == 0 {
		return
	}
	res, err := e.prop.Propose(ctx, recs...)
	if err != nil {
		e.log.Warn("proposing cron runs", "err", err)
		return
	}
	for _, r := range res {
		e.Adopt(r.Claimed)
	}
}

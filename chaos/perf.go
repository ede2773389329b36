package main

import (
	"github.com/cairn-dev/cairn/internal/proc"

	"context"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"time"
)

// ---------------------------------------------------------------------------
// Throughput and latency of one deployment (single `cairn dev` node or the
// 3-node cluster) under the same load, without faults: a steady phase at
// -rate for -perf-duration, then a burst of -burst events.

type perfResult struct {
	Target     string
	Phase      string
	Sent, Ack  int
	Completed  int
	Span       time.Duration // first send -> last run finished
	RunsPerSec float64
	Runs99     float64 // runs/s until 99% of the runs had finished
	StepsPerS  float64
	Ack50      durs // ack latencies
	E2E        durs // event sent -> run finished (app side)
	Hops       durs // app answered a step -> next call arrived
	CPUSec     float64
	// Entries are the Raft entries appended in the phase, Syncs the log
	// fsyncs of every node (each node writes every entry).
	Entries, Syncs uint64
	Note           string
	// Slow: the slowest runs when one took longer than slowRun, with
	// their histories (there are no faults in these phases).
	Slow []slowRun
}

type slowRun struct {
	Run  string
	E2E  time.Duration
	Hist []histEntry
}

const slowRun0 = 3 * time.Second

// perStep gives the phase's CPU (all nodes), entries and fsyncs (all
// nodes) per step ("-" without steps).
func (r perfResult) perStep() string {
	steps := r.StepsPerS * r.Span.Seconds()
	if steps <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f ms; %.2f / %.2f", r.CPUSec*1000/steps, float64(r.Entries)/steps, float64(r.Syncs)/steps)
}

// perfTarget runs the phases on a fresh single node with its own app.
func (h *harness) perfTarget(ctx context.Context, target, host, dataBase, logDir string, ns *netns) ([]perfResult, error) {
	app, err := startApp(target, host, filepath.Join(h.cfg.outDir, "journal-"+target+".jsonl"), h.cfg.stepDelay)
	if err != nil {
		return nil, err
	}
	defer app.close()
	c, err := newCluster(h.cfg, target, dataBase, logDir, ns, false)
	if err != nil {
		return nil, err
	}
	defer c.stopAll()
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	if err := c.register(ctx, app); err != nil {
		return nil, err
	}
	return h.perfPhases(ctx, c, app, target), nil
}

func (h *harness) perfPhases(ctx context.Context, c *cluster, app *testApp, target string) []perfResult {
	label := "single node (cairn dev)"
	if target == "cluster" {
		label = "3-node cluster"
	}
	var out []perfResult
	for _, phase := range []string{"steady", "burst"} {
		name := target + "-" + phase
		cpu0 := c.cpuTicks()
		index0, syncs0 := c.logCounters(ctx)
		t0 := time.Now()
		if phase == "steady" {
			stop, cancel := context.WithTimeout(ctx, h.cfg.perfDuration)
			h.load.steady(stop, ctx, name, h.cfg.rate, c.urls)
			cancel()
		} else {
			h.load.burst(ctx, name, h.cfg.burst, h.cfg.senders, c.urls)
		}
		ops := h.hist.all(name)
		var uids []string
		r := perfResult{Target: label, Phase: phase, Sent: len(ops)}
		for _, op := range ops {
			if op.Outcome == "ok" {
				r.Ack++
				uids = append(uids, op.UID)
				r.Ack50 = append(r.Ack50, time.Duration(op.LatUs)*time.Microsecond)
			}
		}
		// Wait (bounded) until the app has answered every run's last call.
		deadline := time.Now().Add(2 * time.Minute)
		for app.finalsDone(name, uids) < len(uids) && time.Now().Before(deadline) && ctx.Err() == nil {
			_ = sleepCtx(ctx, 100*time.Millisecond)
		}
		st := app.stats(name)
		r.Completed = app.finalsDone(name, uids)
		if !st.lastFinal.IsZero() {
			r.Span = st.lastFinal.Sub(t0)
		}
		if r.Span > 0 {
			r.RunsPerSec = float64(r.Completed) / r.Span.Seconds()
			r.StepsPerS = float64(st.steps) / r.Span.Seconds()
		}
		var ends []time.Time
		for _, u := range uids {
			if t, ok := st.finals[u]; ok {
				ends = append(ends, t)
			}
		}
		sort.Slice(ends, func(i, j int) bool { return ends[i].Before(ends[j]) })
		if n := len(ends); n > 0 {
			k := max(int(math.Ceil(0.99*float64(n)))-1, 0)
			if d := ends[k].Sub(t0); d > 0 {
				r.Runs99 = float64(k+1) / d.Seconds()
			}
		}
		r.E2E, r.Hops = st.e2e, st.hops
		var slow []slowRun
		for run, d := range st.runE2E {
			if d > slowRun0 {
				slow = append(slow, slowRun{Run: run, E2E: d})
			}
		}
		sort.Slice(slow, func(i, j int) bool { return slow[i].E2E > slow[j].E2E })
		for i := range slow {
			if i >= 3 {
				break
			}
			slow[i].Hist, _ = h.fetchHistory(ctx, c.nodes[0].url(), slow[i].Run)
		}
		if len(slow) > 0 {
			r.Note = fmt.Sprintf("%d runs took longer than %s without any fault", len(slow), slowRun0)
		}
		r.Slow = slow
		r.CPUSec = float64(c.cpuTicks()-cpu0) / proc.ClockTicks()
		if index1, syncs1 := c.logCounters(ctx); index1 >= index0 && syncs1 >= syncs0 {
			r.Entries, r.Syncs = index1-index0, syncs1-syncs0
		}
		if r.Completed < r.Ack {
			r.Note += fmt.Sprintf("; %d acknowledged runs not finished after 2 min", r.Ack-r.Completed)
		}
		fmt.Printf("  %s %s: %d/%d acked, %d done in %s: %.1f runs/s (%.1f to 99%%), ack p50/p99 %s/%s, run p50/p99 %s/%s, step hop p50/p99 %s/%s\n",
			label, phase, r.Ack, r.Sent, r.Completed, fmtDur(r.Span), r.RunsPerSec, r.Runs99,
			fmtDur(r.Ack50.pct(50)), fmtDur(r.Ack50.pct(99)), fmtDur(r.E2E.pct(50)), fmtDur(r.E2E.pct(99)),
			fmtDur(r.Hops.pct(50)), fmtDur(r.Hops.pct(99)))
		out = append(out, r)
	}
	return out
}

package main

// The flow scenario: what flow control costs per step. Two functions of the
// same 3-step shape as benchgo-import-contacts, one without flow control and
// one with `"concurrency": [{"limit": 1, "key": "event.data.k"}]`, get the
// same burst in one Cairn process, back to back (-flow-passes, by default
// none,conc,conc,none,conc-few: a pass costs more than the one before in the
// same process, and the ABBA order cancels that drift in the ratio of the
// means):
//
//   - none:     -flow-n events to benchgo-flow-none (data.k = k0..kN-1, unused)
//   - conc:     -flow-n events to benchgo-flow-conc, every one its own key
//     (N distinct concurrency keys: never a wait, only the bookkeeping)
//   - conc-few: -flow-n events to benchgo-flow-conc over -flow-keys keys
//     (k(i mod K)): limit 1 per key, so at most K steps in flight
//
// Progress is followed from the app (it sees every run's final 200), so the
// bench does not poll Cairn while a pass runs; Cairn's own stamps are read
// once the app has seen every run end. The app records every call's
// [arrival, answer] interval per key: two overlapping intervals of one key
// mean Cairn ran two steps of that key at once, a bug under limit 1.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/internal/proc"
)

const (
	flowNoneFnID  = "benchgo-flow-none"
	flowNoneEvent = "bench/flow.none"
	flowConcFnID  = "benchgo-flow-conc"
	flowConcEvent = "bench/flow.conc"
	flowConcKey   = "event.data.k"
	flowWarmup    = 5 // events per flow function before the passes, not measured
)

// withConcurrency adds the keyed limit to benchgo-flow-conc's definition,
// exactly as the SDK sends it.
func withConcurrency(fn map[string]any) map[string]any {
	fn["concurrency"] = []any{map[string]any{"limit": 1, "key": flowConcKey}}
	return fn
}

// flowTimeout is what the flow scenario adds to the default -timeout: each
// pass at a pessimistic 150 runs/s, plus reading the runs back.
func flowTimeout(o *options) time.Duration {
	return time.Duration(o.flowN*len(o.flowPasses)) * 7 * time.Millisecond
}

// ---------------------------------------------------------------------------
// App side

// flowCall is one call's stay in the app: arrival → just before its answer
// is written (unix ns).
type flowCall struct {
	at, end int64
	run     string
}

// flowRun is what the app saw of one run.
type flowRun struct {
	fn, key, event string
	calls          int
	firstAt        int64
	doneAt         int64 // its 200 was flushed
}

// flowTracker follows the calls of the flow functions.
type flowTracker struct {
	mu        sync.Mutex
	live      map[string]int // fn \x00 key -> calls in flight now
	liveKey   map[string]int // fn -> highest live count of one key
	liveAll   map[string]int // fn -> calls in flight now, all keys
	liveAllHi map[string]int // fn -> highest of liveAll
	calls     map[string][]flowCall
	runs      map[string]*flowRun
	done      map[string]int // fn -> runs answered 200
	seen      map[string]int // fn -> calls
}

func newFlowTracker() *flowTracker {
	f := &flowTracker{}
	f.reset()
	return f
}

// reset forgets everything (between passes, when nothing is in flight).
func (f *flowTracker) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live, f.liveKey, f.liveAll, f.liveAllHi = map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	f.calls, f.runs = map[string][]flowCall{}, map[string]*flowRun{}
	f.done, f.seen = map[string]int{}, map[string]int{}
}

func (f *flowTracker) enter(fn, key, run, event string, arrived time.Time) {
	fk := fn + "\x00" + key
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen[fn]++
	f.live[fk]++
	f.liveKey[fn] = max(f.liveKey[fn], f.live[fk])
	f.liveAll[fn]++
	f.liveAllHi[fn] = max(f.liveAllHi[fn], f.liveAll[fn])
	r := f.runs[run]
	if r == nil {
		r = &flowRun{fn: fn, key: key, event: event, firstAt: arrived.UnixNano()}
		f.runs[run] = r
	}
	r.calls++
}

func (f *flowTracker) leave(fn, key, run string, arrived time.Time) {
	end := time.Now().UnixNano()
	fk := fn + "\x00" + key
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[fk]--
	f.liveAll[fn]--
	f.calls[fk] = append(f.calls[fk], flowCall{at: arrived.UnixNano(), end: end, run: run})
}

// answered notes that run's final 200 was flushed.
func (f *flowTracker) answered(fn, run string, t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.runs[run]; r != nil && r.doneAt == 0 {
		r.doneAt = t.UnixNano()
		f.done[fn]++
	}
}

// progress returns the runs answered 200 and the calls seen, for fn.
func (f *flowTracker) progress(fn string) (done, calls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done[fn], f.seen[fn]
}

// flowStats is the app's view of one pass.
type flowStats struct {
	runs       map[string]flowRun // run id ->
	maxPerKey  int                // from the intervals
	maxAll     int                // from the intervals, all keys
	livePerKey int                // live counter in the handler
	liveAll    int
	overlaps   int      // calls that arrived while another call of their key was in the app
	examples   []string // a few overlaps
	keys       int      // distinct keys seen
}

// analyze sweeps the recorded intervals of fn.
func (f *flowTracker) analyze(fn string) flowStats {
	f.mu.Lock()
	st := flowStats{runs: make(map[string]flowRun, len(f.runs)), livePerKey: f.liveKey[fn], liveAll: f.liveAllHi[fn]}
	for id, r := range f.runs {
		if r.fn == fn {
			st.runs[id] = *r
		}
	}
	byKey := map[string][]flowCall{}
	for fk, cs := range f.calls {
		if len(fk) > len(fn) && fk[:len(fn)] == fn && fk[len(fn)] == 0 {
			byKey[fk[len(fn)+1:]] = append([]flowCall(nil), cs...)
		}
	}
	f.mu.Unlock()

	type edge struct {
		t  int64
		up int
	}
	var all []edge
	st.keys = len(byKey)
	for key, cs := range byKey {
		sort.Slice(cs, func(i, j int) bool { return cs[i].at < cs[j].at })
		var open []flowCall // calls of this key still in the app at cs[i].at
		for _, c := range cs {
			kept := open[:0]
			for _, o := range open {
				if o.end > c.at {
					kept = append(kept, o)
				}
			}
			open = append(kept, c)
			st.maxPerKey = max(st.maxPerKey, len(open))
			if len(open) > 1 {
				st.overlaps++
				if len(st.examples) < 3 {
					o := open[0]
					st.examples = append(st.examples, fmt.Sprintf("key %q: a call of run %s arrived at %s while one of run %s, arrived at %s, was answered only at %s",
						key, c.run, fmtNs(c.at), o.run, fmtNs(o.at), fmtNs(o.end)))
				}
			}
			all = append(all, edge{c.at, 1}, edge{c.end, -1})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].t != all[j].t {
			return all[i].t < all[j].t
		}
		return all[i].up < all[j].up // an end before a start at the same instant
	})
	n := 0
	for _, e := range all {
		n += e.up
		st.maxAll = max(st.maxAll, n)
	}
	return st
}

func fmtNs(ns int64) string { return time.Unix(0, ns).Format("15:04:05.000000") }

// ---------------------------------------------------------------------------
// Figures

// FlowResult holds the flow scenario's own figures (Result has the rest).
type FlowResult struct {
	Pass        string `json:"pass"` // none, conc, conc-few
	Function    string `json:"function"`
	Concurrency string `json:"concurrency"` // as registered, or "none"
	Keys        int    `json:"distinct_keys"`
	Batch       int    `json:"events_per_post"`

	AppRunsDone    int     `json:"app_runs_answered_200"`
	AppCallsPerRun float64 `json:"app_calls_per_run"`
	MaxPerKey      int     `json:"max_calls_in_flight_per_key"`      // from the intervals
	MaxInFlight    int     `json:"max_calls_in_flight"`              // from the intervals, all keys
	LiveMaxPerKey  int     `json:"live_max_calls_in_flight_per_key"` // live count in the handler
	LiveMaxAll     int     `json:"live_max_calls_in_flight"`
	Overlaps       int     `json:"same_key_overlaps"` // must be 0 with limit 1
	OnlyOverlaps   bool    `json:"-"`                 // the pass's error is only overlaps: later passes still run

	CPUPerStepVsNone float64 `json:"cpu_per_step_vs_none,omitempty"` // this pass / the mean of the none passes, same process

	// From the histories of a sample of runs (keyed passes): how often a
	// claim found the key full (call.waiting), per call claimed.
	HistSample   int     `json:"history_sample"`
	WaitsPerCall float64 `json:"call_waiting_per_call"`
}

// flowHistorySample is how many runs' histories a keyed pass reads.
const flowHistorySample = 200

type flowPass struct {
	name, fn, event, conc string
	keys                  int
}

// runFlow warms the flow functions up and runs the three passes.
func runFlow(ctx context.Context, e *env) []*Result {
	o := e.opts
	conc := fmt.Sprintf(`[{"limit":1,"key":%q}]`, flowConcKey)
	kinds := map[string]flowPass{
		"none":     {"none", flowNoneFnID, flowNoneEvent, "none", o.flowN},
		"conc":     {"conc", flowConcFnID, flowConcEvent, conc, o.flowN},
		"conc-few": {"conc-few", flowConcFnID, flowConcEvent, conc, o.flowKeys},
	}
	var passes []flowPass
	for _, name := range o.flowPasses {
		passes = append(passes, kinds[name])
	}
	logf("%s: flow: warm-up, %d events per flow function", e.app, flowWarmup)
	for _, p := range []flowPass{kinds["none"], kinds["conc"]} {
		w := flowPass{p.name, p.fn, p.event, p.conc, flowWarmup}
		r := runFlowPass(ctx, e, w, flowWarmup, true)
		if r.Error != "" || r.Completed != flowWarmup {
			r.Scenario = "flow warm-up " + p.fn
			if r.Error == "" {
				r.Error = fmt.Sprintf("warm-up: %d/%d runs completed", r.Completed, flowWarmup)
			}
			return []*Result{r}
		}
	}
	settle(ctx, e.cairn, 15*time.Second)
	var out []*Result
	for _, p := range passes {
		if ctx.Err() != nil {
			break
		}
		logf("%s: flow %s: %d events to %s, %d distinct keys, POSTs of %d (%d senders)",
			e.app, p.name, o.flowN, p.fn, p.keys, o.flowBatch, o.senders)
		r := runFlowPass(ctx, e, p, o.flowN, false)
		logf("%s: flow %s: %d/%d runs completed in %.2fs (%s runs/s, %s steps/s), p50 %s ms, p99 %s ms, CPU/step %.3f ms, max in flight per key %d%s",
			e.app, p.name, r.Completed, r.Events, r.WallSec, num(r.RunsPerSec), num(r.StepsPerSec),
			num(r.LatencyMs.P50), num(r.LatencyMs.P99), r.CPUSecPerStep*1000, r.Flow.MaxPerKey, errSuffix(r.Error))
		out = append(out, r)
		if r.Error != "" && !r.Flow.OnlyOverlaps {
			break // the node is in an unknown state
		}
		// Let the pass's background work (compactions) end before the next
		// one, and show what it was.
		r.AfterCPUPct = measureIdle(ctx, e.sampler, 2*time.Second)
		settle(ctx, e.cairn, 15*time.Second)
	}
	if none := flowMean(out, "none", func(r *Result) float64 { return r.CPUSecPerStep }); none > 0 {
		for _, r := range out {
			if r.Flow.Pass != "none" && r.Error == "" && r.Completed > 0 {
				r.Flow.CPUPerStepVsNone = r.CPUSecPerStep / none
			}
		}
	}
	return out
}

// flowMean is the mean of f over the successful passes of a kind (0 if none).
func flowMean(rs []*Result, pass string, f func(*Result) float64) float64 {
	sum, n := 0.0, 0
	for _, r := range rs {
		if r.Flow != nil && r.Flow.Pass == pass && r.Error == "" && r.Completed > 0 {
			sum += f(r)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// runFlowPass sends n events to p's function and waits for every run.
func runFlowPass(ctx context.Context, e *env, p flowPass, n int, warm bool) *Result {
	o := e.opts
	fr := &FlowResult{Pass: p.name, Function: p.fn, Concurrency: p.conc, Keys: min(p.keys, n), Batch: o.flowBatch}
	res := &Result{App: e.app, Scenario: "flow " + p.name, Flow: fr,
		Offered: fmt.Sprintf("%d events, POSTs of %d", n, o.flowBatch)}
	// Nothing of an earlier pass is in flight: every run was answered and
	// Cairn saw it end.
	e.flow.reset()
	base, err := takeBaseline(ctx, e)
	if err != nil {
		res.Error = err.Error()
		return res
	}

	// -- send ---------------------------------------------------------------
	type batch struct{ from, k int }
	var (
		batches   = make(chan batch)
		sendsDone = make(chan struct{})
		wg        sync.WaitGroup
		mu        sync.Mutex
		ids       = make([]string, n) // event ids by index
		postMs    []float64
		errs      []string
		accepted  int
	)
	go func() {
		defer close(batches)
		for from := 0; from < n; from += o.flowBatch {
			select {
			case batches <- batch{from, min(o.flowBatch, n-from)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	start := time.Now()
	for range o.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				t0 := time.Now()
				got, err := postFlowEvents(ctx, e.cairn, p.event, b.from, b.k, p.keys, warm)
				t1 := time.Now()
				mu.Lock()
				if err != nil {
					errs = append(errs, err.Error())
				} else {
					copy(ids[b.from:], got)
					accepted += len(got)
					postMs = append(postMs, float64(t1.Sub(t0).Microseconds())/1000)
				}
				mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(sendsDone) }()

	// -- wait until the app answered every run's final call -----------------
	lastCalls, lastProgress, lastLog := -1, time.Now(), time.Now()
	var werr error
	for {
		done, calls := e.flow.progress(p.fn)
		mu.Lock()
		acc := accepted
		mu.Unlock()
		if isClosed(sendsDone) && done >= acc {
			break
		}
		if calls != lastCalls {
			lastCalls, lastProgress = calls, time.Now()
		}
		if time.Since(lastProgress) > o.stall {
			werr = fmt.Errorf("stuck: no call reached the app for %s; %d of %d runs answered", o.stall, done, acc)
			break
		}
		if e.cairn.proc.Exited() {
			werr = fmt.Errorf("cairn exited: %v", e.cairn.proc.Err())
			break
		}
		if !warm && time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			logf("%s: flow %s: %4.0fs: %d events accepted, %d runs done, %d calls", e.app, p.name,
				time.Since(start).Seconds(), acc, done, calls)
		}
		select {
		case <-ctx.Done():
			werr = ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if werr != nil {
			break
		}
	}
	now := time.Now()
	<-sendsDone

	// -- figures --------------------------------------------------------------
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	res.Events = accepted
	res.SendErrors = len(errs)
	if len(errs) > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d POST /e failed; first: %s", len(errs), errs[0]))
	}
	res.AcceptMs = percentiles(postMs)
	st := e.flow.analyze(p.fn)
	fr.MaxPerKey, fr.MaxInFlight, fr.LiveMaxPerKey, fr.LiveMaxAll, fr.Overlaps = st.maxPerKey, st.maxAll, st.livePerKey, st.liveAll, st.overlaps
	calls := 0
	for _, r := range st.runs {
		calls += r.calls
		if r.doneAt > 0 {
			fr.AppRunsDone++
		}
	}
	if len(st.runs) > 0 {
		fr.AppCallsPerRun = float64(calls) / float64(len(st.runs))
	}

	// Cairn's view of every run the app saw (after the measured window).
	views := readRuns(fctx, e.cairn, st.runs, werr == nil)
	var finished []runView
	byEvent := map[string]bool{}
	stillRunning := 0
	for _, v := range views {
		if len(v.EventIDs) > 0 {
			byEvent[v.EventIDs[0]] = true
		}
		if v.Status == "running" || v.Status == "" {
			stillRunning++
		} else {
			finished = append(finished, v)
		}
	}
	var noRun []string
	for _, id := range ids {
		if id != "" && !byEvent[id] {
			noRun = append(noRun, id)
		}
	}
	res.Unfinished = stillRunning + len(noRun)
	fillFigures(fctx, e, res, base, finished, start, now)
	if p.conc != "none" && !warm {
		countWaits(fctx, e.cairn, fr, finished)
	}
	if res.Failed > 0 && werr == nil {
		werr = fmt.Errorf("%d runs did not complete", res.Failed)
	}
	if werr == nil && res.Unfinished > 0 {
		werr = fmt.Errorf("the app answered every run, but Cairn still shows %d runs running and %d events without a run seen by the app",
			stillRunning, len(noRun))
	}
	if werr != nil {
		res.Error = werr.Error()
		describeFlowStuck(fctx, e, res, st, views, noRun)
	}
	if st.overlaps > 0 && p.conc != "none" {
		msg := fmt.Sprintf("BUG: %d calls of %s arrived while another call of the same concurrency key (limit 1) was still in the app; max %d at once per key",
			st.overlaps, p.fn, st.maxPerKey)
		res.Notes = append(res.Notes, msg)
		for _, x := range st.examples {
			res.Notes = append(res.Notes, "overlap: "+x)
		}
		if res.Error == "" {
			res.Error = msg
			fr.OnlyOverlaps = true
		}
	}
	if p.conc != "none" && st.maxAll > p.keys {
		res.Notes = append(res.Notes, fmt.Sprintf("BUG: %d calls in flight at once with %d keys of limit 1", st.maxAll, p.keys))
	}
	return res
}

// countWaits reads the histories of a sample of finished runs and counts
// the claims that found a concurrency key full.
func countWaits(ctx context.Context, c *cairnNode, fr *FlowResult, finished []runView) {
	waits, claims := 0, 0
	for i, r := range finished {
		if i >= flowHistorySample {
			break // finished is in no particular order (map)
		}
		raw, err := c.history(ctx, r.ID)
		var hist []struct {
			Type string `json:"type"`
		}
		if err != nil || json.Unmarshal(raw, &hist) != nil {
			continue
		}
		fr.HistSample++
		for _, h := range hist {
			switch h.Type {
			case "call.waiting":
				waits++
			case "call.claimed":
				claims++
			}
		}
	}
	if claims > 0 {
		fr.WaitsPerCall = float64(waits) / float64(claims)
	}
}

// postFlowEvents sends k events named name in one POST /e, data.k =
// k<i mod keys> for i in [from, from+k), and returns their ids in order.
func postFlowEvents(ctx context.Context, c *cairnNode, name string, from, k, keys int, warm bool) ([]string, error) {
	prefix := "k"
	if warm {
		prefix = "warm"
	}
	var b bytes.Buffer
	b.Grow(k * 60)
	b.WriteByte('[')
	for i := from; i < from+k; i++ {
		if i > from {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":"` + name + `","data":{"k":"` + prefix + strconv.Itoa(i%keys) + `"}}`)
	}
	b.WriteByte(']')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.eventURL(), &b)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	var out struct {
		IDs []string `json:"ids"`
	}
	if err := doJSON(req, &out); err != nil {
		return nil, err
	}
	if len(out.IDs) != k {
		return nil, fmt.Errorf("POST /e/bench: %d ids for %d events", len(out.IDs), k)
	}
	return out.IDs, nil
}

// readRuns reads GET /v1/runs/<id> for every run the app saw. With wait,
// runs still running (the app's 200 is flushed just before Cairn commits
// the end) are read again for up to 10 s.
func readRuns(ctx context.Context, c *cairnNode, runs map[string]flowRun, wait bool) []runView {
	ids := make([]string, 0, len(runs))
	for id := range runs {
		ids = append(ids, id)
	}
	out := make([]runView, len(ids))
	deadline := time.Now().Add(10 * time.Second)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				for {
					v, err := c.run(ctx, ids[i])
					if err != nil {
						v = runView{ID: ids[i], Error: []byte(fmt.Sprintf("%q", "(bench) "+err.Error()))}
					}
					out[i] = v
					if err != nil || v.Status != "running" || !wait || time.Now().After(deadline) || ctx.Err() != nil {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	for i := range ids {
		select {
		case work <- i:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return out
}

// describeFlowStuck adds what Cairn says about a few runs that did not end
// and events without a run, and the tail of Cairn's log.
func describeFlowStuck(ctx context.Context, e *env, res *Result, st flowStats, views []runView, noRun []string) {
	shown := 0
	for _, v := range views {
		if shown >= 3 {
			break
		}
		if v.Status == "running" || v.Status == "" {
			shown++
			r := st.runs[v.ID]
			res.Notes = append(res.Notes, fmt.Sprintf("unfinished run %s (key %q; app: %d calls, answered 200: %v): status %s, waiting %q, calls %d, history:\n%s",
				v.ID, r.key, r.calls, r.doneAt > 0, v.Status, v.Waiting, v.Calls, compactHistory(ctx, e.cairn, v)))
		}
	}
	for i, ev := range noRun {
		if i >= 3 {
			res.Notes = append(res.Notes, fmt.Sprintf("… %d events in all whose run never called the app", len(noRun)))
			break
		}
		runs, err := e.cairn.eventRuns(ctx, ev)
		if err != nil || len(runs) == 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("event %s: no run (%v)", ev, err))
			continue
		}
		r := runs[0]
		res.Notes = append(res.Notes, fmt.Sprintf("event %s: run %s never called the app: status %s, waiting %q, calls %d, history:\n%s",
			ev, r.ID, r.Status, r.Waiting, r.Calls, compactHistory(ctx, e.cairn, r)))
	}
	res.Notes = append(res.Notes, fmt.Sprintf("cairn log tail (%s):\n%s", e.cairn.logPath, proc.TailFile(e.cairn.logPath, 20)))
}

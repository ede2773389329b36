package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/internal/proc"
)

const stepsPerRun = 3

var eventBody = []byte(`{"name":"` + eventName + `","data":{}}`)

// env is what a scenario needs from its app mode.
type env struct {
	app     string
	cairn   *cairnNode
	sampler *sampler
	hops    *hopMeter
	sleeper *sleeper     // Go app only
	flow    *flowTracker // Go app only
	crypto  *cryptoMeter // raw app in production mode only
	keys    *prodKeys    // production mode: the node's keys
	opts    *options
	ckpt    *ckptMeter // checkpoint POSTs; Go apps: handler time
	split   *cpuSplit  // the bench process's CPU, by part
	// The app's CPU: a child's (appPid), or with appInBench the app's share
	// of the bench process's.
	appPid     int
	appInBench bool
	appCPU     string // what the app's CPU covers
}

// sent is one accepted event.
type sent struct {
	id       string
	at       time.Time // when the POST started
	acceptMs float64   // POST round trip
}

// sendEvent POSTs one event to Cairn's event API.
func sendEvent(ctx context.Context, c *cairnNode) (sent, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.eventURL(), bytes.NewReader(eventBody))
	if err != nil {
		return sent{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpc.Do(req)
	if err != nil {
		return sent{}, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return sent{}, err
	}
	var out struct {
		IDs    []string `json:"ids"`
		Status int      `json:"status"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil || len(out.IDs) != 1 {
		return sent{}, fmt.Errorf("POST /e/bench: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	return sent{id: out.IDs[0], at: start, acceptMs: float64(time.Since(start).Microseconds()) / 1000}, nil
}

// ---------------------------------------------------------------------------
// Completion tracking

// tracker follows the runs of the events a scenario sent until all are done.
type tracker struct {
	c *cairnNode

	mu       sync.Mutex
	pending  map[string]bool    // event id -> no finished run seen yet
	finished map[string]runView // event id -> its finished run
	running  map[string]runView // event id -> last seen unfinished run
	progress time.Time          // last time a run finished
	polls    int                // GETs made to poll
}

func newTracker(c *cairnNode) *tracker {
	return &tracker{c: c, pending: map[string]bool{}, finished: map[string]runView{},
		running: map[string]runView{}, progress: time.Now()}
}

func (t *tracker) add(eventID string) {
	t.mu.Lock()
	if _, done := t.finished[eventID]; !done {
		t.pending[eventID] = true
	}
	t.mu.Unlock()
}

func (t *tracker) note(r runView) {
	if len(r.EventIDs) == 0 {
		return
	}
	ev := r.EventIDs[0]
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.pending[ev] {
		return
	}
	if r.Status == "running" {
		t.running[ev] = r
		return
	}
	delete(t.pending, ev)
	delete(t.running, ev)
	t.finished[ev] = r
	t.progress = time.Now()
}

func (t *tracker) pendingIDs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, 0, len(t.pending))
	for id := range t.pending {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// wait polls until every event added has a finished run and sendsDone is
// closed. It polls GET /v1/runs?limit=1000 (the newest runs) and, once all
// events are sent, asks GET /v1/events/<id>/runs for pending events that
// have dropped out of that window. It fails if nothing finishes for stall.
func (t *tracker) wait(ctx context.Context, sendsDone <-chan struct{}, every, stall time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastPerEvent := time.Time{}
	for {
		// The runs we wait for are among the newest: ask for a window a bit
		// larger than what is pending, so that polling stays cheap for Cairn.
		limit := min(max(2*len(t.pendingIDs())+50, 100), 1000)
		runs, err := t.c.recentRuns(ctx, limit)
		t.mu.Lock()
		t.polls++
		t.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("polling runs: %w", err)
		}
		inWindow := map[string]bool{}
		for _, r := range runs {
			t.note(r)
			if len(r.EventIDs) > 0 {
				inWindow[r.EventIDs[0]] = true
			}
		}
		allSent := false
		select {
		case <-sendsDone:
			allSent = true
		default:
		}
		pend := t.pendingIDs()
		if allSent && len(pend) == 0 {
			return nil
		}
		if allSent && time.Since(lastPerEvent) >= time.Second {
			lastPerEvent = time.Now()
			var missing []string
			for _, id := range pend {
				if !inWindow[id] {
					missing = append(missing, id)
				}
			}
			if err := t.pollEvents(ctx, missing); err != nil && ctx.Err() == nil {
				return err
			}
			if len(t.pendingIDs()) == 0 {
				return nil
			}
		}
		if t.c.proc.Exited() {
			return fmt.Errorf("cairn exited: %v", t.c.proc.Err())
		}
		t.mu.Lock()
		idle := time.Since(t.progress)
		t.mu.Unlock()
		if allSent && idle > stall {
			return fmt.Errorf("stuck: no run finished for %s, %d still pending", stall.Round(time.Second), len(pend))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// pollEvents asks Cairn for the runs of each event, a few at a time.
func (t *tracker) pollEvents(ctx context.Context, ids []string) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
		work = make(chan string)
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				runs, err := t.c.eventRuns(ctx, id)
				t.mu.Lock()
				t.polls++
				t.mu.Unlock()
				if err != nil {
					mu.Lock()
					ferr = err
					mu.Unlock()
					continue
				}
				for _, r := range runs {
					t.note(r)
				}
			}
		}()
	}
	for _, id := range ids {
		select {
		case work <- id:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return ferr
}

// ---------------------------------------------------------------------------
// Scenarios

// baseline is the state of Cairn when a scenario starts.
type baseline struct {
	at      time.Time
	ticks   uint64
	raft    dirUsage
	fsm     dirUsage
	archive dirUsage
	log     logCounts
	logFrom int64
	hwmOK   bool
	appTick uint64
	// The whole machine's CPU ticks (busy, all), for what other processes
	// took meanwhile.
	machineBusy, machineTotal uint64
}

func takeBaseline(ctx context.Context, e *env) (baseline, error) {
	e.hops.take() // drop hops of earlier traffic
	if e.ckpt != nil {
		e.ckpt.take()
	}
	b := baseline{raft: diskUsage(filepath.Join(e.cairn.dataDir, "raft")),
		fsm: diskUsage(filepath.Join(e.cairn.dataDir, "fsm")), archive: diskUsage(filepath.Join(e.cairn.dataDir, archiveDir))}
	var err error
	if b.log, err = e.cairn.logCounters(ctx); err != nil {
		return b, err
	}
	b.hwmOK = proc.ResetPeakRSS(e.cairn.proc.Pid()) == nil
	_, _, b.logFrom = logProblems(e.cairn.logPath, 0, 0)
	p := e.sampler.sample()
	b.at, b.ticks = p.t, p.ticks
	if e.appPid > 0 {
		b.appTick, _ = proc.CPUTicks(e.appPid)
	}
	b.machineBusy, b.machineTotal, _ = machineCPU()
	if e.split != nil {
		e.split.begin()
	}
	return b, nil
}

// runBurst sends n events as fast as `senders` concurrent clients can.
func runBurst(ctx context.Context, e *env, n, senders int) *Result {
	res := &Result{App: e.app, Scenario: "burst", Offered: fmt.Sprintf("%d events, %d senders", n, senders)}
	base, err := takeBaseline(ctx, e)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	tr := newTracker(e.cairn)
	sendsDone := make(chan struct{})
	var (
		mu      sync.Mutex
		sends   []sent
		sendErr []string
		next    = make(chan struct{}, n)
	)
	for range n {
		next <- struct{}{}
	}
	close(next)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if ctx.Err() != nil {
					return
				}
				s, err := sendEvent(ctx, e.cairn)
				mu.Lock()
				if err != nil {
					sendErr = append(sendErr, err.Error())
				} else {
					sends = append(sends, s)
				}
				mu.Unlock()
				if err == nil {
					tr.add(s.id)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(sendsDone) }()
	werr := tr.wait(ctx, sendsDone, e.opts.poll, e.opts.stall)
	<-sendsDone
	finishResult(ctx, e, res, base, tr, sends, sendErr, werr)
	return res
}

// runSteady sends events at rate per second for d.
func runSteady(ctx context.Context, e *env, rate float64, d time.Duration) *Result {
	res := &Result{App: e.app, Scenario: "steady", Offered: fmt.Sprintf("%g events/s for %s", rate, d)}
	base, err := takeBaseline(ctx, e)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	tr := newTracker(e.cairn)
	sendsDone := make(chan struct{})
	var (
		mu      sync.Mutex
		sends   []sent
		sendErr []string
		wg      sync.WaitGroup
	)
	total := int(rate*d.Seconds() + 0.5)
	interval := time.Duration(float64(time.Second) / rate)
	go func() {
		defer func() { wg.Wait(); close(sendsDone) }()
		start := time.Now()
		for i := range total {
			// Fixed schedule (no drift); each send has its own goroutine so a
			// slow answer does not delay the next event.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(start.Add(time.Duration(i) * interval))):
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := sendEvent(ctx, e.cairn)
				mu.Lock()
				if err != nil {
					sendErr = append(sendErr, err.Error())
				} else {
					sends = append(sends, s)
				}
				mu.Unlock()
				if err == nil {
					tr.add(s.id)
				}
			}()
		}
	}()
	werr := tr.wait(ctx, sendsDone, e.opts.poll, e.opts.stall)
	<-sendsDone
	finishResult(ctx, e, res, base, tr, sends, sendErr, werr)
	return res
}

// finishResult computes a scenario's figures.
func finishResult(ctx context.Context, e *env, res *Result, base baseline, tr *tracker,
	sends []sent, sendErr []string, werr error) {
	now := time.Now()
	// Final readings must work even if the run was interrupted.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	res.Events = len(sends)
	res.SendErrors = len(sendErr)
	if len(sendErr) > 0 {
		res.Notes = append(res.Notes, "first send error: "+sendErr[0])
	}
	tr.mu.Lock()
	finished := make([]runView, 0, len(tr.finished))
	for _, r := range tr.finished {
		finished = append(finished, r)
	}
	res.Unfinished = len(tr.pending)
	res.Polls = tr.polls
	tr.mu.Unlock()

	if len(sends) == 0 {
		res.Error = "no event was accepted"
		return
	}
	first, last := sends[0].at, sends[0].at
	accept := make([]float64, 0, len(sends))
	for _, s := range sends {
		if s.at.Before(first) {
			first = s.at
		}
		if end := s.at.Add(time.Duration(s.acceptMs * float64(time.Millisecond))); end.After(last) {
			last = end
		}
		accept = append(accept, s.acceptMs)
	}
	res.AcceptMs = percentiles(accept)
	if d := last.Sub(first).Seconds(); d > 0 {
		res.SendSec, res.EventsPerSec = d, float64(len(sends))/d
	}
	fillFigures(ctx, e, res, base, finished, first, now)

	if werr != nil {
		res.Error = werr.Error()
		if !errors.Is(werr, context.Canceled) && !errors.Is(werr, context.DeadlineExceeded) {
			describeStuck(ctx, e, res, tr)
		}
	}
}

// fillFigures computes the figures common to the run-counting scenarios
// from the finished runs: throughput and latency (Cairn's stamps), CPU,
// memory and disk over first send → the last run's end, step hops, and
// Cairn's log problems. now is when the scenario stopped waiting.
func fillFigures(ctx context.Context, e *env, res *Result, base baseline, finished []runView, first, now time.Time) {
	var lat []float64
	var lastEnd int64
	calls := 0
	for _, r := range finished {
		switch r.Status {
		case "completed":
			res.Completed++
			lat = append(lat, float64(r.EndedAt-r.CreatedAt))
		default:
			res.Failed++
			if res.Failed <= 3 {
				res.Notes = append(res.Notes, fmt.Sprintf("run %s %s: %s", r.ID, r.Status, truncate(string(r.Error), 300)))
			}
		}
		calls += r.Calls
		if r.EndedAt > lastEnd {
			lastEnd = r.EndedAt
		}
	}
	res.LatencyMs = percentiles(lat)
	// An outlier is worth a look: show the slowest run's history.
	if p := res.LatencyMs; p.N > 0 && p.Max > 200 && p.Max > 5*p.P50 {
		var slow runView
		for _, r := range finished {
			if r.Status == "completed" && float64(r.EndedAt-r.CreatedAt) == p.Max {
				slow = r
				break
			}
		}
		res.Notes = append(res.Notes, fmt.Sprintf("slowest run %s took %.0f ms (p50 %.0f ms); history:\n%s",
			slow.ID, p.Max, p.P50, compactHistory(ctx, e.cairn, slow)))
	}
	if len(finished) > 0 {
		res.CallsPerRun = float64(calls) / float64(len(finished))
	}

	// The scenario's window: first send to the last run's end (Cairn's
	// clock, the same host clock as ours).
	end := now
	if lastEnd > 0 {
		end = time.UnixMilli(lastEnd)
	}
	wall := end.Sub(first).Seconds()
	if wall <= 0 {
		wall = 0.001
	}
	res.WallSec = wall
	steps := res.Completed * stepsPerRun
	res.Steps = steps
	res.RunsPerSec = float64(res.Completed) / wall
	res.StepsPerSec = float64(steps) / wall

	// CPU: sample at (or just after) the last run's end, minus the baseline.
	endSample := e.sampler.at(end.Add(-time.Millisecond))
	if endSample.ticks >= base.ticks {
		res.CPUSec = float64(endSample.ticks-base.ticks) / proc.ClockTicks()
	}
	if steps > 0 {
		res.CPUSecPerStep = res.CPUSec / float64(steps)
	}

	// Memory.
	pid := e.cairn.proc.Pid()
	if hwm, err := proc.StatusKB(pid, "VmHWM"); err == nil {
		res.PeakRSSMiB = float64(hwm) / 1024
		res.PeakRSSSource = "VmHWM since scenario start"
		if !base.hwmOK {
			res.PeakRSSSource = "VmHWM since process start (clear_refs failed)"
		}
	} else if m := e.sampler.maxRSS(base.at, now); m > 0 {
		res.PeakRSSMiB = float64(m) / 1024
		res.PeakRSSSource = "max sampled VmRSS"
	}
	if rss, err := proc.StatusKB(pid, "VmRSS"); err == nil {
		res.EndRSSMiB = float64(rss) / 1024
	}

	// Log growth.
	raft := diskUsage(filepath.Join(e.cairn.dataDir, "raft"))
	fsmU := diskUsage(filepath.Join(e.cairn.dataDir, "fsm"))
	res.RaftBytes = raft.Apparent - base.raft.Apparent
	res.RaftAllocBytes = raft.Allocated - base.raft.Allocated
	res.FSMBytes = fsmU.Apparent - base.fsm.Apparent
	res.ArchiveBytes = diskUsage(filepath.Join(e.cairn.dataDir, archiveDir)).Apparent - base.archive.Apparent
	if c, err := e.cairn.logCounters(ctx); err == nil && c.index >= base.log.index && c.syncs >= base.log.syncs && c.holds >= base.log.holds {
		res.LogEntries, res.LogSyncs, res.CommitHolds = c.index-base.log.index, c.syncs-base.log.syncs, c.holds-base.log.holds
	}
	if steps > 0 {
		res.RaftBytesPerStep = float64(res.RaftBytes) / float64(steps)
		res.ArchiveBytesPerStep = float64(res.ArchiveBytes) / float64(steps)
		res.EntriesPerStep = float64(res.LogEntries) / float64(steps)
		res.SyncsPerStep = float64(res.LogSyncs) / float64(steps)
	}
	if res.LogEntries > 0 {
		res.BytesPerEntry = float64(res.RaftBytes) / float64(res.LogEntries)
	}
	if a, err := e.cairn.archiveStatus(ctx); err == nil && a != nil && a.Last >= a.First && a.Segments > 0 {
		res.ArchiveBytesPerEntry = float64(a.Bytes) / float64(a.Last-a.First+1)
	}

	// Engine overhead per hop, from the app side.
	gaps, appCalls := e.hops.take()
	hop := make([]float64, len(gaps))
	for i, g := range gaps {
		hop[i] = float64(g.Microseconds()) / 1000
	}
	res.HopMs = percentiles(hop)
	res.AppCalls = appCalls

	// The app's side: its CPU, checkpoint POSTs, HTTP requests per run;
	// and the machine: what every process used over the same window (the
	// baseline → now), and what was left for others.
	mBusy, mTotal, mErr := machineCPU()
	cairnNow := e.sampler.sample()
	var appSec, benchSec float64
	if e.appPid > 0 {
		if t, err := proc.CPUTicks(e.appPid); err == nil && t >= base.appTick {
			appSec = float64(t-base.appTick) / proc.ClockTicks()
			if steps > 0 {
				res.AppCPUMsPerStep = appSec * 1000 / float64(steps)
				res.AppCPUSource = e.appCPU
			}
		}
	}
	if e.split != nil {
		benchSec = noteBenchCPU(e, res, steps).Seconds()
	}
	if mErr == nil && base.machineTotal > 0 && mTotal > base.machineTotal && cairnNow.ticks >= base.ticks {
		all := float64(mTotal - base.machineTotal)
		res.MachineBusyPct = float64(mBusy-base.machineBusy) / all * 100
		cairnSec := float64(cairnNow.ticks-base.ticks) / proc.ClockTicks()
		wall := all / proc.ClockTicks() // CPU-seconds the machine had
		res.OtherCPUPct = max(0, res.MachineBusyPct-(cairnSec+benchSec+appSec)/wall*100)
	}
	if e.ckpt != nil {
		posts, handler := e.ckpt.take()
		res.CheckpointPosts = posts
		if steps > 0 {
			res.HandlerMsPerStep = float64(handler.Microseconds()) / 1000 / float64(steps)
		}
	}
	if len(finished) > 0 {
		res.CheckpointsPerRun = float64(res.CheckpointPosts) / float64(len(finished))
		res.RequestsPerRun = float64(int64(calls)+res.CheckpointPosts) / float64(len(finished))
	}

	// Problems in Cairn's log during the scenario.
	lines, total, _ := logProblems(e.cairn.logPath, base.logFrom, 5)
	res.CairnWarnings = total
	for _, l := range lines {
		res.Notes = append(res.Notes, "cairn log: "+truncate(l, 400))
	}
}

// describeStuck adds what Cairn says now about a few unfinished runs.
func describeStuck(ctx context.Context, e *env, res *Result, tr *tracker) {
	for i, ev := range tr.pendingIDs() {
		if i >= 3 {
			break
		}
		runs, err := e.cairn.eventRuns(ctx, ev)
		if err != nil || len(runs) == 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("event %s: no run (%v)", ev, err))
			continue
		}
		r := runs[0]
		res.Notes = append(res.Notes, fmt.Sprintf("unfinished run %s (event %s): status now %s, steps=%d calls=%d, history:\n%s",
			r.ID, ev, r.Status, len(r.Steps), r.Calls, compactHistory(ctx, e.cairn, r)))
	}
	res.Notes = append(res.Notes, fmt.Sprintf("cairn log tail (%s):\n%s", e.cairn.logPath, proc.TailFile(e.cairn.logPath, 20)))
}

// compactHistory renders a run's history one entry a line, in ms since the
// run was created.
func compactHistory(ctx context.Context, c *cairnNode, r runView) string {
	var hist []struct {
		At     int64  `json:"at"`
		Index  uint64 `json:"log_index"`
		Type   string `json:"type"`
		Call   string `json:"call"`
		Name   string `json:"name"`
		Detail string `json:"detail"`
	}
	raw, err := c.history(ctx, r.ID)
	if err == nil {
		err = json.Unmarshal(raw, &hist)
	}
	if err != nil {
		return fmt.Sprintf("(history: %v)", err)
	}
	lines := make([]string, len(hist))
	for i, h := range hist {
		lines[i] = fmt.Sprintf("+%dms idx=%d %s %s %s %s", h.At-r.CreatedAt, h.Index, h.Type, h.Call, h.Name, truncate(h.Detail, 60))
	}
	return strings.Join(lines, "\n")
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

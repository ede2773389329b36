package main

// The sleep scenario: -sleepers runs of benchgo-sleeper, each sleeping
// until the same instant (or within -sleep-spread of it), to measure how
// late Cairn's timers fire, and what N sleeping runs cost in memory, disk
// and idle CPU.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/internal/proc"
)

const (
	sleepFnID      = "benchgo-sleeper"
	sleepEventName = "bench/sleep"
	isoMs          = "2006-01-02T15:04:05.000Z07:00" // RFC 3339 with ms; Z for UTC
)

var napID = stepID("nap")

// ---------------------------------------------------------------------------
// The sleeper function of the Go app

// sleepRun is what the app saw of one run. Times are unix ns.
type sleepRun struct {
	untilMs    int64 // event.data.until
	firstAt    int64 // first call arrived
	answeredAt int64 // its 206 (the Sleep op) was flushed: the sleep is registered just after
	wokeAt     int64 // first call after the sleep arrived
	doneAt     int64 // its 200 was flushed
	firstCalls int32 // calls without the nap memoized (more than 1: re-sent)
	wokeCalls  int32 // calls with it (more than 1: re-sent)
}

// sleeper follows benchgo-sleeper's calls, as the Go app answers them: the
// first call (no "nap" memoized) with one Sleep op until event.data.until,
// the call after the sleep with the run's result.
type sleeper struct {
	mu   sync.Mutex
	runs map[string]*sleepRun // run id ->

	registered atomic.Int64 // runs whose Sleep op was answered
	woke       atomic.Int64 // runs called after their sleep
	done       atomic.Int64 // runs answered 200
	early      atomic.Int64 // post-sleep calls that arrived before until: a Cairn bug
	notNull    atomic.Int64 // post-sleep calls whose steps["nap"] was not null
	bad        atomic.Int64 // calls without a run id or a usable until
	lastErr    atomic.Value // string
}

func newSleeper() *sleeper { return &sleeper{runs: map[string]*sleepRun{}} }

// reset forgets earlier runs (one sleep scenario per Cairn node anyway).
func (s *sleeper) reset() {
	s.mu.Lock()
	s.runs = map[string]*sleepRun{}
	s.mu.Unlock()
	for _, c := range []*atomic.Int64{&s.registered, &s.woke, &s.done, &s.early, &s.notNull, &s.bad} {
		c.Store(0)
	}
}

// called notes a call of run (sleeping until untilMs) that arrived at at
// (unix ns): slept says whether it carried the nap's memo, memo is that
// memo (null is expected).
func (s *sleeper) called(runID string, untilMs int64, slept bool, memo json.RawMessage, at int64) {
	s.mu.Lock()
	st := s.runs[runID]
	if st == nil {
		st = &sleepRun{untilMs: untilMs}
		s.runs[runID] = st
	}
	if !slept {
		st.firstCalls++
		if st.firstAt == 0 {
			st.firstAt = at
		}
	} else {
		st.wokeCalls++
		if st.wokeAt == 0 {
			st.wokeAt = at
			s.woke.Add(1)
			if at < st.untilMs*int64(time.Millisecond) {
				s.early.Add(1)
			}
		}
	}
	s.mu.Unlock()
	if v := bytes.TrimSpace(memo); slept && len(v) > 0 && string(v) != "null" {
		s.notNull.Add(1)
	}
}

// answered notes that the answer to a call of run was flushed at at (unix
// ns): its Sleep op (slept false), or its result.
func (s *sleeper) answered(runID string, slept bool, at int64) {
	s.mu.Lock()
	st := s.runs[runID]
	first := false
	if st != nil && !slept && st.answeredAt == 0 {
		st.answeredAt, first = at, true
	}
	if st != nil && slept && st.doneAt == 0 {
		st.doneAt, first = at, true
	}
	s.mu.Unlock()
	switch {
	case first && !slept:
		s.registered.Add(1)
	case first:
		s.done.Add(1)
	}
}

// badCall notes a call without a run id or a usable until.
func (s *sleeper) badCall(msg string) {
	s.bad.Add(1)
	s.lastErr.Store(msg)
}

// snapshot copies the runs seen so far.
func (s *sleeper) snapshot() map[string]sleepRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]sleepRun, len(s.runs))
	for id, r := range s.runs {
		out[id] = *r
	}
	return out
}

// ---------------------------------------------------------------------------
// Figures

// SleepResult holds the sleep scenario's own figures (Result has the rest).
type SleepResult struct {
	Sleepers    int     `json:"sleepers"`
	LeadSec     float64 `json:"lead_sec"`
	SpreadSec   float64 `json:"spread_sec"`
	Batch       int     `json:"events_per_post"`
	MeasureOnly bool    `json:"measure_only"`
	Until       string  `json:"until"`

	// Sending and registration (first send → last Sleep op answered).
	SendSec         float64 `json:"send_sec"`
	EventsPerSec    float64 `json:"events_accepted_per_sec"`
	Registered      int     `json:"sleeps_registered_in_time"`
	LateRegistered  int     `json:"sleeps_registered_late"`
	NotRegistered   int     `json:"sleeps_not_registered"`
	RegisterSec     float64 `json:"register_sec"`
	RegisterPerSec  float64 `json:"registered_per_sec"`
	MinMarginSec    float64 `json:"min_margin_before_until_sec"`
	RegisterCPUSec  float64 `json:"register_cairn_cpu_sec"`
	RegisterCPUPerR float64 `json:"register_cairn_cpu_ms_per_run"`
	ExtraFirstCalls int     `json:"extra_first_calls"`

	// While all runs sleep.
	AllSleeping     bool    `json:"all_sleeping_measured"`
	SleepingRSSMiB  float64 `json:"sleeping_rss_mib"`
	AfterIdleRSSMiB float64 `json:"sleeping_rss_after_idle_mib"`
	SleepingHWMMiB  float64 `json:"peak_rss_since_start_mib"`
	BaseRSSMiB      float64 `json:"rss_before_mib"`
	RSSPerRunKiB    float64 `json:"rss_per_sleeping_run_kib"`
	HeapInuseMiB    float64 `json:"go_heap_inuse_mib"`
	Goroutines      int     `json:"goroutines"`
	IdleCPUPct      float64 `json:"sleeping_cpu_pct_of_core"`
	IdleWindowSec   float64 `json:"sleeping_cpu_window_sec"`
	RaftBytes       int64   `json:"raft_growth_bytes"`
	RaftAllocBytes  int64   `json:"raft_growth_allocated_bytes"`
	FSMBytes        int64   `json:"fsm_growth_bytes"`
	FSMAllocBytes   int64   `json:"fsm_growth_allocated_bytes"`
	BytesPerRun     float64 `json:"data_bytes_per_run"`
	LogEntries      uint64  `json:"raft_entries"`

	// Wake-up.
	Woke            int     `json:"runs_woke"`
	Done            int     `json:"runs_answered_200"`
	LatenessMs      Pct     `json:"lateness_ms"`
	CairnLatenessMs Pct     `json:"cairn_woke_lateness_ms"`
	EarlyApp        int     `json:"early_wakes_app"`
	EarlyCairn      int     `json:"early_wakes_cairn"`
	NotNullMemo     int     `json:"non_null_nap_memo"`
	AllWokeSec      float64 `json:"all_woke_after_until_sec"`
	AllDoneSec      float64 `json:"all_done_after_until_sec"`
	WakeRunsPerSec  float64 `json:"wake_runs_per_sec"`
	WakeCPUSec      float64 `json:"wake_cairn_cpu_sec"`
	WakePeakRSSMiB  float64 `json:"wake_peak_rss_mib"`
	// New runs of benchgo-import-contacts sent during the wake-up (one
	// every -sleep-probe), from event to run end (Cairn's stamps).
	ProbeMs        Pct     `json:"wake_new_run_latency_ms"`
	ProbeUnfinish  int     `json:"wake_new_runs_unfinished"`
	EndRSSMiB      float64 `json:"end_rss_mib"`
	ExtraWokeCalls int     `json:"extra_post_sleep_calls"`

	// Cairn's own view, from GET /v1/runs/<id>/history of a sample.
	Checked          int     `json:"history_checked"`
	CheckedCompleted int     `json:"history_completed"`
	CheckedSleeping  int     `json:"history_sleeping"`
	CairnLateReg     int     `json:"history_registered_late"`
	CairnMinMarginMs float64 `json:"history_min_margin_ms"`
}

// sleepLeadFor is the time from the first send to the wake-up instant:
// -sleep-lead, or long enough to register every sleep first.
func sleepLeadFor(o *options) time.Duration {
	if o.sleepLead > 0 {
		return o.sleepLead
	}
	if o.sleepMeasureOnly {
		// Nothing waits for it: just far enough away that no run wakes.
		return 6 * time.Hour
	}
	// Registration (event → first call → Sleep op committed) ran at about
	// 3000 runs/s on a 2-core box: allow 1000/s plus a fixed 15 s.
	return 15*time.Second + time.Duration(o.sleepers)*time.Millisecond
}

// sleepTimeout is the default -timeout when the sleep scenario is selected.
func sleepTimeout(o *options) time.Duration {
	reg := time.Duration(o.sleepers) * 2 * time.Millisecond // registration
	if o.sleepMeasureOnly {
		return 5*time.Minute + reg
	}
	return 5*time.Minute + sleepLeadFor(o) + o.sleepSpread + reg // + wake-up drain
}

// ---------------------------------------------------------------------------
// The scenario

// sleepSends is what the senders saw.
type sleepSends struct {
	accepted   atomic.Int64 // events
	lastAccept atomic.Int64 // unix ns of the last accepted POST
	mu         sync.Mutex
	postMs     []float64
	errs       []string
}

func runSleep(ctx context.Context, e *env) *Result {
	o := e.opts
	n := o.sleepers
	lead := sleepLeadFor(o)
	sr := &SleepResult{Sleepers: n, LeadSec: lead.Seconds(), SpreadSec: o.sleepSpread.Seconds(),
		Batch: o.sleepBatch, MeasureOnly: o.sleepMeasureOnly}
	res := &Result{App: e.app, Scenario: "sleep", Sleep: sr,
		Offered: fmt.Sprintf("%d sleepers, lead %s, spread %s", n, lead, o.sleepSpread)}
	if o.sleepMeasureOnly {
		res.Offered += ", measure only"
	}
	sl := e.sleeper
	sl.reset()
	base, err := takeBaseline(ctx, e)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	pid := e.cairn.proc.Pid()
	if kb, err := proc.StatusKB(pid, "VmRSS"); err == nil {
		sr.BaseRSSMiB = float64(kb) / 1024
	}

	// -- send -----------------------------------------------------------
	start := time.Now()
	until := start.Add(lead).Truncate(time.Millisecond)
	lastUntil := until.Add(o.sleepSpread)
	sr.Until = until.UTC().Format(isoMs)
	logf("%s: sleep: %d events in POSTs of %d (%d senders), until %s (in %s), spread %s",
		e.app, n, o.sleepBatch, o.senders, sr.Until, lead, o.sleepSpread)
	var (
		snd       = &sleepSends{}
		accepted  = &snd.accepted
		batches   = make(chan int)
		sendsDone = make(chan struct{})
		wg        sync.WaitGroup
	)
	go func() {
		defer close(batches)
		for left := n; left > 0; left -= o.sleepBatch {
			select {
			case batches <- min(left, o.sleepBatch):
			case <-ctx.Done():
				return
			}
		}
	}()
	for range o.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range batches {
				t0 := time.Now()
				err := postSleepEvents(ctx, e.cairn, k, until, o.sleepSpread)
				t1 := time.Now()
				snd.mu.Lock()
				if err != nil {
					snd.errs = append(snd.errs, err.Error())
				} else {
					snd.postMs = append(snd.postMs, float64(t1.Sub(t0).Microseconds())/1000)
				}
				snd.mu.Unlock()
				if err == nil {
					accepted.Add(int64(k))
					snd.lastAccept.Store(t1.UnixNano())
				}
			}
		}()
	}
	go func() { wg.Wait(); close(sendsDone) }()

	// -- wait until every run sleeps (or the wake-up time comes) ----------
	fail := func(format string, args ...any) *Result {
		res.Error = fmt.Sprintf(format, args...)
		<-sendsDone
		finishSleep(ctx, e, res, base, sl, start, snd)
		describeSleepers(ctx, e, res, sl)
		return res
	}
	allSleeping := false
	lastReg, lastProgress, lastLog := int64(-1), time.Now(), time.Now()
	for !allSleeping {
		done := isClosed(sendsDone)
		reg := sl.registered.Load()
		if done && reg >= accepted.Load() {
			allSleeping = true
			break
		}
		if !time.Now().Before(until) {
			logf("%s: sleep: wake-up time reached with %d of %d sleeps registered", e.app, reg, n)
			break
		}
		if reg != lastReg {
			lastReg, lastProgress = reg, time.Now()
		}
		if time.Since(lastProgress) > o.stall {
			return fail("stuck: no sleep registered for %s (%d of %d accepted events)", o.stall, reg, accepted.Load())
		}
		if e.cairn.proc.Exited() {
			return fail("cairn exited: %v", e.cairn.proc.Err())
		}
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			rss, _ := proc.StatusKB(pid, "VmRSS")
			logf("%s: sleep: %5.0fs: %d events accepted, %d sleeps registered, cairn RSS %.0f MiB, wake-up in %s",
				e.app, time.Since(start).Seconds(), accepted.Load(), reg, float64(rss)/1024, time.Until(until).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return fail("%v", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if allSleeping {
		regEnd := time.Now()
		logf("%s: sleep: all %d sleeps registered after %.1fs; measuring", e.app, sl.registered.Load(), regEnd.Sub(start).Seconds())
		settle(ctx, e.cairn, 15*time.Second)
		sr.AllSleeping = true
		if kb, err := proc.StatusKB(pid, "VmRSS"); err == nil {
			sr.SleepingRSSMiB = float64(kb) / 1024
		}
		if kb, err := proc.StatusKB(pid, "VmHWM"); err == nil {
			sr.SleepingHWMMiB = float64(kb) / 1024
		}
		if m, err := e.cairn.goMetrics(ctx); err == nil {
			sr.HeapInuseMiB = m["go_memstats_heap_inuse_bytes"] / (1 << 20)
			sr.Goroutines = int(m["go_goroutines"])
		}
		raft := diskUsage(filepath.Join(e.cairn.dataDir, "raft"))
		fsmU := diskUsage(filepath.Join(e.cairn.dataDir, "fsm"))
		sr.RaftBytes, sr.RaftAllocBytes = raft.Apparent-base.raft.Apparent, raft.Allocated-base.raft.Allocated
		sr.FSMBytes, sr.FSMAllocBytes = fsmU.Apparent-base.fsm.Apparent, fsmU.Allocated-base.fsm.Allocated
		if idx, err := e.cairn.lastLogIndex(ctx); err == nil && idx >= base.log.index {
			sr.LogEntries = idx - base.log.index
		}
		// Idle CPU while everything sleeps: a window that ends 1 s before
		// the wake-up.
		win := min(o.sleepIdle, time.Until(until)-time.Second)
		if win >= time.Second {
			sr.IdleWindowSec = win.Seconds()
			sr.IdleCPUPct = measureIdle(ctx, e.sampler, win)
			if kb, err := proc.StatusKB(pid, "VmRSS"); err == nil {
				sr.AfterIdleRSSMiB = float64(kb) / 1024
			}
		} else {
			res.Notes = append(res.Notes, "no time left before the wake-up to measure idle CPU while sleeping: raise -sleep-lead")
		}
	}
	if o.sleepMeasureOnly {
		<-sendsDone
		finishSleep(ctx, e, res, base, sl, start, snd)
		if !sr.AllSleeping && res.Error == "" {
			res.Error = fmt.Sprintf("only %d of %d sleeps were registered", sl.registered.Load(), accepted.Load())
		}
		return res
	}

	// -- wake-up ----------------------------------------------------------
	_ = proc.ResetPeakRSS(pid) // VmHWM from here on is the wake-up's peak
	if d := time.Until(until); d > 0 {
		logf("%s: sleep: waiting %s for the wake-up", e.app, d.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return fail("%v", ctx.Err())
		case <-time.After(d):
		}
	}
	probes := startProbes(ctx, e, o.sleepProbe)
	var lastProg int64 = -1
	lastProgress, lastLog = time.Now(), time.Now()
	for {
		total := accepted.Load()
		d := sl.done.Load()
		if isClosed(sendsDone) && d >= total {
			break
		}
		if p := sl.woke.Load() + d; p != lastProg {
			lastProg, lastProgress = p, time.Now()
		}
		if time.Now().After(lastUntil) && time.Since(lastProgress) > o.stall {
			return fail("stuck: no run woke or finished for %s; %d of %d answered 200", o.stall, d, total)
		}
		if e.cairn.proc.Exited() {
			return fail("cairn exited: %v", e.cairn.proc.Err())
		}
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			rss, _ := proc.StatusKB(pid, "VmRSS")
			logf("%s: sleep: %.0fs after until: %d woke, %d done, cairn RSS %.0f MiB",
				e.app, time.Since(until).Seconds(), sl.woke.Load(), d, float64(rss)/1024)
		}
		select {
		case <-ctx.Done():
			return fail("%v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	probes.finish(ctx, e, sr)
	logf("%s: sleep: all %d runs woke and answered; reading Cairn's history of up to %d", e.app, sl.done.Load(), o.sleepCheck)
	settle(ctx, e.cairn, 15*time.Second)
	finishSleep(ctx, e, res, base, sl, start, snd)
	return res
}

// finishSleep fills in the figures from what the app saw and what Cairn
// says about a sample of the runs.
func finishSleep(ctx context.Context, e *env, res *Result, base baseline, sl *sleeper, start time.Time, snd *sleepSends) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	sr := res.Sleep
	o := e.opts
	pid := e.cairn.proc.Pid()
	ms := int64(time.Millisecond)

	snd.mu.Lock()
	res.Events = int(snd.accepted.Load())
	res.SendErrors = len(snd.errs) // POSTs, not events
	if len(snd.errs) > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d POST /e failed; first: %s", len(snd.errs), snd.errs[0]))
	}
	res.AcceptMs = percentiles(snd.postMs)
	snd.mu.Unlock()

	runs := sl.snapshot()
	var (
		lastAns, lastWoke, lastDone, maxUntil int64
		firstUntil                            = int64(1<<63 - 1)
		lat                                   []float64
		minMargin                             = int64(1<<63 - 1)
	)
	for _, r := range runs {
		u := r.untilMs * ms
		firstUntil, maxUntil = min(firstUntil, u), max(maxUntil, u)
		switch {
		case r.answeredAt == 0:
			sr.NotRegistered++
		case r.answeredAt < u:
			sr.Registered++
			minMargin = min(minMargin, u-r.answeredAt)
		default:
			sr.LateRegistered++
		}
		lastAns = max(lastAns, r.answeredAt)
		if r.firstCalls > 1 {
			sr.ExtraFirstCalls += int(r.firstCalls - 1)
		}
		if r.wokeCalls > 1 {
			sr.ExtraWokeCalls += int(r.wokeCalls - 1)
		}
		if r.wokeAt > 0 {
			sr.Woke++
			lastWoke = max(lastWoke, r.wokeAt)
			if r.wokeAt < u {
				sr.EarlyApp++
			}
			if r.answeredAt > 0 && r.answeredAt < u {
				lat = append(lat, float64(r.wokeAt-u)/float64(ms))
			}
		}
		if r.doneAt > 0 {
			sr.Done++
			lastDone = max(lastDone, r.doneAt)
		}
	}
	// Runs Cairn created but never called are not in the map.
	sr.NotRegistered += max(0, res.Events-len(runs))
	if t := snd.lastAccept.Load(); t > 0 {
		sr.SendSec = float64(t-start.UnixNano()) / 1e9
		sr.EventsPerSec = float64(res.Events) / sr.SendSec
	}
	if lastAns > 0 {
		sr.RegisterSec = float64(lastAns-start.UnixNano()) / 1e9
		sr.RegisterPerSec = float64(sr.Registered+sr.LateRegistered) / sr.RegisterSec
		if minMargin != int64(1<<63-1) {
			sr.MinMarginSec = float64(minMargin) / 1e9
		}
		regEnd := e.sampler.at(time.Unix(0, lastAns))
		if regEnd.ticks >= base.ticks {
			sr.RegisterCPUSec = float64(regEnd.ticks-base.ticks) / proc.ClockTicks()
			if n := sr.Registered + sr.LateRegistered; n > 0 {
				sr.RegisterCPUPerR = sr.RegisterCPUSec * 1000 / float64(n)
			}
		}
	}
	if sr.AllSleeping && sr.Registered > 0 {
		sr.RSSPerRunKiB = (sr.SleepingRSSMiB - sr.BaseRSSMiB) * 1024 / float64(sr.Registered+sr.LateRegistered)
		sr.BytesPerRun = float64(sr.RaftBytes+sr.FSMBytes) / float64(sr.Registered+sr.LateRegistered)
	}
	sr.EarlyApp = int(sl.early.Load())
	sr.NotNullMemo = int(sl.notNull.Load())
	if b := sl.bad.Load(); b > 0 {
		s, _ := sl.lastErr.Load().(string)
		res.Notes = append(res.Notes, fmt.Sprintf("%d calls had no usable until/run id; last: %s", b, s))
	}
	if sr.LateRegistered > 0 || sr.NotRegistered > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d sleeps were registered after their until and %d not at all: "+
			"they are left out of the lateness figures; raise -sleep-lead", sr.LateRegistered, sr.NotRegistered))
	}

	if !sr.MeasureOnly {
		sr.LatenessMs = percentiles(lat)
		if lastWoke > 0 {
			sr.AllWokeSec = float64(lastWoke-maxUntil) / 1e9
		}
		if lastDone > 0 {
			sr.AllDoneSec = float64(lastDone-maxUntil) / 1e9
			if w := float64(lastDone-firstUntil) / 1e9; w > 0 {
				sr.WakeRunsPerSec = float64(sr.Done) / w
			}
			a, b := e.sampler.at(time.Unix(0, firstUntil)), e.sampler.at(time.Unix(0, lastDone))
			if b.ticks >= a.ticks {
				sr.WakeCPUSec = float64(b.ticks-a.ticks) / proc.ClockTicks()
			}
			res.WallSec = float64(lastDone-start.UnixNano()) / 1e9
		}
		if kb, err := proc.StatusKB(pid, "VmHWM"); err == nil {
			sr.WakePeakRSSMiB = float64(kb) / 1024
		}
		res.Completed = sr.Done
		res.Unfinished = res.Events - sr.Done
		if sr.EarlyApp > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("BUG: %d runs were called back before their until (app clock)", sr.EarlyApp))
		}
	}
	if kb, err := proc.StatusKB(pid, "VmRSS"); err == nil {
		sr.EndRSSMiB = float64(kb) / 1024
		res.EndRSSMiB = sr.EndRSSMiB
	}
	res.PeakRSSMiB = max(sr.SleepingHWMMiB, sr.WakePeakRSSMiB)
	if p := e.sampler.sample(); p.ticks >= base.ticks {
		res.CPUSec = float64(p.ticks-base.ticks) / proc.ClockTicks()
	}

	// Cairn's view of a sample.
	k := o.sleepCheck
	if sr.MeasureOnly || res.Error != "" {
		k = min(k, 500)
	}
	checkHistories(ctx, e, res, runs, k)
	if sr.EarlyCairn > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("BUG: Cairn's history shows %d runs woken before their until", sr.EarlyCairn))
	}

	lines, total, _ := logProblems(e.cairn.logPath, base.logFrom, 5)
	res.CairnWarnings = total
	for _, l := range lines {
		res.Notes = append(res.Notes, "cairn log: "+truncate(l, 400))
	}
	if res.Error == "" && !sr.MeasureOnly && res.Unfinished > 0 {
		res.Error = fmt.Sprintf("%d runs did not finish", res.Unfinished)
	}
}

// postSleepEvents sends k bench/sleep events in one POST /e.
func postSleepEvents(ctx context.Context, c *cairnNode, k int, until time.Time, spread time.Duration) error {
	var b bytes.Buffer
	b.Grow(k * 80)
	b.WriteByte('[')
	for i := range k {
		u := until
		if spread > 0 {
			u = u.Add(time.Duration(rand.Int64N(int64(spread/time.Millisecond))) * time.Millisecond)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":"` + sleepEventName + `","data":{"until":"` + u.UTC().Format(isoMs) + `"}}`)
	}
	b.WriteByte(']')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.eventURL(), &b)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	var out struct {
		IDs []string `json:"ids"`
	}
	if err := doJSON(req, &out); err != nil {
		return err
	}
	if len(out.IDs) != k {
		return fmt.Errorf("POST /e/bench: %d ids for %d events", len(out.IDs), k)
	}
	return nil
}

// checkHistories reads GET /v1/runs/<id>/history for up to k runs (a
// random sample) and compares Cairn's stamps with the until of each run.
func checkHistories(ctx context.Context, e *env, res *Result, runs map[string]sleepRun, k int) {
	sr := res.Sleep
	if k <= 0 || len(runs) == 0 {
		return
	}
	ids := make([]string, 0, len(runs))
	for id := range runs {
		ids = append(ids, id)
	}
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	ids = ids[:min(k, len(ids))]
	type entry struct {
		At     int64  `json:"at"`
		Type   string `json:"type"`
		Detail string `json:"detail"`
	}
	var (
		mu        sync.Mutex
		lat       []float64
		minMargin = int64(1<<63 - 1)
		errs      int
		firstErr  string
		odd       []string
		work      = make(chan string)
		wg        sync.WaitGroup
	)
	t0 := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				var hist []entry
				raw, err := e.cairn.history(ctx, id)
				if err == nil {
					err = json.Unmarshal(raw, &hist)
				}
				mu.Lock()
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
					continue
				}
				u := runs[id].untilMs
				var sleptAt, wokeAt int64
				status := ""
				for _, h := range hist {
					switch {
					case h.Type == "step.sleeping" && sleptAt == 0:
						sleptAt = h.At
					case h.Type == "step.woke" && wokeAt == 0:
						wokeAt = h.At
					case strings.HasPrefix(h.Type, "run.") && h.Type != "run.scheduled" && h.Type != "run.started":
						status = strings.TrimPrefix(h.Type, "run.")
					}
				}
				sr.Checked++
				if sleptAt > 0 {
					sr.CheckedSleeping++
					if sleptAt >= u {
						sr.CairnLateReg++
					} else {
						minMargin = min(minMargin, u-sleptAt)
					}
				}
				if wokeAt > 0 {
					if wokeAt < u {
						sr.EarlyCairn++
					}
					if sleptAt > 0 && sleptAt < u {
						lat = append(lat, float64(wokeAt-u))
					}
				}
				switch status {
				case "completed":
					sr.CheckedCompleted++
				case "":
				default:
					res.Failed++
				}
				bad := sleptAt == 0 || (status != "" && status != "completed") ||
					(!sr.MeasureOnly && (wokeAt == 0 || status != "completed"))
				if bad && len(odd) < 3 {
					odd = append(odd, id)
				}
				mu.Unlock()
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
	sr.CairnLatenessMs = percentiles(lat)
	if minMargin != int64(1<<63-1) {
		sr.CairnMinMarginMs = float64(minMargin)
	}
	logf("%s: sleep: read %d histories in %.1fs", e.app, sr.Checked, time.Since(t0).Seconds())
	if errs > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d history reads failed; first: %s", errs, firstErr))
	}
	for _, id := range odd {
		res.Notes = append(res.Notes, fmt.Sprintf("run %s is not as expected; history:\n%s", id, runHistoryText(ctx, e.cairn, id)))
	}
}

// describeSleepers adds what Cairn says about a few runs that did not get
// as far as expected, and the tail of its log.
func describeSleepers(ctx context.Context, e *env, res *Result, sl *sleeper) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	shown := 0
	for id, r := range sl.snapshot() {
		if shown >= 3 {
			break
		}
		if r.answeredAt == 0 || r.doneAt == 0 {
			shown++
			res.Notes = append(res.Notes, fmt.Sprintf("run %s (app: first call %v, answered %v, woke %v, done %v); history:\n%s",
				id, r.firstAt > 0, r.answeredAt > 0, r.wokeAt > 0, r.doneAt > 0, runHistoryText(ctx, e.cairn, id)))
		}
	}
	res.Notes = append(res.Notes, fmt.Sprintf("cairn log tail (%s):\n%s", e.cairn.logPath, proc.TailFile(e.cairn.logPath, 20)))
}

func runHistoryText(ctx context.Context, c *cairnNode, id string) string {
	var out struct {
		Data runView `json:"data"`
	}
	if err := c.getJSON(ctx, "/v1/runs/"+id, &out); err != nil {
		return fmt.Sprintf("(run: %v)", err)
	}
	return fmt.Sprintf("status %s, calls %d\n%s", out.Data.Status, out.Data.Calls, compactHistory(ctx, c, out.Data))
}

// settle waits until Cairn's log index stops moving for a second (at most
// max), so that measurements see a quiet node.
func settle(ctx context.Context, c *cairnNode, max time.Duration) {
	deadline := time.Now().Add(max)
	last, since := uint64(0), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		idx, err := c.lastLogIndex(ctx)
		if err != nil {
			return
		}
		if idx != last {
			last, since = idx, time.Now()
		} else if time.Since(since) >= time.Second {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// goMetrics reads the unlabelled samples of GET /metrics (Prometheus text).
func (n *cairnNode) goMetrics(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' || strings.Contains(l, "{") {
			continue
		}
		k, v, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			out[k] = f
		}
	}
	return out, sc.Err()
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// probes are new events sent while the sleepers wake up: a sleeper storm
// must not starve new work. Each starts a run of benchgo-import-contacts
// (three steps), another function than the sleepers'.
type probes struct {
	stop chan struct{}
	done chan struct{}
	ids  []string
	errs int
}

// startProbes sends one event every interval until finish (none if
// interval is 0).
func startProbes(ctx context.Context, e *env, interval time.Duration) *probes {
	p := &probes{stop: make(chan struct{}), done: make(chan struct{})}
	if interval <= 0 {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.stop:
				return
			case <-tick.C:
			}
			if s, err := sendEvent(ctx, e.cairn); err != nil {
				p.errs++
			} else {
				p.ids = append(p.ids, s.id)
			}
		}
	}()
	return p
}

// finish stops the probes, waits (up to a minute) for their runs to end
// and records their latency.
func (p *probes) finish(ctx context.Context, e *env, sr *SleepResult) {
	close(p.stop)
	<-p.done
	if len(p.ids) == 0 {
		return
	}
	tr := newTracker(e.cairn)
	for _, id := range p.ids {
		tr.add(id)
	}
	deadline := time.Now().Add(time.Minute)
	for len(tr.pendingIDs()) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		if err := tr.pollEvents(ctx, tr.pendingIDs()); err != nil {
			logf("%s: sleep: polling the new runs: %v", e.app, err)
		}
		if len(tr.pendingIDs()) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var lat []float64
	for _, r := range tr.finished {
		if r.Status == "completed" {
			lat = append(lat, float64(r.EndedAt-r.CreatedAt))
		}
	}
	sr.ProbeMs = percentiles(lat)
	sr.ProbeUnfinish = len(p.ids) - len(lat) + p.errs
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// ---------------------------------------------------------------------------
// Checker: after faults stop, every node is healed and the cluster is quiet,
// join the client history, the app journal and the server's run histories.

type runView struct {
	ID       string          `json:"id"`
	Status   string          `json:"status"`
	EventIDs []string        `json:"event_ids"`
	Output   json.RawMessage `json:"output"`
	Steps    []string        `json:"steps"`
	Calls    int             `json:"calls"`
}

type histEntry struct {
	Seq     uint64          `json:"seq"`
	Index   uint64          `json:"log_index"`
	At      int64           `json:"at"`
	Type    string          `json:"type"`
	Call    string          `json:"call"`
	Attempt int             `json:"attempt"`
	Name    string          `json:"name"`
	Detail  string          `json:"detail"`
	Data    json.RawMessage `json:"data"`
}

// evState is what the server says about one acknowledged event.
type evState struct {
	op      *opRec
	eventID string
	found   bool // event known to the server
	runs    []runView
	err     string
}

func (e *evState) terminal() bool {
	if !e.found || len(e.runs) == 0 {
		return false
	}
	for _, r := range e.runs {
		if r.Status == "running" || r.Status == "" || r.Status == "queued" {
			return false
		}
	}
	return true
}

type checkResult struct {
	// client history
	Ops, OK, Fail, Unknown int
	Resolved               int // unknown/fail ops re-sent after heal and acknowledged then
	Attempts               int
	Codes                  map[string]int // attempt outcome -> count
	AckFromIsolated        []string       // 200s from an isolated/paused node after grace

	// I1, I2, I5
	Lost        []*evState // acknowledged, unknown to the server
	NoRun       []*evState // event known, no run
	MultiRun    []*evState // more than one run for the event
	Stuck       []*evState // run not terminal after quiescence
	Failed      []*evState // run failed
	Completed   int
	QuietWaited time.Duration

	// I3, I4
	DupAccepted    []string // run: step accepted twice
	MemoMismatch   []string
	StepDupEntries int // step.duplicate history entries (refused, fine)
	StaleResults   int // result.stale entries (fenced, fine)
	Claims         int
	Resent         int // claims that followed a claim without a result in between

	// journal
	Executions      int
	DistinctSteps   int
	DupExecutions   int
	MaxExecPerStep  int
	ClaimsAtFaults  int      // claims open at some fault time (the bound)
	Unexplained     []string // duplicate executions with no claim open at a fault
	UnjournaledAcc  []string // accepted results the app never produced
	JournalOrphans  int      // journaled step runs of runs the server does not know
	SampleHistories map[string][]histEntry

	// In-flight runs at leader faults (resumeAfterFaults).
	Resume []faultResume

	Conv convergence
	// PerNodeMissing: when nodes diverge, the acknowledged events (uid)
	// each node's own projection does not know.
	PerNodeMissing map[string][]string
}

func (h *harness) leaderURL(ctx context.Context) string {
	if l := h.cl.waitLeader(ctx, 30*time.Second, nil); l != nil {
		return l.url()
	}
	return h.cl.nodes[0].url()
}

// resolve re-sends ops whose outcome was unknown or failed, now that the
// cluster is healed, with the same user id (safe by the contract).
func (h *harness) resolve(ctx context.Context, ops []*opRec) int {
	n := 0
	for _, op := range ops {
		if op.Outcome == "ok" {
			continue
		}
		body := map[string]any{"name": eventName, "id": op.UID,
			"data": map[string]any{"uid": op.UID, "phase": op.Phase, "sent_ms": op.Invoke}}
		for try := 0; try < 20 && ctx.Err() == nil; try++ {
			code, raw, err := postJSON(ctx, h.leaderURL(ctx)+"/e/key", 10*time.Second, body)
			if err == nil && code == 200 {
				var out struct {
					IDs []string `json:"ids"`
				}
				if json.Unmarshal(raw, &out) == nil && len(out.IDs) == 1 {
					op.EventID = out.IDs[0]
					op.Outcome = op.Outcome + "+resolved"
					n++
				}
				break
			}
			_ = sleepCtx(ctx, 500*time.Millisecond)
		}
	}
	return n
}

// fetch reads the runs of an event.
func (h *harness) fetch(ctx context.Context, base string, e *evState) {
	var out struct {
		Data []runView `json:"data"`
	}
	code, err := getJSON(ctx, base+"/v1/events/"+url.PathEscape(e.eventID)+"/runs", 10*time.Second, &out)
	switch {
	case code == 404:
		e.found, e.err = false, "event_not_found"
	case err != nil:
		e.err = err.Error()
	default:
		e.found, e.runs, e.err = true, out.Data, ""
	}
}

func (h *harness) fetchHistory(ctx context.Context, base, run string) ([]histEntry, error) {
	var out struct {
		Data []histEntry `json:"data"`
	}
	_, err := getJSON(ctx, base+"/v1/runs/"+url.PathEscape(run)+"/history", 10*time.Second, &out)
	return out.Data, err
}

func parallel[T any](items []T, workers int, fn func(T)) {
	ch := make(chan T)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				fn(it)
			}
		}()
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
}

// check runs every invariant over the cluster's phases.
func (h *harness) check(ctx context.Context, ops []*opRec, faults []faultRec, isolated []isolation) *checkResult {
	res := &checkResult{Codes: map[string]int{}, SampleHistories: map[string][]histEntry{}}
	for _, op := range ops {
		res.Ops++
		switch op.Outcome {
		case "ok":
			res.OK++
		case "unknown":
			res.Unknown++
		default:
			res.Fail++
		}
		for _, a := range op.Attempts {
			res.Attempts++
			k := fmt.Sprint(a.Status)
			if a.Code != "" {
				k += " " + a.Code
			}
			if a.Status == 0 {
				k = "error: " + shortErr(a.Err)
			}
			res.Codes[k]++
			if a.Status == 200 {
				for _, iso := range isolated {
					// The answer arrived while the node was cut off (a
					// request that waited in its backlog and was answered
					// after it was healed is fine).
					got := a.At + a.Ms
					if a.Node == iso.URL && got > iso.Start+h.cfg.isolationGrace.Milliseconds() && got < iso.End {
						res.AckFromIsolated = append(res.AckFromIsolated, fmt.Sprintf("%s acked by isolated %s at %s (sent %s, isolated %s..%s)",
							op.UID, iso.Node, time.UnixMilli(got).Format("15:04:05.000"), time.UnixMilli(a.At).Format("15:04:05.000"),
							time.UnixMilli(iso.Start).Format("15:04:05.000"), time.UnixMilli(iso.End).Format("15:04:05.000")))
					}
				}
			}
		}
	}
	fmt.Printf("  resolving %d ops without an acknowledgement (same ids)...\n", res.Fail+res.Unknown)
	res.Resolved = h.resolve(ctx, ops)

	// Quiescence: poll until every acknowledged event's run is terminal, or
	// nothing has changed for cfg.quiet.
	var states []*evState
	byRun := map[string]*evState{}
	for _, op := range ops {
		if op.EventID != "" {
			states = append(states, &evState{op: op, eventID: op.EventID})
		}
	}
	start := time.Now()
	pending := states
	lastProgress := time.Now()
	fmt.Printf("  waiting for %d runs to finish (quiet %s, max %s)...\n", len(pending), h.cfg.quiet, h.cfg.quietMax)
	for {
		base := h.leaderURL(ctx)
		parallel(pending, 16, func(e *evState) { h.fetch(ctx, base, e) })
		var still []*evState
		for _, e := range pending {
			if !e.terminal() {
				still = append(still, e)
			}
		}
		if len(still) < len(pending) {
			lastProgress = time.Now()
		}
		pending = still
		if len(pending) == 0 || time.Since(lastProgress) > h.cfg.quiet || time.Since(start) > h.cfg.quietMax || ctx.Err() != nil {
			break
		}
		_ = sleepCtx(ctx, 2*time.Second)
	}
	res.QuietWaited = time.Since(start)

	base := h.leaderURL(ctx)
	for _, e := range states {
		switch {
		case !e.found && e.err == "event_not_found":
			if e.op.Outcome == "ok" {
				res.Lost = append(res.Lost, e)
			}
		case !e.found:
			res.Stuck = append(res.Stuck, e) // could not read it: report as not finished
		case len(e.runs) == 0:
			res.NoRun = append(res.NoRun, e)
		default:
			if len(e.runs) > 1 {
				res.MultiRun = append(res.MultiRun, e)
			}
			for _, r := range e.runs {
				byRun[r.ID] = e
				switch r.Status {
				case "completed":
					res.Completed++
				case "failed", "cancelled":
					res.Failed = append(res.Failed, e)
				default:
					res.Stuck = append(res.Stuck, e)
				}
			}
		}
	}

	// Histories of every run.
	fmt.Printf("  reading %d run histories...\n", len(byRun))
	var runIDs []string
	for id := range byRun {
		runIDs = append(runIDs, id)
	}
	sort.Strings(runIDs)
	hists := map[string][]histEntry{}
	var hmu sync.Mutex
	parallel(runIDs, 16, func(id string) {
		hh, err := h.fetchHistory(ctx, base, id)
		if err != nil {
			hh = []histEntry{{Type: "chaos.error", Detail: err.Error()}}
		}
		hmu.Lock()
		hists[id] = hh
		hmu.Unlock()
	})

	// Journal: executions per (run, step).
	journal := h.app.journalEntries()
	execs := map[string][]journalEntry{} // run|step -> executions
	nonces := map[string]bool{}
	for _, j := range journal {
		if j.Kind != "step" {
			continue
		}
		res.Executions++
		k := j.Run + "|" + j.StepID
		execs[k] = append(execs[k], j)
		nonces[j.Nonce] = true
		if _, ok := hists[j.Run]; !ok && !strings.HasPrefix(j.Phase, "single") {
			res.JournalOrphans++
		}
	}
	res.DistinctSteps = len(execs)

	// Fault windows: from the start of the injection until it was in place.
	var windows [][2]int64
	for _, f := range faults {
		// Only the leader makes app calls: a fault on a follower cannot
		// leave a claim behind.
		if f.Start > 0 && f.WasLeader {
			windows = append(windows, [2]int64{f.Start, max(f.Injected, f.Start)})
		}
	}
	atFault := func(from, to int64) bool {
		for _, w := range windows {
			if from <= w[1] && to > w[0] {
				return true
			}
		}
		return false
	}

	res.Resume = resumeAfterFaults(faults, runIDs, hists)

	riskyRun := map[string]bool{}
	for _, id := range runIDs {
		hh := hists[id]
		e := byRun[id]
		accepted := map[string][]json.RawMessage{}
		var order []string
		for i, x := range hh {
			switch x.Type {
			case "call.claimed":
				res.Claims++
				next := int64(1 << 62)
				if i+1 < len(hh) {
					next = hh[i+1].At
					if hh[i+1].Type == "call.claimed" {
						res.Resent++
					}
				}
				if atFault(x.At, next) {
					res.ClaimsAtFaults++
					riskyRun[id] = true
				}
			case "step.completed":
				if _, ok := accepted[x.Detail]; !ok {
					order = append(order, x.Detail)
				}
				accepted[x.Detail] = append(accepted[x.Detail], x.Data)
			case "step.duplicate":
				res.StepDupEntries++
			case "result.stale":
				res.StaleResults++
			}
		}
		bad := false
		for sid, list := range accepted {
			if len(list) > 1 {
				res.DupAccepted = append(res.DupAccepted, fmt.Sprintf("run %s: step %s accepted %d times", id, sid, len(list)))
				bad = true
			}
		}
		// Memoization: s1, s2, s3 accepted in order, each saw the one before,
		// and the run output lists exactly the accepted nonces.
		var run *runView
		for i := range e.runs {
			if e.runs[i].ID == id {
				run = &e.runs[i]
			}
		}
		if run != nil && run.Status == "completed" {
			var want []string
			prev := ""
			for k, sid := range stepIDs {
				list := accepted[sid]
				if len(list) == 0 {
					res.MemoMismatch = append(res.MemoMismatch, fmt.Sprintf("run %s: completed without step s%d accepted", id, k+1))
					bad = true
					break
				}
				var so stepOut
				_ = json.Unmarshal(list[0], &so)
				if so.Prev != prev || so.UID != e.op.UID || so.Step != k+1 {
					res.MemoMismatch = append(res.MemoMismatch, fmt.Sprintf("run %s: step s%d accepted %s, expected prev %q uid %q", id, k+1, list[0], prev, e.op.UID))
					bad = true
				}
				if !nonces[so.Nonce] {
					res.UnjournaledAcc = append(res.UnjournaledAcc, fmt.Sprintf("run %s: step s%d nonce %s not in the journal", id, k+1, so.Nonce))
					bad = true
				}
				want = append(want, so.Nonce)
				prev = so.Nonce
			}
			var out struct {
				UID    string   `json:"uid"`
				Nonces []string `json:"nonces"`
			}
			_ = json.Unmarshal(run.Output, &out)
			if strings.Join(out.Nonces, ",") != strings.Join(want, ",") || out.UID != e.op.UID {
				res.MemoMismatch = append(res.MemoMismatch, fmt.Sprintf("run %s: output %s, accepted nonces %v", id, run.Output, want))
				bad = true
			}
		}
		if bad && len(res.SampleHistories) < 10 {
			res.SampleHistories[id] = hh
		}
	}

	for k, list := range execs {
		if len(list) > 1 {
			res.DupExecutions += len(list) - 1
			run := strings.SplitN(k, "|", 2)[0]
			if !riskyRun[run] {
				res.Unexplained = append(res.Unexplained, fmt.Sprintf("run %s step s%d: %d executions, no claim of the run open at a fault", run, list[0].Step, len(list)))
				if len(res.SampleHistories) < 10 {
					if hh, ok := hists[run]; ok {
						res.SampleHistories[run] = hh
					}
				}
			}
		}
		res.MaxExecPerStep = max(res.MaxExecPerStep, len(list))
	}
	sort.Strings(res.Unexplained)
	for _, list := range [][]*evState{res.Lost, res.NoRun, res.MultiRun, res.Stuck, res.Failed} {
		for _, e := range list {
			if len(res.SampleHistories) >= 10 {
				break
			}
			for _, r := range e.runs {
				if hh, ok := hists[r.ID]; ok {
					res.SampleHistories[r.ID] = hh
				}
			}
		}
	}

	fmt.Printf("  comparing node states...\n")
	res.Conv = h.cl.converge(ctx, 90*time.Second)
	if !res.Conv.OK || len(res.Lost) > 0 {
		fmt.Printf("  nodes differ: reading every acknowledged event on every node...\n")
		res.PerNodeMissing = map[string][]string{}
		var mu sync.Mutex
		for _, n := range h.cl.nodes {
			res.PerNodeMissing[n.id] = []string{}
			parallel(states, 16, func(e *evState) {
				if e.op.Outcome != "ok" {
					return
				}
				code, _ := getJSON(ctx, n.url()+"/v1/events/"+url.PathEscape(e.eventID)+"/runs?consistency=local", 10*time.Second, nil)
				if code == 404 {
					mu.Lock()
					res.PerNodeMissing[n.id] = append(res.PerNodeMissing[n.id], e.op.UID+" ("+e.eventID+")")
					mu.Unlock()
				}
			})
			sort.Strings(res.PerNodeMissing[n.id])
		}
	}
	return res
}

func shortErr(s string) string {
	switch {
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "timeout"), strings.Contains(s, "deadline"):
		return "timeout"
	case strings.Contains(s, "reset"):
		return "connection reset"
	case strings.Contains(s, "EOF"):
		return "EOF"
	}
	if len(s) > 60 {
		return s[:60]
	}
	return s
}

// faultResume is how the runs in flight on a leader when it was hit (killed,
// paused, cut off) moved again: for each run whose call was out at the
// fault (claimed at or before it, nothing else recorded for the run until
// after it), the time from the fault to the run's next accepted result
// (a step, or the run's end). A run that never moved again is Unresumed.
type faultResume struct {
	N         int
	Kind      string
	Node      string
	Runs      durs
	Unresumed []string
}

func (f faultResume) max() time.Duration { return f.Runs.max() }

// resumeAfterFaults finds the runs in flight at each leader fault in the
// run histories (record times are the proposers' clocks, on this machine).
func resumeAfterFaults(faults []faultRec, runIDs []string, hists map[string][]histEntry) []faultResume {
	var out []faultResume
	for _, f := range faults {
		if !f.WasLeader || f.Start == 0 {
			continue
		}
		fr := faultResume{N: f.N, Kind: f.Kind, Node: f.Node}
		for _, id := range runIDs {
			hh := hists[id]
			last := -1 // the run's last entry at or before the fault
			for i, x := range hh {
				if x.At > f.Start {
					break
				}
				last = i
			}
			if last < 0 || hh[last].Type != "call.claimed" {
				continue
			}
			moved := false
			for _, y := range hh[last+1:] {
				if strings.HasPrefix(y.Type, "call.") || strings.HasPrefix(y.Type, "result.") {
					continue // a claim (a re-send), a refused answer: no progress
				}
				fr.Runs = append(fr.Runs, time.Duration(y.At-f.Start)*time.Millisecond)
				moved = true
				break
			}
			if !moved {
				fr.Unresumed = append(fr.Unresumed, id)
			}
		}
		out = append(out, fr)
	}
	return out
}

// resumeAll pools the in-flight runs of every leader fault.
func resumeAll(rs []faultResume) (all durs, unresumed int) {
	for _, r := range rs {
		all = append(all, r.Runs...)
		unresumed += len(r.Unresumed)
	}
	return all, unresumed
}

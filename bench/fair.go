package main

// The fair scenario: how long an unrelated function waits while another
// app hangs on many calls. A second app (benchhang, served by the bench)
// gets -fair-hang-n events whose calls each hang until the scenario ends
// (at most -fair-hang); once its calls are in flight, the steady scenario
// sends -fair-rate events/s for -fair-duration to benchgo-import-contacts,
// and its event→completion latency is the figure. Then the hanging calls
// are answered and their runs awaited, so that later scenarios start clean.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/sdk/signing"
)

const (
	hangAppID = "benchhang"
	hangFnID  = "benchhang-hang"
	hangEvent = "bench/hang"
	hangBatch = 100 // events per POST
)

// FairResult holds the fair scenario's own figures (Result has the rest,
// for the unrelated function's runs).
type FairResult struct {
	HangEvents    int     `json:"hanging_events"`
	HangSec       float64 `json:"hang_at_most_sec"`
	HeldAtStart   int     `json:"hanging_calls_held_at_start"`
	MostHeld      int     `json:"most_hanging_calls_held"`
	DoneWhileHeld int     `json:"unrelated_runs_completed_while_held"`
	HangFinished  int     `json:"hanging_runs_finished"`
}

// hangApp answers every call only when released (or after hang).
type hangApp struct {
	url     string
	keys    *prodKeys // production mode: answers are signed
	hang    time.Duration
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	held    int
	most    int
	first   time.Time // the first answer
}

func (a *hangApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeSDK(w, http.StatusOK, []byte(`{"function_count":1,"mode":"dev","sdk":"`+benchSDK+`"}`))
		return
	}
	a.add(1)
	select {
	case <-a.release:
	case <-time.After(a.hang):
	case <-r.Context().Done():
	}
	a.add(-1)
	a.mu.Lock()
	if a.first.IsZero() {
		a.first = time.Now()
	}
	a.mu.Unlock()
	body := []byte(`"released"`)
	if a.keys != nil {
		w.Header().Set(signing.Header, a.keys.key.Sign(body, time.Now()))
	}
	writeSDK(w, http.StatusOK, body)
}

func (a *hangApp) add(d int) {
	a.mu.Lock()
	a.held += d
	a.most = max(a.most, a.held)
	a.mu.Unlock()
}

func (a *hangApp) counts() (held, most int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.held, a.most
}

func (a *hangApp) releaseAll() { a.once.Do(func() { close(a.release) }) }

func startHangApp(hang time.Duration, keys *prodKeys) (*hangApp, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	a := &hangApp{url: fmt.Sprintf("http://%s/api/inngest", ln.Addr()), keys: keys, hang: hang, release: make(chan struct{})}
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return a, func() {
		a.releaseAll()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// register syncs the hanging app with Cairn directly (POST /fn/register).
func (a *hangApp) register(ctx context.Context, c *cairnNode) error {
	reg := map[string]any{
		"url": a.url, "deployType": "ping", "framework": "cairn-bench", "appName": hangAppID,
		"sdk": "go:" + benchSDK, "v": "0.1",
		"functions": []any{map[string]any{
			"id": hangFnID, "name": "hang", "triggers": []any{map[string]any{"event": hangEvent}},
			"steps": map[string]any{"step": map[string]any{"id": "step", "name": "step",
				"runtime": map[string]any{"type": "http", "url": a.url + "?fnId=" + hangFnID + "&stepId=step"}}},
		}},
	}
	return c.postJSON(ctx, "/fn/register", reg, nil)
}

// postHangEvents sends n events to the hanging function, hangBatch a POST.
func postHangEvents(ctx context.Context, c *cairnNode, n int) ([]string, error) {
	var ids []string
	for len(ids) < n {
		k := min(hangBatch, n-len(ids))
		body := "[" + strings.TrimSuffix(strings.Repeat(`{"name":"`+hangEvent+`","data":{}},`, k), ",") + "]"
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.eventURL(), bytes.NewReader([]byte(body)))
		if err != nil {
			return ids, err
		}
		req.Header.Set("Content-Type", "application/json")
		var out struct {
			IDs []string `json:"ids"`
		}
		if err := doJSON(req, &out); err != nil {
			return ids, err
		}
		ids = append(ids, out.IDs...)
	}
	return ids, nil
}

// runFair runs the fair scenario.
func runFair(ctx context.Context, e *env) *Result {
	o := e.opts
	fr := &FairResult{HangEvents: o.fairHangN, HangSec: o.fairHang.Seconds()}
	fail := func(err error) *Result {
		return &Result{App: e.app, Scenario: "fair", Fair: fr, Error: err.Error()}
	}
	app, stop, err := startHangApp(o.fairHang, e.keys)
	if err != nil {
		return fail(err)
	}
	defer stop()
	if err := app.register(ctx, e.cairn); err != nil {
		return fail(fmt.Errorf("registering %s: %w", hangAppID, err))
	}
	logf("%s: fair: %d events to %s, whose calls hang (at most %s)", e.app, o.fairHangN, hangFnID, o.fairHang)
	hangIDs, err := postHangEvents(ctx, e.cairn, o.fairHangN)
	if err != nil {
		return fail(fmt.Errorf("sending the hanging events: %w", err))
	}
	// Measure once the hanging calls are in flight: their count has not
	// grown for a second.
	last, since := -1, time.Now()
	for time.Since(since) < time.Second && ctx.Err() == nil {
		if held, _ := app.counts(); held != last {
			last, since = held, time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	fr.HeldAtStart = last
	logf("%s: fair: %d calls of %s held; steady %g events/s for %s to %s", e.app, last, hangFnID, o.fairRate, o.fairDuration, goFnID)
	startedAt := time.Now()
	res := runSteady(ctx, e, o.fairRate, o.fairDuration)
	heldUntil := time.Now() // the release, or a hang that ran out before it
	app.releaseAll()
	app.mu.Lock()
	if !app.first.IsZero() && app.first.Before(heldUntil) {
		heldUntil = app.first
	}
	app.mu.Unlock()
	res.Scenario, res.Fair = "fair", fr
	res.Offered = fmt.Sprintf("%g events/s for %s while %d calls hang", o.fairRate, o.fairDuration, fr.HeldAtStart)
	_, fr.MostHeld = app.counts()
	if err := fr.countDoneWhileHeld(ctx, e.cairn, startedAt, heldUntil); err != nil {
		res.Notes = append(res.Notes, "reading the unrelated runs: "+err.Error())
	}

	// The hanging runs end once released; wait for them so the next
	// scenario starts with nothing in flight.
	tr := newTracker(e.cairn)
	for _, id := range hangIDs {
		tr.add(id)
	}
	done := make(chan struct{})
	close(done)
	if err := tr.wait(ctx, done, o.poll, o.stall); err != nil && res.Error == "" {
		res.Error = "hanging runs after release: " + err.Error()
	}
	tr.mu.Lock()
	fr.HangFinished = len(tr.finished)
	tr.mu.Unlock()
	logf("%s: fair: %s p50 %s ms, p99 %s ms while %d calls hung; %d/%d completed before any hanging call was answered%s",
		e.app, goFnID, num(res.LatencyMs.P50), num(res.LatencyMs.P99), fr.HeldAtStart, fr.DoneWhileHeld, res.Completed, errSuffix(res.Error))
	return res
}

// countDoneWhileHeld counts the unrelated runs of the scenario that ended
// while every hanging call was still held (before heldUntil).
func (fr *FairResult) countDoneWhileHeld(ctx context.Context, c *cairnNode, startedAt, heldUntil time.Time) error {
	runs, err := c.recentRuns(ctx, 1000)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.Function == goFnID && r.Status == "completed" && r.CreatedAt >= startedAt.UnixMilli() &&
			r.EndedAt < heldUntil.UnixMilli() {
			fr.DoneWhileHeld++
		}
	}
	return nil
}

package main

// The fair scenario: how long an unrelated function waits while another
// app hangs on many calls. A second app (benchhang, a Go SDK app served by
// the bench) gets -fair-hang-n events whose calls each hang until the
// scenario ends (at most -fair-hang); once its calls are in flight, the
// steady scenario sends -fair-rate events/s for -fair-duration to
// benchgo-import-contacts, and its event→completion latency is the figure.
// Then the hanging calls are answered and their runs awaited, so that later
// scenarios start clean.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/sdk"
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

// hangApp is app benchhang, written with the Go SDK: its one function,
// benchhang-hang, returns only when released (or after hang).
type hangApp struct {
	url     string
	client  *sdk.Client
	hang    time.Duration
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	held    int
	most    int
	first   time.Time // the first answer
}

func (a *hangApp) hangFn(ctx context.Context, _ sdk.Input[json.RawMessage]) (string, error) {
	a.add(1)
	select {
	case <-a.release:
	case <-time.After(a.hang):
	case <-ctx.Done():
	}
	a.add(-1)
	a.mu.Lock()
	if a.first.IsZero() {
		a.first = time.Now()
	}
	a.mu.Unlock()
	return "released", nil
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

func startHangApp(cairnURL string, hang time.Duration, keys *prodKeys) (*hangApp, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	origin := "http://" + ln.Addr().String()
	a := &hangApp{url: origin + servePath, hang: hang, release: make(chan struct{})}
	if a.client, err = newSDKClient(hangAppID, cairnURL, origin, keys, nil); err == nil {
		var f *sdk.Function
		f, err = sdk.CreateFunction(a.client, sdk.FunctionOpts{ID: "hang"}, sdk.EventTrigger(hangEvent), a.hangFn)
		if err == nil && f.FullID() != hangFnID {
			err = fmt.Errorf("hang app: function id %q, want %q", f.FullID(), hangFnID)
		}
	}
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	_, stop := serve(ln, a.client.Serve(), partApp)
	return a, func() {
		a.releaseAll()
		stop()
	}, nil
}

// register syncs the hanging app with Cairn directly (POST /fn/register:
// nothing pings it).
func (a *hangApp) register(ctx context.Context) error { return a.client.Register(ctx, a.url) }

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
	app, stop, err := startHangApp(e.cairn.url, o.fairHang, e.keys)
	if err != nil {
		return fail(err)
	}
	defer stop()
	if err := app.register(ctx); err != nil {
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

package fsm_test

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// failedRun starts a run that memoizes steps a, b and c, then fails.
func (h *harness) failedRun() string {
	h.t.Helper()
	run := h.startRun(0)
	at := t0 + 10
	for _, s := range []string{"a", "b", "c"} {
		call := fsm.DiscoveryCall
		h.answer(run, call, at, ops(stepRun(s, `"`+s+`"`)))
		at += 10
	}
	h.answer(run, fsm.DiscoveryCall, at, fsm.CallFinished{Status: 500, SDK: true, Body: []byte(`{"message":"boom"}`)})
	if r := h.run(run); r.Status != fsm.StatusFailed || !slices.Equal(r.Stack, []string{"a", "b", "c"}) {
		h.t.Fatalf("setup: run is %s with steps %v", r.Status, r.Stack)
	}
	return run
}

func TestRerunFromStepKeepsTheStepsBeforeIt(t *testing.T) {
	for _, c := range []struct {
		from string
		kept []string
	}{
		{"", nil},                          // from the start
		{"a", nil},                         // the first step: nothing kept
		{"c", []string{"a", "b"}},          // the steps before c
		{"never", []string{"a", "b", "c"}}, // a step that never completed: all kept
	} {
		h := newHarness(t)
		old := h.failedRun()
		before := h.run(old)
		res := h.want(&fsm.RunRerun{At: t0 + 100, RunID: "01RERUN000000000000000000A", From: old, FromStep: c.from, By: "cli"}, fsm.OK)
		if res.ID != "01RERUN000000000000000000A" {
			t.Fatalf("rerun id %q", res.ID)
		}
		r := h.run(res.ID)
		if r.Status != fsm.StatusRunning || r.FnID != before.FnID || !slices.Equal(r.EventIDs, before.EventIDs) || r.RerunOf != old {
			t.Fatalf("from %q: new run %+v", c.from, r)
		}
		if !slices.Equal(r.Stack, c.kept) {
			t.Errorf("from %q: kept %v, want %v", c.from, r.Stack, c.kept)
		}
		for _, s := range c.kept {
			if got := h.memo(res.ID, s); got != h.memo(old, s) {
				t.Errorf("from %q: memo %s = %s, want %s", c.from, s, got, h.memo(old, s))
			}
		}
		if got := h.memo(res.ID, "c"); c.from == "c" && got != "<nil>" {
			t.Errorf("step c kept its value: %s", got)
		}
		if h.mustCall(res.ID, fsm.DiscoveryCall).Due != t0+100 {
			t.Errorf("the rerun's first call is not due at once")
		}
		after := h.run(old)
		if after.Status != fsm.StatusFailed || !slices.Equal(after.Stack, before.Stack) || string(after.Error) != string(before.Error) {
			t.Errorf("the old run changed: %+v", after)
		}
		if hist := h.history(old); hist[len(hist)-1] != fsm.HistRunRerun {
			t.Errorf("old run's history ends %v", hist)
		}
		if hist := h.history(res.ID); !slices.Contains(hist, fsm.HistRunRerunOf) {
			t.Errorf("new run's history %v", hist)
		}
		if runs, _ := h.f.RunsForEvent(before.EventIDs[0]); !slices.Contains(runs, res.ID) {
			t.Errorf("the event's runs %v lack the rerun", runs)
		}
	}
}

func TestRerunRefusals(t *testing.T) {
	h := newHarness(t)
	old := h.failedRun()
	h.want(&fsm.RunRerun{At: t0 + 100, RunID: "01NEW", From: "01NOSUCHRUN"}, fsm.NotFound)
	h.want(&fsm.RunRerun{At: t0 + 100, RunID: "01NEW", From: old}, fsm.OK)
	h.want(&fsm.RunRerun{At: t0 + 100, RunID: "01NEW", From: old}, fsm.Duplicate)
	h.want(&fsm.AppRemoved{At: t0 + 200, AppID: "app"}, fsm.OK)
	h.want(&fsm.RunRerun{At: t0 + 300, RunID: "01NEW2", From: old}, fsm.Rejected)
	// A rerun is not an admission: a function idempotency key does not drop it.
	h2 := newHarness(t)
	def := fnDef("app-fn", "ev/go", 0)
	def.Idempotency = "event.name"
	h2.want(syncApp(t0, "app", def), fsm.OK)
	first := h2.want(event(t0, "01EVENT0000000000000000000", "ev/go"), fsm.OK).Runs[0]
	h2.want(&fsm.RunRerun{At: t0 + 1, RunID: "01NEW", From: first}, fsm.OK)
}

func TestReplayStartsEachPlaceOnce(t *testing.T) {
	h := newHarness(t)
	old := h.failedRun()
	other := h.want(event(t0+1, "01EVENT0000000000000000001", "ev/go"), fsm.OK).Runs[0]
	h.want(&fsm.ReplayStarted{At: t0 + 100, ID: "rp1", FnID: "app-fn", From: t0, To: t0 + 1,
		Statuses: []string{fsm.StatusFailed, fsm.StatusRunning}, Runs: []string{old, other}, By: "cli"}, fsm.OK)
	h.want(&fsm.ReplayStarted{At: t0 + 100, ID: "rp1", FnID: "app-fn"}, fsm.Duplicate)
	if act, _ := h.f.ActiveReplays(); len(act) != 1 || act[0].Total != 2 || act[0].Next != 0 {
		t.Fatalf("active replays %+v", act)
	}
	h.want(&fsm.RunRerun{At: t0 + 110, RunID: "01R0", From: old, Replay: "rp1", Seq: 0}, fsm.OK)
	// A new leader proposing the same place again starts nothing.
	h.want(&fsm.RunRerun{At: t0 + 111, RunID: "01R0b", From: old, Replay: "rp1", Seq: 0}, fsm.Stale)
	h.want(&fsm.RunRerun{At: t0 + 112, RunID: "01R1", From: old, Replay: "rp1", Seq: 1}, fsm.Rejected)
	h.want(&fsm.RunRerun{At: t0 + 113, RunID: "01R1", From: other, Replay: "rp1", Seq: 1}, fsm.OK)
	rp, err := h.f.Replay("rp1")
	if err != nil || rp.Status != fsm.ReplayStatusCompleted || rp.Next != 2 {
		t.Fatalf("replay %+v %v", rp, err)
	}
	places, _ := h.f.ReplayRuns("rp1", 0, 0)
	if len(places) != 2 || places[0] != (fsm.ReplayRun{Old: old, New: "01R0"}) || places[1] != (fsm.ReplayRun{Old: other, New: "01R1"}) {
		t.Fatalf("places %+v", places)
	}
	if act, _ := h.f.ActiveReplays(); len(act) != 0 {
		t.Fatalf("a finished replay is active: %+v", act)
	}
	h.want(&fsm.ReplayCancelled{At: t0 + 120, ID: "rp1"}, fsm.Rejected)

	h.want(&fsm.ReplayStarted{At: t0 + 200, ID: "rp2", FnID: "app-fn", Runs: []string{old}}, fsm.OK)
	h.want(&fsm.ReplayCancelled{At: t0 + 201, ID: "rp2", By: "cli"}, fsm.OK)
	h.want(&fsm.RunRerun{At: t0 + 202, RunID: "01R2", From: old, Replay: "rp2", Seq: 0}, fsm.Rejected)
	if rp, _ := h.f.Replay("rp2"); rp.Status != fsm.ReplayStatusCancelled || rp.CancelledBy != "cli" {
		t.Fatalf("cancelled replay %+v", rp)
	}
	// An empty replay is over at once.
	h.want(&fsm.ReplayStarted{At: t0 + 300, ID: "rp3", FnID: "app-fn"}, fsm.OK)
	if rp, _ := h.f.Replay("rp3"); rp.Status != fsm.ReplayStatusCompleted {
		t.Fatalf("empty replay %+v", rp)
	}
}

func TestFunctionRunsByWindowAndStatus(t *testing.T) {
	h := newHarness(t)
	failed := h.failedRun() // created at t0
	running := h.want(event(t0+5, "01EVENT0000000000000000001", "ev/go"), fsm.OK).Runs[0]
	later := h.want(event(t0+50, "01EVENT0000000000000000002", "ev/go"), fsm.OK).Runs[0]
	for _, c := range []struct {
		q    fsm.RunQuery
		want []string
	}{
		{fsm.RunQuery{FnID: "app-fn", From: t0, To: t0 + 50}, []string{failed, running, later}},
		{fsm.RunQuery{FnID: "app-fn", From: t0 + 1, To: t0 + 50}, []string{running, later}},
		{fsm.RunQuery{FnID: "app-fn", From: t0, To: t0 + 5}, []string{failed, running}},
		{fsm.RunQuery{FnID: "app-fn", From: t0, To: t0 + 50, Statuses: []string{fsm.StatusFailed}}, []string{failed}},
		{fsm.RunQuery{FnID: "app-fn", From: t0, To: t0 + 50, Limit: 1}, []string{failed}},
		{fsm.RunQuery{FnID: "other", From: t0, To: t0 + 50}, nil},
	} {
		runs, err := h.f.FunctionRuns(c.q)
		var got []string
		for _, r := range runs {
			got = append(got, r.ID)
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%+v: %v %v, want %v", c.q, got, err, c.want)
		}
	}
}

func TestResolveStep(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(0)
	// The SDK's hash of "parse-csv" (protocol §4.2: hex sha1).
	sum := sha1.Sum([]byte("parse-csv"))
	hashed := hex.EncodeToString(sum[:])
	op := stepRun(hashed, `1`)
	op.DisplayName = "Parse the CSV"
	h.answer(run, fsm.DiscoveryCall, t0+10, ops(op))
	for _, in := range []string{hashed, "parse-csv", "Parse the CSV"} {
		if id, ok, err := h.f.ResolveStep(run, in); err != nil || !ok || id != hashed {
			t.Errorf("ResolveStep(%q) = %q %v %v", in, id, ok, err)
		}
	}
	if _, ok, _ := h.f.ResolveStep(run, "nope"); ok {
		t.Error("an unknown step resolved")
	}
}

func TestRerunNeedsFormat3(t *testing.T) {
	for _, r := range []fsm.Record{&fsm.RunRerun{}, &fsm.ReplayStarted{}, &fsm.ReplayCancelled{}} {
		if err := fsm.Downgrade(r, 2); !errors.Is(err, fsm.ErrFormat) {
			t.Errorf("%s at format 2: %v", r.Kind(), err)
		}
	}
}

// A batched run is rerun with all of its events, and without batching
// again: the rerun starts at once.
func TestRerunOfABatchedRunTakesAllItsEvents(t *testing.T) {
	h := newHarness(t)
	def := fnDef("app-fn", "ev/go", 0)
	def.Batch = &fsm.BatchSpec{MaxSize: 3, TimeoutMs: 60_000}
	h.want(syncApp(t0, "app", def), fsm.OK)
	var run string
	for i := range 3 {
		res := h.want(event(t0+int64(i), fmt.Sprintf("01EVENT000000000000000000%d", i), "ev/go"), fsm.OK)
		if len(res.Runs) == 1 {
			run = res.Runs[0]
		}
	}
	old := h.run(run)
	if len(old.EventIDs) != 3 {
		t.Fatalf("batched run has events %v", old.EventIDs)
	}
	res := h.want(&fsm.RunRerun{At: t0 + 10, RunID: "01RERUN", From: run}, fsm.OK)
	r := h.run(res.ID)
	if !slices.Equal(r.EventIDs, old.EventIDs) || r.Waiting != "" {
		t.Fatalf("rerun %+v, want events %v and no wait", r, old.EventIDs)
	}
	if h.mustCall(res.ID, fsm.DiscoveryCall).Due != t0+10 {
		t.Fatal("the rerun waits")
	}
}

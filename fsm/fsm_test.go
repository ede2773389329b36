package fsm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// t0 is the time of the first record of every scenario (unix ms).
const t0 int64 = 1_700_000_000_000

const day = 24 * 60 * 60 * 1000

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openFSM(t *testing.T, dir string) *fsm.FSM {
	t.Helper()
	f, err := fsm.Open(dir, fsm.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open fsm: %v", err)
	}
	return f
}

// harness feeds records to one FSM, one log entry per apply call.
type harness struct {
	t   *testing.T
	f   *fsm.FSM
	dir string
	idx uint64
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, f: openFSM(t, dir), dir: dir}
	t.Cleanup(func() { h.f.Close() })
	return h
}

func encode(t *testing.T, recs ...fsm.Record) []byte {
	t.Helper()
	data, err := fsm.EncodeEntry(recs...)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return data
}

// apply appends one entry holding recs and returns their results.
func (h *harness) apply(recs ...fsm.Record) []fsm.Result {
	h.t.Helper()
	h.idx++
	out := h.f.ApplyEntries([]fsm.Entry{{Index: h.idx, Data: encode(h.t, recs...)}})
	if len(out) != 1 || len(out[0]) != len(recs) {
		h.t.Fatalf("ApplyEntries returned %v for %d records", out, len(recs))
	}
	return out[0]
}

func (h *harness) apply1(r fsm.Record) fsm.Result {
	h.t.Helper()
	return h.apply(r)[0]
}

func (h *harness) want(r fsm.Record, code fsm.Code) fsm.Result {
	h.t.Helper()
	res := h.apply1(r)
	if res.Code != code {
		h.t.Fatalf("%s: code %v (%s), want %v", r.Kind(), res.Code, res.Msg, code)
	}
	return res
}

func (h *harness) run(id string) *fsm.Run {
	h.t.Helper()
	r, err := h.f.Run(id)
	if err != nil || r == nil {
		h.t.Fatalf("run %s: %v, %v", id, r, err)
	}
	return r
}

func (h *harness) call(run, id string) *fsm.Call {
	h.t.Helper()
	c, err := h.f.Call(run, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) mustCall(run, id string) *fsm.Call {
	h.t.Helper()
	c := h.call(run, id)
	if c == nil {
		h.t.Fatalf("run %s has no call %q; calls: %v", run, id, h.calls(run))
	}
	return c
}

// calls lists every queued call of a run, whatever its due time.
func (h *harness) calls(run string) []string {
	h.t.Helper()
	due, _, err := h.f.Due(1<<62, 1<<20, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, c := range due {
		if c.RunID == run {
			out = append(out, c.ID)
		}
	}
	slices.Sort(out)
	return out
}

func (h *harness) memo(run, step string) string {
	h.t.Helper()
	m, err := h.f.Memo(run, step)
	if err != nil {
		h.t.Fatal(err)
	}
	if m == nil {
		return "<nil>"
	}
	return string(m)
}

func (h *harness) history(run string) []string {
	h.t.Helper()
	hist, err := h.f.History(run)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range hist {
		out = append(out, e.Type)
	}
	return out
}

func (h *harness) digest() string {
	h.t.Helper()
	d, err := h.f.StateDigest()
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func fnDef(id, event string, retries int) fsm.FunctionDef {
	return fsm.FunctionDef{
		ID: id, Name: id, URL: "http://app.test/api/inngest?fnId=" + id + "&stepId=step",
		Triggers: []fsm.Trigger{{Event: event}}, Retries: retries, Config: []byte(`{}`),
	}
}

// syncApp builds an AppSynced whose checksum is derived from its functions,
// as the API does.
func syncApp(at int64, app string, fns ...fsm.FunctionDef) *fsm.AppSynced {
	sum, _ := json.Marshal(fns)
	return &fsm.AppSynced{At: at, AppID: app, URL: "http://app.test/api/inngest", SDK: "js:v4.24.0",
		Checksum: fmt.Sprintf("%x", sum), Functions: fns}
}

func event(at int64, id, name string) *fsm.EventAccepted {
	return &fsm.EventAccepted{At: at, ID: id, Name: name,
		JSON: []byte(`{"name":"` + name + `","data":{},"id":"` + id + `","ts":` + fmt.Sprint(at) + `,"user":{}}`)}
}

// startRun syncs one function (triggered by "ev/go") and sends one event:
// it returns the id of the single run that starts.
func (h *harness) startRun(retries int) string {
	h.t.Helper()
	h.want(syncApp(t0, "app", fnDef("app-fn", "ev/go", retries)), fsm.OK)
	res := h.want(event(t0, "01EVENT0000000000000000000", "ev/go"), fsm.OK)
	if len(res.Runs) != 1 {
		h.t.Fatalf("event started %v, want one run", res.Runs)
	}
	return res.Runs[0]
}

// claim claims a call at its current generation, at time at, for n1/b1.
func (h *harness) claim(run, call string, at int64) uint32 {
	h.t.Helper()
	c := h.mustCall(run, call)
	res := h.want(&fsm.CallClaimed{At: at, RunID: run, Call: call, Gen: c.Gen, LeaseUntil: at + 30_000,
		Node: "n1", Boot: "b1"}, fsm.OK)
	if res.Gen != c.Gen+1 {
		h.t.Fatalf("claim gen = %d, want %d", res.Gen, c.Gen+1)
	}
	return res.Gen
}

// answer claims a call and reports the app's answer to it.
func (h *harness) answer(run, call string, at int64, cf fsm.CallFinished) fsm.Result {
	h.t.Helper()
	gen := h.claim(run, call, at)
	cf.At, cf.RunID, cf.Call, cf.Gen = at+1, run, call, gen
	return h.apply1(&cf)
}

func ops(o ...fsm.Op) fsm.CallFinished {
	return fsm.CallFinished{Status: 206, SDK: true, Version: 2, Ops: o}
}

func stepRun(id, data string) fsm.Op { return fsm.Op{ID: id, Op: "StepRun", Data: []byte(data)} }

func TestAppSyncedAndEventStartRuns(t *testing.T) {
	h := newHarness(t)
	sync1 := syncApp(t0, "app", fnDef("app-a", "ev/x", -1), fnDef("app-b", "ev/x", 2), fnDef("app-c", "ev/y", 0))
	if res := h.want(sync1, fsm.OK); !res.Modified || res.ID != "app" {
		t.Fatalf("first sync: %+v", res)
	}
	// The same definitions again change nothing.
	before := h.digest()
	if res := h.want(syncApp(t0+5, "app", sync1.Functions...), fsm.OK); res.Modified {
		t.Fatalf("same checksum: Modified = true")
	}
	if h.digest() != before {
		t.Fatalf("an unmodified sync changed the state")
	}
	if fn, _ := h.f.Function("app-b"); fn == nil || fn.AppID != "app" || fn.MaxAttempts() != 3 {
		t.Fatalf("function app-b = %+v", fn)
	}
	if fn, _ := h.f.Function("app-a"); fn == nil || fn.MaxAttempts() != fsm.DefaultRetries+1 {
		t.Fatalf("function app-a = %+v", fn)
	}

	at := t0 + 1000
	res := h.want(event(at, "01EVX000000000000000000000", "ev/x"), fsm.OK)
	if res.ID != "01EVX000000000000000000000" || len(res.Runs) != 2 {
		t.Fatalf("event ev/x: %+v, want two runs", res)
	}
	got, err := h.f.RunsForEvent(res.ID)
	if err != nil || !sameSet(got, res.Runs) {
		t.Fatalf("RunsForEvent = %v, %v; want %v", got, err, res.Runs)
	}
	fns := map[string]bool{}
	for _, id := range res.Runs {
		r := h.run(id)
		fns[r.FnID] = true
		if r.Status != fsm.StatusRunning || r.CreatedAt != at || r.AppID != "app" ||
			!reflect.DeepEqual(r.EventIDs, []string{res.ID}) || r.Version != -1 {
			t.Fatalf("run %+v", r)
		}
		c := h.mustCall(id, fsm.DiscoveryCall)
		if c.Type != fsm.CallHTTP || c.Due != at || c.Attempt != 0 || c.Claimed || c.Gen != 0 {
			t.Fatalf("discovery call %+v", c)
		}
		if hist := h.history(id); len(hist) == 0 || hist[0] != "run.scheduled" {
			t.Fatalf("history %v", hist)
		}
	}
	if !fns["app-a"] || !fns["app-b"] {
		t.Fatalf("runs are for %v", fns)
	}
	due, next, err := h.f.Due(at, 10, nil)
	if err != nil || len(due) != 2 || next != 0 {
		t.Fatalf("Due(at) = %v, %d, %v", due, next, err)
	}
	due, next, _ = h.f.Due(at-1, 10, nil)
	if len(due) != 0 || next != at {
		t.Fatalf("Due(at-1) = %v, next %d; want nothing, next %d", due, next, at)
	}
	due, _, _ = h.f.Due(at, 10, func(run, call string, _ int64) bool { return run == res.Runs[0] })
	if len(due) != 1 || due[0].RunID != res.Runs[1] {
		t.Fatalf("Due with skip = %v", due)
	}

	// An event nothing listens to is stored but starts nothing.
	if res := h.want(event(at, "01EVZ000000000000000000000", "ev/none"), fsm.OK); len(res.Runs) != 0 {
		t.Fatalf("ev/none started %v", res.Runs)
	}
	if ev, _ := h.f.Event("01EVZ000000000000000000000"); ev == nil {
		t.Fatal("event not stored")
	}

	// A re-sync without app-b removes it and its trigger.
	if res := h.want(syncApp(t0+2000, "app", fnDef("app-a", "ev/x", -1), fnDef("app-c", "ev/y", 0)), fsm.OK); !res.Modified {
		t.Fatal("re-sync without app-b: Modified = false")
	}
	if fn, _ := h.f.Function("app-b"); fn != nil {
		t.Fatalf("app-b still registered: %+v", fn)
	}
	if app, _ := h.f.App("app"); app == nil || !reflect.DeepEqual(app.Functions, []string{"app-a", "app-c"}) {
		t.Fatalf("app = %+v", app)
	}
	res = h.want(event(t0+3000, "01EVX100000000000000000000", "ev/x"), fsm.OK)
	if len(res.Runs) != 1 || h.run(res.Runs[0]).FnID != "app-a" {
		t.Fatalf("after removing app-b, ev/x started %v", res.Runs)
	}
	// A function's trigger can change too.
	h.want(syncApp(t0+4000, "app", fnDef("app-a", "ev/new", -1)), fsm.OK)
	if res := h.want(event(t0+5000, "01EVX200000000000000000000", "ev/x"), fsm.OK); len(res.Runs) != 0 {
		t.Fatalf("old trigger still starts runs: %v", res.Runs)
	}
	if res := h.want(event(t0+5000, "01EVN000000000000000000000", "ev/new"), fsm.OK); len(res.Runs) != 1 {
		t.Fatalf("new trigger started %v", res.Runs)
	}
	// The same checksum at a new URL is a change.
	s := syncApp(t0+6000, "app", fnDef("app-a", "ev/new", -1))
	s.URL = "http://elsewhere.test/api/inngest"
	if res := h.want(s, fsm.OK); !res.Modified {
		t.Fatal("new URL: Modified = false")
	}
}

// A function that moved to another app belongs to that app: a later sync
// of its old app must not delete it.
func TestAppSyncedFunctionMovedBetweenApps(t *testing.T) {
	h := newHarness(t)
	h.want(syncApp(t0, "app1", fnDef("shared-fn", "ev/x", 0)), fsm.OK)
	h.want(syncApp(t0+1, "app2", fnDef("shared-fn", "ev/x", 0)), fsm.OK)
	if fn, _ := h.f.Function("shared-fn"); fn == nil || fn.AppID != "app2" {
		t.Fatalf("after the move: %+v", fn)
	}
	// app1 re-syncs with other functions.
	h.want(syncApp(t0+2, "app1", fnDef("app1-other", "ev/y", 0)), fsm.OK)
	fn, _ := h.f.Function("shared-fn")
	if fn == nil {
		t.Fatal("app1's re-sync deleted shared-fn, which belongs to app2 now")
	}
	if fn.AppID != "app2" {
		t.Fatalf("shared-fn = %+v", fn)
	}
	if res := h.want(event(t0+3, "01EVX000000000000000000000", "ev/x"), fsm.OK); len(res.Runs) != 1 {
		t.Fatalf("shared-fn trigger lost: %v", res.Runs)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestEventDedup(t *testing.T) {
	h := newHarness(t)
	h.want(syncApp(t0, "app", fnDef("app-fn", "ev/go", 0)), fsm.OK)

	t.Run("same event id", func(t *testing.T) {
		first := h.want(event(t0, "01DUP00000000000000000000A", "ev/go"), fsm.OK)
		if len(first.Runs) != 1 {
			t.Fatalf("first: %+v", first)
		}
		before := h.digest()
		dup := h.want(event(t0+10, "01DUP00000000000000000000A", "ev/go"), fsm.Duplicate)
		if dup.ID != "01DUP00000000000000000000A" || len(dup.Runs) != 0 {
			t.Fatalf("duplicate: %+v", dup)
		}
		if h.digest() != before {
			t.Fatal("a duplicate event changed the state")
		}
		if runs, _ := h.f.RunsForEvent(dup.ID); len(runs) != 1 {
			t.Fatalf("runs for event = %v", runs)
		}
	})

	t.Run("user id within 24h", func(t *testing.T) {
		idem := func(at int64, id string) *fsm.EventAccepted {
			e := event(at, id, "ev/go")
			e.IdemKey = "user-key-1"
			return e
		}
		base := t0 + 1000
		first := h.want(idem(base, "01IDEM0000000000000000000A"), fsm.OK)
		if len(first.Runs) != 1 {
			t.Fatalf("first: %+v", first)
		}
		for _, d := range []int64{0, 1, 60 * 60 * 1000, day - 1} {
			id := fmt.Sprintf("01IDEM%020d", d)
			dup := h.want(idem(base+d, id), fsm.Duplicate)
			if dup.ID != first.ID || len(dup.Runs) != 0 {
				t.Fatalf("+%dms: %+v, want a duplicate of %s", d, dup, first.ID)
			}
			if ev, _ := h.f.Event(id); ev != nil {
				t.Fatalf("+%dms: the duplicate event was stored", d)
			}
		}
		// After 24 h the key is free again, and the new event owns it.
		later := h.want(idem(base+day+1, "01IDEM0000000000000000000B"), fsm.OK)
		if later.ID != "01IDEM0000000000000000000B" || len(later.Runs) != 1 {
			t.Fatalf("after 24h: %+v", later)
		}
		dup := h.want(idem(base+day+2, "01IDEM0000000000000000000C"), fsm.Duplicate)
		if dup.ID != later.ID {
			t.Fatalf("window restarts at the new event: got %s, want %s", dup.ID, later.ID)
		}
		// Another key is independent.
		other := event(base+5, "01IDEM0000000000000000000D", "ev/go")
		other.IdemKey = "user-key-2"
		h.want(other, fsm.OK)
	})
}

func TestCallClaimed(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	at := t0 + 100
	claim := func(at int64, gen uint32, node, boot string) fsm.Result {
		return h.apply1(&fsm.CallClaimed{At: at, RunID: run, Call: fsm.DiscoveryCall, Gen: gen,
			LeaseUntil: at + 30_000, Node: node, Boot: boot})
	}
	expect := func(res fsm.Result, code fsm.Code) {
		t.Helper()
		if res.Code != code {
			t.Fatalf("code %v (%s), want %v", res.Code, res.Msg, code)
		}
	}
	expect(claim(at, 5, "n1", "b1"), fsm.Stale)   // wrong generation
	expect(claim(t0-1, 0, "n1", "b1"), fsm.Stale) // not due yet
	expect(h.apply1(&fsm.CallClaimed{At: at, RunID: "nope", Call: fsm.DiscoveryCall}), fsm.NotFound)
	expect(h.apply1(&fsm.CallClaimed{At: at, RunID: run, Call: "nope"}), fsm.Stale)
	// Finishing a call that was never claimed is stale too.
	expect(h.apply1(&fsm.CallFinished{At: at, RunID: run, Call: fsm.DiscoveryCall, Gen: 0, Status: 200, SDK: true}), fsm.Stale)

	res := claim(at, 0, "n1", "b1")
	expect(res, fsm.OK)
	if res.Gen != 1 {
		t.Fatalf("gen after claim = %d, want 1", res.Gen)
	}
	c := h.mustCall(run, fsm.DiscoveryCall)
	if !c.Claimed || c.Gen != 1 || c.Node != "n1" || c.Boot != "b1" || c.Due != at+30_000 {
		t.Fatalf("claimed call %+v", c)
	}
	if r := h.run(run); r.StartedAt != at || r.Calls != 1 {
		t.Fatalf("run after claim %+v", r)
	}
	if cl, _ := h.f.ClaimedBy("n1"); len(cl) != 1 || cl[0].ID != fsm.DiscoveryCall || cl[0].Gen != 1 {
		t.Fatalf("ClaimedBy(n1) = %+v", cl)
	}
	// The claim is not due again until its lease ends.
	if due, next, _ := h.f.Due(at+29_999, 10, nil); len(due) != 0 || next != at+30_000 {
		t.Fatalf("Due during lease = %v, next %d", due, next)
	}

	expect(claim(at+1, 0, "n1", "b1"), fsm.Stale) // the old generation is fenced
	expect(claim(at+1, 1, "n2", "b9"), fsm.Stale) // leased to n1
	expect(claim(at+1, 1, "n1", "b1"), fsm.Stale) // the same process cannot re-claim
	res = claim(at+30_000, 1, "n2", "b9")         // the lease ran out: n2 takes over
	expect(res, fsm.OK)
	if res.Gen != 2 {
		t.Fatalf("gen = %d, want 2", res.Gen)
	}
	if cl, _ := h.f.ClaimedBy("n1"); len(cl) != 0 {
		t.Fatalf("ClaimedBy(n1) after take-over = %+v", cl)
	}
	if cl, _ := h.f.ClaimedBy("n2"); len(cl) != 1 {
		t.Fatalf("ClaimedBy(n2) = %+v", cl)
	}
	if r := h.run(run); r.StartedAt != at || r.Calls != 2 {
		t.Fatalf("run %+v: StartedAt must stay the first claim", r)
	}

	// n1's answer arrives late: stale, recorded, and nothing else changes.
	memoBefore := h.memo(run, "s1")
	stale := h.apply1(&fsm.CallFinished{At: at + 30_001, RunID: run, Call: fsm.DiscoveryCall, Gen: 1,
		Status: 206, SDK: true, Ops: []fsm.Op{stepRun("s1", `1`)}})
	expect(stale, fsm.Stale)
	if h.memo(run, "s1") != memoBefore {
		t.Fatal("a stale answer was memoized")
	}
	if hist := h.history(run); hist[len(hist)-1] != "result.stale" {
		t.Fatalf("history %v, want result.stale last", hist)
	}
	if c := h.mustCall(run, fsm.DiscoveryCall); c.Gen != 2 || c.Node != "n2" {
		t.Fatalf("call after stale answer %+v", c)
	}
	// n2's answer counts.
	expect(h.apply1(&fsm.CallFinished{At: at + 30_002, RunID: run, Call: fsm.DiscoveryCall, Gen: 2,
		Status: 200, SDK: true, Body: []byte(`"done"`)}), fsm.OK)
	if r := h.run(run); r.Status != fsm.StatusCompleted || string(r.Output) != `"done"` {
		t.Fatalf("run %+v", r)
	}
	if cl, _ := h.f.ClaimedBy("n2"); len(cl) != 0 {
		t.Fatalf("ClaimedBy(n2) after the run ended = %+v", cl)
	}
}

// A claim that revokes another takes the call before the lease ends (the
// proposer found the claimant gone), fenced by the generation it names: the
// old claimant's answer is then stale, so one answer per claim counts.
func TestCallClaimedRevoke(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	at := t0 + 100
	gen := h.claim(run, fsm.DiscoveryCall, at) // n1/b1, lease 30 s
	revoke := func(at int64, gen uint32) fsm.Result {
		return h.apply1(&fsm.CallClaimed{At: at, RunID: run, Call: fsm.DiscoveryCall, Gen: gen,
			LeaseUntil: at + 30_000, Node: "n2", Boot: "b9", Revoke: true})
	}
	if res := revoke(at+1, gen-1); res.Code != fsm.Stale {
		t.Fatalf("revoking an older claim: %+v", res)
	}
	res := revoke(at+1, gen)
	if res.Code != fsm.OK || res.Gen != gen+1 {
		t.Fatalf("revoke: %+v", res)
	}
	if c := h.mustCall(run, fsm.DiscoveryCall); c.Node != "n2" || c.Boot != "b9" || c.Due != at+30_001 {
		t.Fatalf("revoked call %+v", c)
	}
	hist, _ := h.f.History(run)
	if last := hist[len(hist)-1]; last.Type != fsm.HistCallClaimed || last.Detail != "claim of n1 revoked" {
		t.Fatalf("history entry of the revoke %+v", last)
	}
	// The old claimant's answer is fenced; the new one's counts.
	if res := h.apply1(&fsm.CallFinished{At: at + 2, RunID: run, Call: fsm.DiscoveryCall, Gen: gen,
		Status: 206, SDK: true, Ops: []fsm.Op{stepRun("s1", `1`)}}); res.Code != fsm.Stale {
		t.Fatalf("the revoked claim's answer: %+v", res)
	}
	if res := h.apply1(&fsm.CallFinished{At: at + 3, RunID: run, Call: fsm.DiscoveryCall, Gen: gen + 1,
		Status: 206, SDK: true, Ops: []fsm.Op{stepRun("s1", `2`)}}); res.Code != fsm.OK {
		t.Fatalf("the new claim's answer: %+v", res)
	}
	if m := h.memo(run, "s1"); m != `{"data":2}` {
		t.Fatalf("memo %s, want the revoking claim's answer", m)
	}
	// A revoke takes only a claimed call: a queued one waits until it is due.
	c := h.mustCall(run, fsm.DiscoveryCall)
	if res := h.apply1(&fsm.CallClaimed{At: c.Due - 1, RunID: run, Call: c.ID, Gen: c.Gen,
		LeaseUntil: at + 60_000, Node: "n2", Boot: "b9", Revoke: true}); res.Code != fsm.Stale {
		t.Fatalf("a revoke of an unclaimed call before it is due: %+v", res)
	}
}

func TestStepRunMemoizes(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	at := t0 + 100
	if res := h.answer(run, fsm.DiscoveryCall, at, ops(stepRun("s1", `{"a":1}`))); res.Code != fsm.OK {
		t.Fatalf("answer: %+v", res)
	}
	if m := h.memo(run, "s1"); m != `{"data":{"a":1}}` {
		t.Fatalf("memo = %s", m)
	}
	r := h.run(run)
	if !reflect.DeepEqual(r.Stack, []string{"s1"}) || r.Version != 2 || r.Status != fsm.StatusRunning {
		t.Fatalf("run %+v", r)
	}
	c := h.mustCall(run, fsm.DiscoveryCall)
	if c.Claimed || c.Attempt != 0 || c.Due != at+1 || c.Type != fsm.CallHTTP {
		t.Fatalf("new discovery %+v", c)
	}
	if got := h.calls(run); !reflect.DeepEqual(got, []string{fsm.DiscoveryCall}) {
		t.Fatalf("calls %v", got)
	}

	// A StepRun without data memoizes null.
	h.answer(run, fsm.DiscoveryCall, at+10, ops(fsm.Op{ID: "s2", Op: "StepRun"}))
	if m := h.memo(run, "s2"); m != `{"data":null}` {
		t.Fatalf("memo s2 = %s", m)
	}

	// The same step again: the first result wins.
	if res := h.answer(run, fsm.DiscoveryCall, at+20, ops(stepRun("s1", `{"a":2}`))); res.Code != fsm.OK {
		t.Fatalf("answer: %+v", res)
	}
	if m := h.memo(run, "s1"); m != `{"data":{"a":1}}` {
		t.Fatalf("memo after duplicate = %s", m)
	}
	if r := h.run(run); !reflect.DeepEqual(r.Stack, []string{"s1", "s2"}) {
		t.Fatalf("stack after duplicate = %v", r.Stack)
	}
	if hist := h.history(run); !slices.Contains(hist, "step.duplicate") {
		t.Fatalf("history %v has no step.duplicate", hist)
	}
}

// Whatever the app answers, a run that is still running must have
// something queued, or nothing will ever move it again.
func TestAnsweringAMemoizedStepDoesNotStallRun(t *testing.T) {
	cases := []struct {
		name string
		op   fsm.Op
	}{
		{"StepRun", stepRun("s1", `2`)},
		{"StepFailed", fsm.Op{ID: "s1", Op: "StepFailed", Error: []byte(`{"message":"x"}`)}},
		{"StepError on the last attempt", fsm.Op{ID: "s1", Op: "StepError", Error: []byte(`{"message":"x"}`)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			run := h.startRun(0)
			h.answer(run, fsm.DiscoveryCall, t0+100, ops(stepRun("s1", `1`)))
			h.answer(run, fsm.DiscoveryCall, t0+200, ops(tc.op))
			if m := h.memo(run, "s1"); m != `{"data":1}` {
				t.Fatalf("memo = %s: the first result must win", m)
			}
			if r := h.run(run); r.Status == fsm.StatusRunning && len(h.calls(run)) == 0 {
				t.Fatalf("run stalled: running with nothing queued after %s for a memoized step", tc.op.Op)
			}
		})
	}
}

func TestStepErrorRetriesThenFails(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(1) // MaxAttempts 2
	at := t0 + 100
	stepErr := fsm.Op{ID: "s1", Op: "StepError", Error: []byte(`{"name":"Error","message":"flaky"}`)}
	no := false

	cf := ops(stepErr)
	cf.NoRetry = &no
	if res := h.answer(run, fsm.DiscoveryCall, at, cf); res.Code != fsm.OK {
		t.Fatalf("answer: %+v", res)
	}
	c := h.mustCall(run, fsm.DiscoveryCall)
	if c.Attempt != 1 || c.Claimed || c.Due <= at+1 {
		t.Fatalf("retried call %+v: want attempt 1, unclaimed, due later than %d", c, at+1)
	}
	if m := h.memo(run, "s1"); m != "<nil>" {
		t.Fatalf("a retried step was memoized: %s", m)
	}
	if hist := h.history(run); hist[len(hist)-1] != "step.errored" {
		t.Fatalf("history %v", hist)
	}
	// Not claimable before its backoff ends.
	if res := h.apply1(&fsm.CallClaimed{At: c.Due - 1, RunID: run, Call: c.ID, Gen: c.Gen, LeaseUntil: c.Due + 1000,
		Node: "n1", Boot: "b1"}); res.Code != fsm.Stale {
		t.Fatalf("early claim: %+v", res)
	}

	// The last attempt errors too: treated as StepFailed.
	if res := h.answer(run, fsm.DiscoveryCall, c.Due, cf); res.Code != fsm.OK {
		t.Fatalf("answer: %+v", res)
	}
	if m := h.memo(run, "s1"); m != `{"error":{"name":"Error","message":"flaky"}}` {
		t.Fatalf("memo = %s", m)
	}
	r := h.run(run)
	if r.Status != fsm.StatusRunning || !reflect.DeepEqual(r.Stack, []string{"s1"}) {
		t.Fatalf("run %+v", r)
	}
	d := h.mustCall(run, fsm.DiscoveryCall)
	if d.Attempt != 0 || d.Due != c.Due+1 || d.Claimed {
		t.Fatalf("discovery after the step failed: %+v", d)
	}
}

func TestStepFailedMemoizesError(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	yes := true
	cf := ops(fsm.Op{ID: "s1", Op: "StepFailed", Error: []byte(`{"name":"NonRetriableError"}`)})
	cf.NoRetry = &yes
	h.answer(run, fsm.DiscoveryCall, t0+10, cf)
	if m := h.memo(run, "s1"); m != `{"error":{"name":"NonRetriableError"}}` {
		t.Fatalf("memo = %s", m)
	}
	if r := h.run(run); r.Status != fsm.StatusRunning {
		t.Fatalf("a StepFailed 206 must not fail the run: %+v", r)
	}
	h.mustCall(run, fsm.DiscoveryCall)
}

func TestRetryBackoff(t *testing.T) {
	at := t0 + 100
	cases := []struct {
		name    string
		jitter  uint32
		retryAt int64
		want    int64
	}{
		{"first retry, no jitter", 0, 0, at + 1 + 750},
		{"first retry, max jitter", 500, 0, at + 1 + 1250},
		{"jitter wraps at 501", 501, 0, at + 1 + 750},
		{"retry-after in 30s", 0, at + 30_000, at + 30_000},
		{"retry-after clamped to 1s", 0, at + 10, at + 1 + 1000},
		{"retry-after clamped to 24h", 0, at + 3*day, at + 1 + day},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			run := h.startRun(3)
			h.answer(run, fsm.DiscoveryCall, at, fsm.CallFinished{Status: 500, SDK: true,
				Body: []byte(`{"name":"Error"}`), Jitter: tc.jitter, RetryAt: tc.retryAt})
			c := h.mustCall(run, fsm.DiscoveryCall)
			if c.Due != tc.want || c.Attempt != 1 {
				t.Fatalf("due %d (at+%d), attempt %d; want at+%d", c.Due, c.Due-at, c.Attempt, tc.want-at)
			}
		})
	}
	// Backoff doubles per attempt.
	h := newHarness(t)
	run := h.startRun(20)
	now := at
	var prev int64
	for attempt := 1; attempt <= 5; attempt++ {
		h.answer(run, fsm.DiscoveryCall, now, fsm.CallFinished{Status: 500, SDK: true})
		c := h.mustCall(run, fsm.DiscoveryCall)
		d := c.Due - (now + 1)
		if attempt > 1 && d != 2*prev {
			t.Fatalf("attempt %d: delay %d, want %d", attempt, d, 2*prev)
		}
		prev, now = d, c.Due
	}
}

func TestParallelSteps(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	at := t0 + 100
	h.answer(run, fsm.DiscoveryCall, at, ops(
		fsm.Op{ID: "pa", Op: "StepPlanned", DisplayName: "a"},
		fsm.Op{ID: "pb", Op: "StepPlanned", DisplayName: "b"},
	))
	if got := h.calls(run); !reflect.DeepEqual(got, []string{"pa", "pb"}) {
		t.Fatalf("calls %v, want the two planned steps", got)
	}
	for _, id := range []string{"pa", "pb"} {
		c := h.mustCall(run, id)
		if c.Type != fsm.CallHTTP || c.Due != at+1 || c.Claimed || c.Attempt != 0 {
			t.Fatalf("planned call %+v", c)
		}
	}
	if !h.run(run).ForcePlan {
		t.Fatal("ForcePlan not set with two planned steps")
	}

	h.answer(run, "pa", at+10, ops(stepRun("pa", `"A"`)))
	if got := h.calls(run); !reflect.DeepEqual(got, []string{"pb"}) {
		t.Fatalf("after the first step: calls %v, want only pb (no discovery yet)", got)
	}
	if r := h.run(run); !r.ForcePlan {
		t.Fatal("ForcePlan reset while a parallel step is outstanding")
	}

	h.answer(run, "pb", at+20, ops(stepRun("pb", `"B"`)))
	if got := h.calls(run); !reflect.DeepEqual(got, []string{fsm.DiscoveryCall}) {
		t.Fatalf("after the last step: calls %v, want a discovery", got)
	}
	r := h.run(run)
	if r.ForcePlan || !reflect.DeepEqual(r.Stack, []string{"pa", "pb"}) {
		t.Fatalf("run %+v", r)
	}
	if h.memo(run, "pa") != `{"data":"A"}` || h.memo(run, "pb") != `{"data":"B"}` {
		t.Fatal("memos")
	}
}

func TestRaceRediscoversAfterEachStep(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	race := []byte(`{"parallelMode":"race"}`)
	h.answer(run, fsm.DiscoveryCall, t0+100, ops(
		fsm.Op{ID: "pa", Op: "StepPlanned", Opts: race},
		fsm.Op{ID: "pb", Op: "StepPlanned", Opts: race},
	))
	h.answer(run, "pa", t0+110, ops(stepRun("pa", `1`)))
	if got := h.calls(run); !reflect.DeepEqual(got, []string{"pb", fsm.DiscoveryCall}) {
		t.Fatalf("calls %v, want pb and a discovery", got)
	}
}

func TestFunctionResults(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		name       string
		retries    int
		answers    []fsm.CallFinished // one per attempt
		wantStatus string
		wantOutput string // for completed
		wantError  string // substring, for failed
	}{
		{"200 completes", 3, []fsm.CallFinished{{Status: 200, SDK: true, Body: []byte(`{"ok":1}`)}},
			fsm.StatusCompleted, `{"ok":1}`, ""},
		{"200 with empty body outputs null", 3, []fsm.CallFinished{{Status: 200, SDK: true}},
			fsm.StatusCompleted, `null`, ""},
		{"RunComplete op", 3, []fsm.CallFinished{ops(fsm.Op{ID: "c", Op: "RunComplete", Data: []byte(`[1]`)})},
			fsm.StatusCompleted, `[1]`, ""},
		{"400 no-retry fails at once", 3, []fsm.CallFinished{{Status: 400, SDK: true, NoRetry: &yes,
			Body: []byte(`{"name":"Error","message":"bad"}`)}}, fsm.StatusFailed, "", `"message":"bad"`},
		{"500 retried until attempts run out", 2, []fsm.CallFinished{
			{Status: 500, SDK: true, NoRetry: &no, Body: []byte(`{"message":"e1"}`)},
			{Status: 500, SDK: true, Body: []byte(`{"message":"e2"}`)},
			{Status: 500, SDK: true, Body: []byte(`{"message":"e3"}`)},
		}, fsm.StatusFailed, "", `"e3"`},
		{"retries 0: one attempt", 0, []fsm.CallFinished{{Status: 500, SDK: true}}, fsm.StatusFailed, "", "HTTP 500"},
		{"2xx without SDK header is an error", 1, []fsm.CallFinished{
			{Status: 200, Body: []byte(`"proxy"`)},
			{Status: 206, Body: []byte(`[]`)},
		}, fsm.StatusFailed, "", "HTTP 206"},
		{"transport error", 1, []fsm.CallFinished{
			{Err: "connection refused"}, {Err: "connection refused again"},
		}, fsm.StatusFailed, "", "connection refused again"},
		{"retry then success", 2, []fsm.CallFinished{
			{Status: 502},
			{Status: 200, SDK: true, Body: []byte(`"ok"`)},
		}, fsm.StatusCompleted, `"ok"`, ""},
		{"unknown opcode fails", 3, []fsm.CallFinished{ops(fsm.Op{ID: "x", Op: "Gateway"})},
			fsm.StatusFailed, "", "UnsupportedOpcode"},
		{"empty 206 with nothing pending fails", 3, []fsm.CallFinished{ops()},
			fsm.StatusFailed, "", "NoProgress"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			run := h.startRun(tc.retries)
			now := t0 + 100
			for i, a := range tc.answers {
				c := h.mustCall(run, fsm.DiscoveryCall)
				if c.Attempt != i {
					t.Fatalf("attempt %d: call %+v", i, c)
				}
				now = max(now, c.Due)
				if res := h.answer(run, fsm.DiscoveryCall, now, a); res.Code != fsm.OK {
					t.Fatalf("attempt %d: %+v", i, res)
				}
				now += 2
				r := h.run(run)
				last := i == len(tc.answers)-1
				if !last && r.Done() {
					t.Fatalf("attempt %d: run ended early: %+v", i, r)
				}
			}
			r := h.run(run)
			if r.Status != tc.wantStatus {
				t.Fatalf("status %s, want %s (error %s)", r.Status, tc.wantStatus, r.Error)
			}
			if tc.wantOutput != "" && string(r.Output) != tc.wantOutput {
				t.Fatalf("output %s, want %s", r.Output, tc.wantOutput)
			}
			if tc.wantError != "" && !strings.Contains(string(r.Error), tc.wantError) {
				t.Fatalf("error %s, want it to contain %s", r.Error, tc.wantError)
			}
			if r.EndedAt == 0 {
				t.Fatal("EndedAt not set")
			}
			if got := h.calls(run); len(got) != 0 {
				t.Fatalf("a finished run still has calls %v", got)
			}
			if cl, _ := h.f.ClaimedBy("n1"); len(cl) != 0 {
				t.Fatalf("a finished run still has leases %v", cl)
			}
			if hist := h.history(run); hist[len(hist)-1] != "run."+tc.wantStatus {
				t.Fatalf("history %v", hist)
			}
			// Nothing more is accepted for it.
			if res := h.apply1(&fsm.CancelRequested{At: now, RunID: run}); res.Code != fsm.Rejected {
				t.Fatalf("cancel after the end: %+v", res)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	at := t0 + 100
	h.answer(run, fsm.DiscoveryCall, at, ops(fsm.Op{ID: "zz", Op: "Sleep", Name: "30s", Opts: []byte(`{}`)}))
	c := h.mustCall(run, "zz")
	wake := at + 1 + 30_000
	if c.Type != fsm.CallSleep || c.Due != wake {
		t.Fatalf("sleep call %+v, want due %d", c, wake)
	}
	if got := h.calls(run); !reflect.DeepEqual(got, []string{"zz"}) {
		t.Fatalf("calls while sleeping %v", got)
	}
	// A timer is not an app call.
	if res := h.apply1(&fsm.CallClaimed{At: wake, RunID: run, Call: "zz", Gen: 0, LeaseUntil: wake + 1000,
		Node: "n1", Boot: "b1"}); res.Code != fsm.Rejected {
		t.Fatalf("claiming a sleep: %+v", res)
	}
	if res := h.apply1(&fsm.TimerFired{At: wake - 1, RunID: run, Call: "zz", Gen: 0}); res.Code != fsm.Stale {
		t.Fatalf("early timer: %+v", res)
	}
	if res := h.apply1(&fsm.TimerFired{At: wake, RunID: run, Call: "zz", Gen: 9}); res.Code != fsm.Stale {
		t.Fatalf("wrong gen: %+v", res)
	}
	if res := h.apply1(&fsm.TimerFired{At: wake, RunID: run, Call: fsm.DiscoveryCall, Gen: 0}); res.Code == fsm.OK {
		t.Fatalf("TimerFired for a missing call: %+v", res)
	}
	if m := h.memo(run, "zz"); m != "<nil>" {
		t.Fatalf("memo before waking = %s", m)
	}
	if res := h.apply1(&fsm.TimerFired{At: wake + 5, RunID: run, Call: "zz", Gen: 0}); res.Code != fsm.OK {
		t.Fatalf("timer: %+v", res)
	}
	if m := h.memo(run, "zz"); m != "null" {
		t.Fatalf("memo = %s, want null", m)
	}
	if r := h.run(run); !reflect.DeepEqual(r.Stack, []string{"zz"}) {
		t.Fatalf("stack %v", r.Stack)
	}
	d := h.mustCall(run, fsm.DiscoveryCall)
	if d.Due != wake+5 || d.Claimed {
		t.Fatalf("discovery after waking %+v", d)
	}
	if res := h.apply1(&fsm.TimerFired{At: wake + 6, RunID: run, Call: "zz", Gen: 0}); res.Code != fsm.Stale {
		t.Fatalf("second firing: %+v", res)
	}
}

func TestSleepDurations(t *testing.T) {
	at := t0 + 100 // the answer is recorded at at+1
	cases := []struct {
		name, spec, opts string
		wantDue          int64 // absolute; 0: the run fails
	}{
		{"time string", "1m30s", "", at + 1 + 90_000},
		{"opts.duration wins", "ignored", `{"duration":"2s"}`, at + 1 + 2_000},
		{"ISO date", "2023-11-14T22:13:40.000Z", "", t0 + 20_000},
		{"date in the past ends at once", "2001-01-01T00:00:00Z", "", at + 1},
		{"longer than a year fails", "400d", "", 0},
		{"date more than a year away fails", "2030-01-01T00:00:00Z", "", 0},
		{"garbage fails", "soon", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			run := h.startRun(3)
			op := fsm.Op{ID: "zz", Op: "Sleep", Name: tc.spec}
			if tc.opts != "" {
				op.Opts = []byte(tc.opts)
			}
			h.answer(run, fsm.DiscoveryCall, at, ops(op))
			if tc.wantDue == 0 {
				if r := h.run(run); r.Status != fsm.StatusFailed || !strings.Contains(string(r.Error), "InvalidSleep") {
					t.Fatalf("run %+v, want failed with InvalidSleep", r)
				}
				return
			}
			if c := h.mustCall(run, "zz"); c.Due != tc.wantDue {
				t.Fatalf("due %d, want %d", c.Due, tc.wantDue)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	at := t0 + 100
	gen := h.claim(run, fsm.DiscoveryCall, at)
	if res := h.apply1(&fsm.CancelRequested{At: at + 5, RunID: run, Reason: "user asked"}); res.Code != fsm.OK || res.ID != run {
		t.Fatalf("cancel: %+v", res)
	}
	r := h.run(run)
	if r.Status != fsm.StatusCancelled || r.EndedAt != at+5 || !strings.Contains(string(r.Error), "user asked") {
		t.Fatalf("run %+v", r)
	}
	if got := h.calls(run); len(got) != 0 {
		t.Fatalf("calls after cancel %v", got)
	}
	if due, next, _ := h.f.Due(1<<62, 100, nil); len(due) != 0 || next != 0 {
		t.Fatalf("Due after cancel = %v, %d", due, next)
	}
	if cl, _ := h.f.ClaimedBy("n1"); len(cl) != 0 {
		t.Fatalf("ClaimedBy after cancel = %v", cl)
	}
	// The in-flight call's answer comes back: rejected, and kept in history.
	res := h.apply1(&fsm.CallFinished{At: at + 10, RunID: run, Call: fsm.DiscoveryCall, Gen: gen, Status: 206, SDK: true,
		Ops: []fsm.Op{stepRun("s1", `1`)}})
	if res.Code != fsm.Rejected {
		t.Fatalf("late answer: %+v", res)
	}
	if h.memo(run, "s1") != "<nil>" || h.run(run).Status != fsm.StatusCancelled {
		t.Fatal("a late answer changed a cancelled run")
	}
	if hist := h.history(run); hist[len(hist)-1] != "result.rejected" {
		t.Fatalf("history %v", hist)
	}
	if res := h.apply1(&fsm.CancelRequested{At: at + 20, RunID: run}); res.Code != fsm.Rejected {
		t.Fatalf("second cancel: %+v", res)
	}
	if res := h.apply1(&fsm.CancelRequested{At: at + 20, RunID: "nope"}); res.Code != fsm.NotFound {
		t.Fatalf("cancel of an unknown run: %+v", res)
	}
	if res := h.apply1(&fsm.TimerFired{At: at + 20, RunID: run, Call: "x"}); res.Code != fsm.Rejected {
		t.Fatalf("timer of a cancelled run: %+v", res)
	}
}

func TestLeaseNext(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	at := t0 + 100
	gen := h.claim(run, fsm.DiscoveryCall, at)
	lease := &fsm.LeaseNext{LeaseUntil: at + 60_000, Node: "n1", Boot: "b1"}
	res := h.want(&fsm.CallFinished{At: at + 10, RunID: run, Call: fsm.DiscoveryCall, Gen: gen, Status: 206, SDK: true,
		Ops: []fsm.Op{stepRun("s1", `1`)}, Lease: lease}, fsm.OK)
	if len(res.Claimed) != 1 {
		t.Fatalf("Claimed = %+v, want the new discovery", res.Claimed)
	}
	cl := res.Claimed[0]
	if cl.RunID != run || cl.ID != fsm.DiscoveryCall || !cl.Claimed || cl.Gen != 1 || cl.Node != "n1" ||
		cl.Boot != "b1" || cl.Due != lease.LeaseUntil || cl.Type != fsm.CallHTTP || cl.Attempt != 0 {
		t.Fatalf("claimed call %+v", cl)
	}
	if stored := h.mustCall(run, fsm.DiscoveryCall); !reflect.DeepEqual(*stored, cl) {
		t.Fatalf("stored %+v != returned %+v", *stored, cl)
	}
	if by, _ := h.f.ClaimedBy("n1"); len(by) != 1 || !reflect.DeepEqual(by[0], cl) {
		t.Fatalf("ClaimedBy(n1) = %+v", by)
	}
	if r := h.run(run); r.Calls != 2 {
		t.Fatalf("run.Calls = %d, want 2 (the lease is a claim)", r.Calls)
	}
	// Another node may not take it before the lease ends...
	if res := h.apply1(&fsm.CallClaimed{At: at + 20, RunID: run, Call: fsm.DiscoveryCall, Gen: cl.Gen,
		LeaseUntil: at + 90_000, Node: "n2", Boot: "b1"}); res.Code != fsm.Stale {
		t.Fatalf("n2 before the lease ends: %+v", res)
	}
	// ...but a new boot of the same node may: the old process is gone.
	res = h.want(&fsm.CallClaimed{At: at + 20, RunID: run, Call: fsm.DiscoveryCall, Gen: cl.Gen,
		LeaseUntil: at + 90_000, Node: "n1", Boot: "b2"}, fsm.OK)
	if res.Gen != cl.Gen+1 {
		t.Fatalf("take-over gen %d", res.Gen)
	}
	if c := h.mustCall(run, fsm.DiscoveryCall); c.Boot != "b2" || c.Due != at+90_000 {
		t.Fatalf("after take-over %+v", c)
	}

	// Nothing due at once: nothing leased (a retry is due later).
	res = h.want(&fsm.CallFinished{At: at + 30, RunID: run, Call: fsm.DiscoveryCall, Gen: cl.Gen + 1, Status: 500,
		SDK: true, Lease: lease}, fsm.OK)
	if len(res.Claimed) != 0 {
		t.Fatalf("leased a call that is not due: %+v", res.Claimed)
	}
	// A failing record leases nothing.
	res = h.apply1(&fsm.CallFinished{At: at + 40, RunID: run, Call: fsm.DiscoveryCall, Gen: 0, Status: 200, SDK: true, Lease: lease})
	if res.Code != fsm.Stale || len(res.Claimed) != 0 {
		t.Fatalf("stale answer with a lease: %+v", res)
	}
}

func TestLeaseNextOnEvent(t *testing.T) {
	h := newHarness(t)
	h.want(syncApp(t0, "app", fnDef("app-a", "ev/x", 1), fnDef("app-b", "ev/x", 1)), fsm.OK)
	e := event(t0+10, "01EVLEASE00000000000000000", "ev/x")
	e.Lease = &fsm.LeaseNext{LeaseUntil: t0 + 60_000, Node: "n1", Boot: "b1"}
	res := h.want(e, fsm.OK)
	if len(res.Runs) != 2 || len(res.Claimed) != 2 {
		t.Fatalf("event with lease: %+v", res)
	}
	for _, c := range res.Claimed {
		if !c.Claimed || c.Gen != 1 || c.ID != fsm.DiscoveryCall || !slices.Contains(res.Runs, c.RunID) {
			t.Fatalf("claimed %+v", c)
		}
		if r := h.run(c.RunID); r.StartedAt != t0+10 {
			t.Fatalf("run %+v", r)
		}
	}
	if by, _ := h.f.ClaimedBy("n1"); len(by) != 2 {
		t.Fatalf("ClaimedBy(n1) = %v", by)
	}
	// A duplicate event leases nothing.
	res = h.apply1(e)
	if res.Code != fsm.Duplicate || len(res.Claimed) != 0 {
		t.Fatalf("duplicate: %+v", res)
	}
}

// An entry's leasing records share its bounds: an event sized at one time
// may claim all of Max before an answer sized at another comes to be
// applied. With Keep the answer's run still gets its next call claimed,
// on the slot the answer frees; without it the call waits in the queue.
func TestLeaseKeepsTheSlotForTheRunsNextCall(t *testing.T) {
	for _, keep := range []bool{false, true} {
		h := newHarness(t)
		run := h.startRun(3)
		at := t0 + 100
		gen := h.claim(run, fsm.DiscoveryCall, at)
		ev := event(at+5, "01EVKEEP000000000000000000", "ev/go")
		ev.Lease = &fsm.LeaseNext{LeaseUntil: at + 60_000, Node: "n1", Boot: "b1", Max: 1, Each: 8}
		answer := &fsm.CallFinished{At: at + 10, RunID: run, Call: fsm.DiscoveryCall, Gen: gen, Status: 206, SDK: true,
			Ops:   []fsm.Op{stepRun("s1", `1`)},
			Lease: &fsm.LeaseNext{LeaseUntil: at + 60_000, Node: "n1", Boot: "b1", Max: 1, Each: 8, Keep: keep}}
		res := h.apply(ev, answer)
		if len(res[0].Claimed) != 1 {
			t.Fatalf("keep %v: the event claimed %+v, want its run's first call", keep, res[0].Claimed)
		}
		next := h.mustCall(run, fsm.DiscoveryCall)
		if keep != next.Claimed || len(res[1].Claimed) != map[bool]int{false: 0, true: 1}[keep] {
			t.Fatalf("keep %v: the answer claimed %+v; the run's next call %+v", keep, res[1].Claimed, next)
		}
		if keep && (res[1].Claimed[0].RunID != run || next.Node != "n1") {
			t.Fatalf("kept the slot for %+v, want run %s", res[1].Claimed[0], run)
		}
	}
}

func TestParseDurationMs(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		err  bool
	}{
		{"1s", 1000, false},
		{"1m30s", 90_000, false},
		{"2h", 2 * 3600_000, false},
		{"1d", day, false},
		{"1w", 7 * day, false},
		{"1w2d", 9 * day, false},
		{"500ms", 500, false},
		{"1.5s", 1500, false},
		{"0s", 0, false},
		{"1500us", 2, false}, // fractions round up to whole ms
		{"1ns", 1, false},
		{"1µs", 1, false},
		{"1h0m0s", 3600_000, false},
		{"", 0, true},
		{"s", 0, true},
		{"10", 0, true},
		{"10x", 0, true},
		{"1.2.3s", 0, true},
		{"-1s", 0, true},
		{"1 s", 0, true},
		{"abc", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := fsm.ParseDurationMs(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("ParseDurationMs(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseDurationMs(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseDurationMsHugeValues(t *testing.T) {
	for _, in := range []string{"99999999999999999999w", "9223372036854775808ms", "1000000000000000000000s"} {
		got, err := fsm.ParseDurationMs(in)
		if err == nil {
			t.Errorf("ParseDurationMs(%q) = %d, want an out-of-range error", in, got)
		}
	}
}

func TestSleepHugeDurationFailsRun(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	h.answer(run, fsm.DiscoveryCall, t0+100, ops(fsm.Op{ID: "zz", Op: "Sleep", Name: "99999999999999999999w"}))
	if r := h.run(run); r.Status != fsm.StatusFailed {
		c := h.call(run, "zz")
		t.Fatalf("run %+v, call %+v: want the run failed (InvalidSleep)", r, c)
	}
}

func TestReapplyIsNoop(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	h.answer(run, fsm.DiscoveryCall, t0+100, ops(stepRun("s1", `1`)))
	idx, chain := h.f.Applied()
	if idx != h.idx {
		t.Fatalf("Applied index %d, want %d", idx, h.idx)
	}
	digest := h.digest()
	notified := 0
	h.f.SetNotify(func() { notified++ })
	// Entries at or below the applied index, even with other content.
	other := encode(t, &fsm.CancelRequested{At: t0 + 200, RunID: run})
	out := h.f.ApplyEntries([]fsm.Entry{{Index: 1, Data: other}, {Index: idx, Data: other}})
	if len(out) != 2 || out[0] != nil || out[1] != nil {
		t.Fatalf("results for old entries = %v, want nil", out)
	}
	if i, c := h.f.Applied(); i != idx || c != chain {
		t.Fatalf("Applied changed: %d/%x -> %d/%x", idx, chain, i, c)
	}
	if h.digest() != digest || h.run(run).Status != fsm.StatusRunning || notified != 0 {
		t.Fatal("re-applied entries changed the state")
	}
	// A batch that mixes old and new entries applies only the new ones.
	out = h.f.ApplyEntries([]fsm.Entry{{Index: idx, Data: other}, {Index: idx + 1, Data: other}})
	if out[0] != nil || len(out[1]) != 1 || out[1][0].Code != fsm.OK {
		t.Fatalf("mixed batch results = %v", out)
	}
	if i, _ := h.f.Applied(); i != idx+1 || notified != 1 {
		t.Fatalf("Applied %d, notified %d", i, notified)
	}
	if h.run(run).Status != fsm.StatusCancelled {
		t.Fatal("the new entry was not applied")
	}
}

func TestApplyPanicsOnUndecodableEntry(t *testing.T) {
	h := newHarness(t)
	defer func() {
		if recover() == nil {
			t.Fatal("ApplyEntries accepted garbage")
		}
		if i, _ := h.f.Applied(); i != 0 {
			t.Fatalf("Applied = %d after a failed apply", i)
		}
	}()
	h.f.ApplyEntries([]fsm.Entry{{Index: 1, Data: []byte{9, 9, 9}}})
}

func TestSnapshotRestoreReplacesState(t *testing.T) {
	src := newHarness(t)
	run := src.startRun(3)
	src.answer(run, fsm.DiscoveryCall, t0+100, ops(stepRun("s1", `1`)))
	var buf bytes.Buffer
	snap, err := src.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	// The target has unrelated state of its own, all of which must go.
	dst := newHarness(t)
	dst.want(syncApp(t0, "other", fnDef("other-fn", "ev/o", 0)), fsm.OK)
	for i := 0; i < 20; i++ {
		dst.want(event(t0+int64(i), fmt.Sprintf("01OTHER%019d", i), "ev/o"), fsm.OK)
	}
	if err := dst.f.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if dst.digest() != src.digest() {
		t.Fatal("digest differs after restore")
	}
	si, sc := src.f.Applied()
	if di, dc := dst.f.Applied(); di != si || dc != sc {
		t.Fatalf("applied %d/%x, want %d/%x", di, dc, si, sc)
	}
	if fn, _ := dst.f.Function("other-fn"); fn != nil {
		t.Fatal("the target's old state survived the restore")
	}
	if dst.memo(run, "s1") != `{"data":1}` {
		t.Fatal("memo not restored")
	}
	// Garbage is refused.
	if err := dst.f.Restore(strings.NewReader("not a snapshot")); err == nil {
		t.Fatal("Restore accepted garbage")
	}
}

// ---- determinism ----

// gen produces a pseudo-random but meaningful log: it applies each entry
// to its own FSM as it goes, so claims and answers can refer to real calls
// (with the right generation most of the time, a wrong one sometimes).
type gen struct {
	t      *testing.T
	rng    *rand.Rand
	h      *harness
	now    int64
	evN    int
	synced bool
	// reuseSteps draws step ids from a small set, so that apps report
	// steps that are already memoized; otherwise every op has a new id,
	// as a real SDK's would.
	reuseSteps bool
	stepN      int
}

func (g *gen) pick(n int) int { return g.rng.Intn(n) }

func (g *gen) chance(p float64) bool { return g.rng.Float64() < p }

func (g *gen) lease() *fsm.LeaseNext {
	if !g.chance(0.3) {
		return nil
	}
	return &fsm.LeaseNext{LeaseUntil: g.now + 30_000, Node: []string{"n1", "n2"}[g.pick(2)], Boot: "b1"}
}

func (g *gen) sync() fsm.Record {
	events := []string{"ev/a", "ev/b", "ev/c"}
	var fns []fsm.FunctionDef
	for i := 0; i < 4; i++ {
		if g.chance(0.7) {
			fns = append(fns, fnDef(fmt.Sprintf("app-f%d", i), events[g.pick(len(events))], g.pick(4)-1))
		}
	}
	return syncApp(g.now, "app", fns...)
}

func (g *gen) event() fsm.Record {
	g.evN++
	id := fmt.Sprintf("01EV%022d", g.evN)
	if g.evN > 1 && g.chance(0.1) {
		id = fmt.Sprintf("01EV%022d", 1+g.pick(g.evN-1)) // a resend
	}
	e := event(g.now, id, []string{"ev/a", "ev/b", "ev/c", "ev/w"}[g.pick(4)])
	if g.chance(0.2) {
		e.IdemKey = fmt.Sprintf("key-%d", g.pick(5))
	}
	if g.chance(0.3) {
		e.By, e.ReplayedFrom = "cli (key:k1)", fmt.Sprintf("01EV%022d", g.pick(g.evN)+1) // actors reach the projection too
	}
	e.Lease = g.lease()
	return e
}

func (g *gen) randomOps() []fsm.Op {
	step := func() string {
		if g.reuseSteps {
			return fmt.Sprintf("s%d", g.pick(8))
		}
		g.stepN++
		return fmt.Sprintf("u%d", g.stepN)
	}
	switch g.pick(9) {
	case 0, 1:
		return []fsm.Op{stepRun(step(), fmt.Sprintf(`{"n":%d}`, g.pick(100)))}
	case 2:
		return []fsm.Op{{ID: step(), Op: "StepError", Error: []byte(`{"message":"flaky"}`)}}
	case 3:
		return []fsm.Op{{ID: step(), Op: "StepFailed", Error: []byte(`{"message":"final"}`)}}
	case 4:
		return []fsm.Op{{ID: step(), Op: "StepPlanned"}, {ID: step(), Op: "StepPlanned"}}
	case 5:
		return []fsm.Op{{ID: step(), Op: "Sleep", Name: fmt.Sprintf("%ds", 1+g.pick(20))}}
	case 6:
		return []fsm.Op{{ID: "c", Op: "RunComplete", Data: []byte(`"done"`)}}
	case 7:
		return []fsm.Op{{ID: step(), Op: "WaitForEvent", Name: "ev/w", Opts: []byte(`{"timeout":"10s"}`)}}
	}
	return nil
}

func (g *gen) finished(c fsm.Call) fsm.Record {
	cf := &fsm.CallFinished{At: g.now, RunID: c.RunID, Call: c.ID, Gen: c.Gen, Jitter: uint32(g.pick(1000)),
		Millis: int64(g.pick(500)), Lease: g.lease()}
	if g.chance(0.1) {
		cf.Gen-- // an answer to an older claim
	}
	switch p := g.pick(20); {
	case p < 13:
		cf.Status, cf.SDK, cf.Version, cf.Ops = 206, true, 2, g.randomOps()
	case p < 15:
		cf.Status, cf.SDK, cf.Body = 200, true, []byte(`{"result":1}`)
	case p < 17:
		cf.Status, cf.SDK, cf.Body = 500, true, []byte(`{"message":"boom"}`)
	case p < 18:
		yes := true
		cf.Status, cf.SDK, cf.NoRetry = 400, true, &yes
	case p < 19:
		cf.Err = "connection refused"
	default:
		cf.Status = 200 // not the SDK
	}
	return cf
}

// next returns the records of one log entry.
func (g *gen) next() []fsm.Record {
	g.now += int64(g.pick(3000))
	if g.chance(0.02) {
		g.now += int64(g.pick(day)) // sometimes jump ahead (idempotency windows, timeouts)
	}
	n := 1
	if g.chance(0.2) {
		n += g.pick(4)
	}
	var recs []fsm.Record
	for len(recs) < n {
		if r := g.one(); r != nil {
			recs = append(recs, r)
		}
	}
	return recs
}

func (g *gen) one() fsm.Record {
	p := g.pick(100)
	switch {
	case p < 4 || !g.synced:
		g.synced = true
		return g.sync()
	case p < 25:
		return g.event()
	case p < 55:
		due, _, err := g.h.f.Due(g.now, 50, nil)
		if err != nil || len(due) == 0 {
			return nil
		}
		c := due[g.pick(len(due))]
		if c.Type != fsm.CallHTTP {
			return &fsm.TimerFired{At: g.now, RunID: c.RunID, Call: c.ID, Gen: c.Gen, Lease: g.lease()}
		}
		cc := &fsm.CallClaimed{At: g.now, RunID: c.RunID, Call: c.ID, Gen: c.Gen, LeaseUntil: g.now + 20_000,
			Node: []string{"n1", "n2"}[g.pick(2)], Boot: []string{"b1", "b2"}[g.pick(2)]}
		if g.chance(0.1) {
			cc.Gen++ // a wrong generation
		}
		return cc
	case p < 90:
		var all []fsm.Call
		for _, n := range []string{"n1", "n2"} {
			cl, err := g.h.f.ClaimedBy(n)
			if err != nil {
				g.t.Fatal(err)
			}
			all = append(all, cl...)
		}
		if len(all) == 0 {
			return nil
		}
		c := all[g.pick(len(all))]
		if g.chance(0.05) {
			// Another node takes the claim over before its lease ends.
			return &fsm.CallClaimed{At: g.now, RunID: c.RunID, Call: c.ID, Gen: c.Gen, LeaseUntil: g.now + 20_000,
				Node: []string{"n1", "n2"}[g.pick(2)], Boot: "b3", Revoke: true}
		}
		if g.chance(0.15) {
			// Steps the SDK checkpoints mid-call, sometimes of an older
			// claim or with an op that may not be checkpointed.
			ck := &fsm.StepsCheckpointed{At: g.now, RunID: c.RunID, Call: c.ID, Gen: c.Gen, Steps: g.randomOps()}
			if g.chance(0.1) {
				ck.Gen--
			}
			return ck
		}
		return g.finished(c)
	case p < 95:
		runs, err := g.h.f.RecentRuns(50)
		if err != nil || len(runs) == 0 {
			return nil
		}
		return &fsm.CancelRequested{At: g.now, RunID: runs[g.pick(len(runs))].ID, By: "cli"}
	default:
		// A timer that may fire early, for a random known call.
		due, _, _ := g.h.f.Due(g.now+20_000, 50, nil)
		if len(due) == 0 {
			return nil
		}
		c := due[g.pick(len(due))]
		return &fsm.TimerFired{At: g.now, RunID: c.RunID, Call: c.ID, Gen: c.Gen}
	}
}

// generateLog applies n entries to a generator FSM and returns them with
// the results the generator saw.
func generateLog(t *testing.T, seed int64, n int, reuseSteps bool) ([]fsm.Entry, [][]fsm.Result, *harness) {
	g := &gen{t: t, rng: rand.New(rand.NewSource(seed)), h: newHarness(t), now: t0, reuseSteps: reuseSteps}
	var entries []fsm.Entry
	var results [][]fsm.Result
	for len(entries) < n {
		recs := g.next()
		res := g.h.apply(recs...)
		entries = append(entries, fsm.Entry{Index: g.h.idx, Data: encode(t, recs...)})
		results = append(results, res)
	}
	return entries, results, g.h
}

func TestDeterministicReplay(t *testing.T) {
	for _, seed := range []int64{1, 2, 3, 42} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			entries, genResults, g := generateLog(t, seed, 600, true)
			rng := rand.New(rand.NewSource(seed * 7))

			// Sanity: the log exercises what it should.
			kinds := map[fsm.Kind]int{}
			codes := map[fsm.Code]int{}
			for i, e := range entries {
				recs, _ := fsm.DecodeEntry(e.Data)
				for j, r := range recs {
					kinds[r.Kind()]++
					codes[genResults[i][j].Code]++
				}
			}
			for _, k := range []fsm.Kind{fsm.KindAppSynced, fsm.KindEventAccepted, fsm.KindCallClaimed,
				fsm.KindCallFinished, fsm.KindTimerFired, fsm.KindCancelRequested} {
				if kinds[k] == 0 {
					t.Errorf("the generated log has no %v", k)
				}
			}
			for _, c := range []fsm.Code{fsm.OK, fsm.Duplicate, fsm.Stale, fsm.Rejected} {
				if codes[c] == 0 {
					t.Errorf("the generated log has no %v result", c)
				}
			}
			runs, _ := g.f.RecentRuns(1000)
			status := map[string]int{}
			for _, r := range runs {
				status[r.Status]++
			}
			t.Logf("kinds %v codes %v runs %v", kinds, codes, status)

			// A: random batches.
			a := newHarness(t)
			var aResults [][]fsm.Result
			for i := 0; i < len(entries); {
				k := 1 + rng.Intn(40)
				k = min(k, len(entries)-i)
				aResults = append(aResults, a.f.ApplyEntries(entries[i:i+k])...)
				i += k
			}
			// B: one entry at a time.
			b := newHarness(t)
			var bResults [][]fsm.Result
			for _, e := range entries {
				bResults = append(bResults, b.f.ApplyEntries([]fsm.Entry{e})...)
			}
			// C: one at a time to the middle, then snapshot into a fresh FSM
			// that carries on.
			c := newHarness(t)
			mid := len(entries) / 2
			for _, e := range entries[:mid] {
				c.f.ApplyEntries([]fsm.Entry{e})
			}
			snap, err := c.f.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := snap.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			snap.Release()
			// C keeps applying after the snapshot: the snapshot must not see it.
			c.f.ApplyEntries(entries[mid:])
			// The restored FSM is not fresh: it has applied another log with
			// the same function ids (and cached them), all of which the
			// snapshot must replace.
			d := newHarness(t)
			other, _, _ := generateLog(t, seed+500, 150, true)
			d.f.ApplyEntries(other)
			for i := 0; i < 4; i++ {
				d.f.Function(fmt.Sprintf("app-f%d", i))
			}
			if err := d.f.Restore(&buf); err != nil {
				t.Fatal(err)
			}
			if i, _ := d.f.Applied(); i != entries[mid-1].Index {
				t.Fatalf("restored applied index %d, want %d", i, entries[mid-1].Index)
			}
			var dResults [][]fsm.Result
			for i := mid; i < len(entries); {
				k := min(1+rng.Intn(10), len(entries)-i)
				dResults = append(dResults, d.f.ApplyEntries(entries[i:i+k])...)
				i += k
			}

			want := g.digest()
			wi, wc := g.f.Applied()
			for name, x := range map[string]*harness{"batched": a, "single": b, "snapshot-source": c, "restored": d} {
				if got := x.digest(); got != want {
					t.Errorf("%s: digest %s, want %s", name, got, want)
				}
				if i, ch := x.f.Applied(); i != wi || ch != wc {
					t.Errorf("%s: applied %d/%x, want %d/%x", name, i, ch, wi, wc)
				}
			}
			if !reflect.DeepEqual(aResults, genResults) {
				t.Error("batched results differ from the generator's")
			}
			if !reflect.DeepEqual(bResults, genResults) {
				t.Error("single-entry results differ from the generator's")
			}
			if !reflect.DeepEqual(dResults, genResults[mid:]) {
				t.Error("results after restore differ from the generator's")
			}

			// Re-applying the whole log changes nothing.
			out := b.f.ApplyEntries(entries)
			for i := range out {
				if out[i] != nil {
					t.Fatalf("re-applied entry %d returned %v", i, out[i])
				}
			}
			if b.digest() != want {
				t.Error("re-applying the log changed the digest")
			}

			// Close and reopen: the same projection.
			if err := b.f.Close(); err != nil {
				t.Fatal(err)
			}
			b.f = openFSM(t, b.dir)
			if got := b.digest(); got != want {
				t.Errorf("reopened: digest %s, want %s", got, want)
			}
			if i, ch := b.f.Applied(); i != wi || ch != wc {
				t.Errorf("reopened: applied %d/%x, want %d/%x", i, ch, wi, wc)
			}
			// And it keeps going like the others.
			more, _, _ := generateLog(t, seed+1000, 1, true)
			next := fsm.Entry{Index: wi + 1, Data: more[0].Data}
			if !reflect.DeepEqual(b.f.ApplyEntries([]fsm.Entry{next}), a.f.ApplyEntries([]fsm.Entry{next})) {
				t.Error("reopened and live FSMs answer the next entry differently")
			}
			if a.digest() != b.digest() {
				t.Error("reopened and live FSMs diverge after the next entry")
			}
		})
	}
}

// With step ids that a real SDK would produce (never reporting a memoized
// step again), no run is ever left running with nothing queued, and every
// queued call belongs to a running run.
func TestGeneratedRunsNeverStall(t *testing.T) {
	for _, seed := range []int64{1, 2, 3, 4, 5, 6, 7, 8} {
		_, _, g := generateLog(t, seed, 500, false)
		runs, err := g.f.RecentRuns(100_000)
		if err != nil {
			t.Fatal(err)
		}
		running := map[string]bool{}
		for _, r := range runs {
			if r.Status == fsm.StatusRunning {
				running[r.ID] = true
				if len(g.calls(r.ID)) == 0 {
					t.Errorf("seed %d: run %s is running with nothing queued; history %v", seed, r.ID, g.history(r.ID))
				}
			}
		}
		due, _, _ := g.f.Due(1<<62, 1<<20, nil)
		for _, c := range due {
			if !running[c.RunID] {
				t.Errorf("seed %d: call %s/%s queued for a run that is not running", seed, c.RunID, c.ID)
			}
		}
		for _, n := range []string{"n1", "n2"} {
			cl, _ := g.f.ClaimedBy(n)
			for _, c := range cl {
				if !running[c.RunID] || !c.Claimed || c.Node != n {
					t.Errorf("seed %d: bad lease %+v", seed, c)
				}
			}
		}
	}
}

package fsm_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// errorName reads the name of a stored error ({"name", "message"}).
func errorName(t *testing.T, raw []byte) (name, msg string) {
	t.Helper()
	var e struct{ Name, Message string }
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("error %s: %v", raw, err)
	}
	return e.Name, e.Message
}

// quoted returns a JSON string value of n bytes, quotes included.
func quoted(n int) string { return `"` + strings.Repeat("x", n-2) + `"` }

func (h *harness) limits(l fsm.Limits) {
	h.t.Helper()
	h.want(&fsm.LimitsSet{At: t0, Limits: l}, fsm.OK)
}

func TestStepOutputOverTheLimitFailsTheStep(t *testing.T) {
	h := newHarness(t)
	h.limits(fsm.Limits{StepOutputBytes: 100})
	run := h.startRun(3)
	h.answer(run, fsm.DiscoveryCall, t0+10, ops(stepRun("small", quoted(100)), stepRun("big", quoted(101))))
	if m := h.memo(run, "small"); m != `{"data":`+quoted(100)+`}` {
		t.Fatalf("a step at the limit was not memoized: %s", m)
	}
	var memo struct{ Error json.RawMessage }
	json.Unmarshal([]byte(h.memo(run, "big")), &memo)
	name, msg := errorName(t, memo.Error)
	if name != fsm.ErrOutputTooLarge || msg != "the step's output is 101 bytes; the limit is 100 bytes" {
		t.Fatalf("memo of the big step: %s", h.memo(run, "big"))
	}
	r := h.run(run)
	if r.Status != fsm.StatusRunning || !slices.Equal(r.Stack, []string{"small", "big"}) {
		t.Fatalf("run %s, stack %v: the app decides what a failed step does", r.Status, r.Stack)
	}
	if hist := h.history(run); !slices.Contains(hist, "step.failed") {
		t.Fatalf("history %v has no step.failed", hist)
	}
}

func TestRunResultOverTheLimitFailsTheRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer fsm.CallFinished
	}{
		{"200 body", fsm.CallFinished{Status: 200, SDK: true, Body: []byte(quoted(4096))}},
		{"RunComplete", ops(fsm.Op{ID: "done", Op: "RunComplete", Data: []byte(quoted(4096))})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.limits(fsm.Limits{StepOutputBytes: 1024})
			run := h.startRun(3)
			h.answer(run, fsm.DiscoveryCall, t0+10, tc.answer)
			r := h.run(run)
			name, msg := errorName(t, r.Error)
			if r.Status != fsm.StatusFailed || name != fsm.ErrOutputTooLarge || !strings.Contains(msg, "4096 bytes; the limit is 1 KiB") {
				t.Fatalf("run %s with error %s", r.Status, r.Error)
			}
			if len(r.Output) != 0 {
				t.Fatalf("the result was stored: %d bytes", len(r.Output))
			}
		})
	}
}

func TestRunStateOverTheLimitFailsTheRun(t *testing.T) {
	h := newHarness(t)
	h.limits(fsm.Limits{RunStateBytes: 1000})
	run := h.startRun(3)
	h.answer(run, fsm.DiscoveryCall, t0+10, ops(stepRun("a", quoted(300))))
	event := int(h.run(run).StateBytes) - len(`{"data":}`) - 300
	if event <= 0 {
		t.Fatalf("state %d does not count the event", h.run(run).StateBytes)
	}
	h.answer(run, fsm.DiscoveryCall, t0+20, ops(stepRun("b", quoted(300))))
	h.answer(run, fsm.DiscoveryCall, t0+30, ops(stepRun("c", quoted(300))))
	r := h.run(run)
	name, msg := errorName(t, r.Error)
	if r.Status != fsm.StatusFailed || name != fsm.ErrStateOverflowed {
		t.Fatalf("run %s with error %s, state %d", r.Status, r.Error, r.StateBytes)
	}
	want := fmt.Sprintf("would take %d bytes", event+3*(300+len(`{"data":}`)))
	if !strings.Contains(msg, "state size limit of 1000 bytes") || !strings.Contains(msg, want) {
		t.Fatalf("message %q, want the limit and %q", msg, want)
	}
	if m := h.memo(run, "c"); m != "<nil>" || !slices.Equal(r.Stack, []string{"a", "b"}) {
		t.Fatalf("the step over the limit was memoized: %s, stack %v", m, r.Stack)
	}
	if hist := h.history(run); hist[len(hist)-1] != "run.failed" {
		t.Fatalf("history ends with %v", hist[len(hist)-1])
	}
}

func TestStepCountOverTheLimitFailsTheRun(t *testing.T) {
	h := newHarness(t)
	h.limits(fsm.Limits{StepsPerRun: 2})
	run := h.startRun(3)
	for i, id := range []string{"a", "b", "c"} {
		h.answer(run, fsm.DiscoveryCall, t0+10*int64(i+1), ops(stepRun(id, "1")))
	}
	r := h.run(run)
	name, msg := errorName(t, r.Error)
	if r.Status != fsm.StatusFailed || name != fsm.ErrFunctionOverflowed || msg != "The function run exceeded the step limit of 2 steps." {
		t.Fatalf("run %s with error %s", r.Status, r.Error)
	}
	if !slices.Equal(r.Stack, []string{"a", "b"}) {
		t.Fatalf("stack %v", r.Stack)
	}
}

// Events too large for one run (a batch, say) fail it before any call.
func TestEventsOverTheStateLimitFailTheRunAtItsFirstClaim(t *testing.T) {
	h := newHarness(t)
	h.limits(fsm.Limits{RunStateBytes: 20})
	run := h.startRun(3)
	c := h.mustCall(run, fsm.DiscoveryCall)
	h.want(&fsm.CallClaimed{At: t0 + 10, RunID: run, Call: c.ID, Gen: c.Gen, LeaseUntil: t0 + 30_000, Node: "n1", Boot: "b1"}, fsm.Rejected)
	r := h.run(run)
	if name, _ := errorName(t, r.Error); r.Status != fsm.StatusFailed || name != fsm.ErrStateOverflowed {
		t.Fatalf("run %s with error %s", r.Status, r.Error)
	}
	if got := h.calls(run); len(got) != 0 {
		t.Fatalf("calls left: %v", got)
	}
}

// Limits come from the log: a replay enforces the same ones, whatever the
// replaying node was started with.
func TestLimitsAreRecorded(t *testing.T) {
	live := openFSM(t, t.TempDir())
	defer live.Close()
	if l, _ := live.Limits(); l != (fsm.Limits{}) {
		t.Fatalf("limits before any LimitsSet: %+v", l)
	}
	var log []fsm.Entry
	apply := func(recs ...fsm.Record) []fsm.Result {
		log = append(log, fsm.Entry{Index: uint64(len(log) + 1), Data: encode(t, recs...)})
		return live.ApplyEntries(log[len(log)-1:])[0]
	}
	want := fsm.Limits{StepOutputBytes: 10, RunStateBytes: 2000, StepsPerRun: 3}
	apply(&fsm.LimitsSet{At: t0, Limits: want})
	apply(syncApp(t0, "app", fnDef("app-fn", "ev/go", 0)))
	run := apply(event(t0, "01EVENT0000000000000000000", "ev/go"))[0].Runs[0]
	claim := apply(&fsm.CallClaimed{At: t0 + 10, RunID: run, Call: fsm.DiscoveryCall, Gen: 0, LeaseUntil: t0 + 30_000, Node: "n1", Boot: "b1"})[0]
	answer := ops(stepRun("big", quoted(11)))
	answer.At, answer.RunID, answer.Call, answer.Gen = t0+11, run, fsm.DiscoveryCall, claim.Gen
	apply(&answer)
	if l, _ := live.Limits(); l != want {
		t.Fatalf("limits %+v, want %+v", l, want)
	}
	if m, _ := live.Memo(run, "big"); !strings.Contains(string(m), fsm.ErrOutputTooLarge) {
		t.Fatalf("memo %s", m)
	}

	replay := openFSM(t, t.TempDir())
	defer replay.Close()
	replay.ApplyEntries(log)
	a, _ := live.StateDigest()
	b, _ := replay.StateDigest()
	if a != b {
		t.Fatalf("replay digest %s, live %s", b, a)
	}
}

func TestScreenAnswer(t *testing.T) {
	l := fsm.Limits{StepOutputBytes: 10}
	big := []byte(quoted(11))
	r := &fsm.CallFinished{Status: 206, SDK: true, Ops: []fsm.Op{
		{ID: "ok", Op: "StepRun", Data: []byte(quoted(10))},
		{ID: "run", Op: "StepRun", Data: big},
		{ID: "err", Op: "StepError", Error: big},
		{ID: "wait", Op: "WaitForEvent", Opts: big},
	}}
	fsm.ScreenAnswer(r, l)
	want := []string{"StepRun", "StepFailed", "StepError", "StepFailed"}
	for i, op := range r.Ops {
		if op.Op != want[i] {
			t.Errorf("op %s became %s, want %s", op.ID, op.Op, want[i])
		}
		if i > 0 && (op.Data != nil || op.Opts != nil || !strings.Contains(string(op.Error), fsm.ErrOutputTooLarge)) {
			t.Errorf("op %s was not screened: %+v", op.ID, op)
		}
	}
	errBody := &fsm.CallFinished{Status: 500, SDK: true, Body: big}
	fsm.ScreenAnswer(errBody, l)
	if len(errBody.Fail) != 0 || !strings.Contains(string(errBody.Body), fsm.ErrOutputTooLarge) {
		t.Errorf("an error body over the limit: %+v", errBody)
	}
	unlimited := &fsm.CallFinished{Status: 200, SDK: true, Body: big}
	fsm.ScreenAnswer(unlimited, fsm.Limits{})
	if string(unlimited.Body) != string(big) {
		t.Errorf("a zero limit screened the answer")
	}
}

// Refusal tells from the projection which answers Apply would certainly
// refuse, so that they need not be written.
func TestRefusal(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	gen := h.claim(run, fsm.DiscoveryCall, t0+10)
	answer := func(call string, gen uint32) *fsm.CallFinished {
		return &fsm.CallFinished{At: t0 + 11, RunID: run, Call: call, Gen: gen, Status: 200, SDK: true}
	}
	for _, tc := range []struct {
		name     string
		cf       *fsm.CallFinished
		complete bool
		refused  bool
		code     fsm.Code
	}{
		{"the current claim", answer(fsm.DiscoveryCall, gen), true, false, fsm.OK},
		{"an older claim", answer(fsm.DiscoveryCall, gen-1), false, true, fsm.Stale},
		{"a claim not seen yet", answer(fsm.DiscoveryCall, gen+1), true, false, fsm.OK},
		{"a call not seen yet", answer("other", 1), false, false, fsm.OK},
		{"a call that is gone", answer("other", 1), true, true, fsm.Stale},
		{"a run not seen yet", &fsm.CallFinished{RunID: "01NORUN", Call: "step", Gen: 1}, false, false, fsm.OK},
		{"a run that does not exist", &fsm.CallFinished{RunID: "01NORUN", Call: "step", Gen: 1}, true, true, fsm.NotFound},
	} {
		res, refused, err := h.f.Refusal(tc.cf, tc.complete)
		if err != nil || refused != tc.refused || (refused && res.Code != tc.code) {
			t.Errorf("%s: refused %v (%v %s), want %v (%v)", tc.name, refused, res.Code, res.Msg, tc.refused, tc.code)
		}
	}
	failed := answer(fsm.DiscoveryCall, gen)
	failed.Status = 500
	h.want(failed, fsm.OK) // retried later: the call waits unclaimed at the same generation
	if res, refused, _ := h.f.Refusal(answer(fsm.DiscoveryCall, gen), false); !refused || res.Code != fsm.Stale {
		t.Errorf("a second answer to an answered claim: %v %v", refused, res)
	}
	h.want(&fsm.CancelRequested{At: t0 + 20, RunID: run}, fsm.OK)
	if res, refused, _ := h.f.Refusal(answer(fsm.DiscoveryCall, gen), false); !refused || res.Code != fsm.Rejected {
		t.Errorf("an answer for a cancelled run: %v %v", refused, res)
	}
}

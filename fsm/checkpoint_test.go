package fsm_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

func checkpoint(run string, gen uint32, at int64, steps ...fsm.Op) *fsm.StepsCheckpointed {
	return &fsm.StepsCheckpointed{At: at, RunID: run, Call: fsm.DiscoveryCall, Gen: gen, Steps: steps}
}

// Checkpointed steps are memoized at once, while the call stays claimed;
// the call's final 206 [RunComplete] completes the run.
func TestStepsCheckpointedMemoizeAndRunComplete(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	gen := h.claim(run, fsm.DiscoveryCall, t0+10)
	h.want(checkpoint(run, gen, t0+11, stepRun("s1", `{"a":1}`)), fsm.OK)
	h.want(checkpoint(run, gen, t0+12, stepRun("s2", `2`)), fsm.OK)
	if m := h.memo(run, "s2"); m != `{"data":2}` {
		t.Fatalf("memo s2 = %s", m)
	}
	if r := h.run(run); !reflect.DeepEqual(r.Stack, []string{"s1", "s2"}) || r.Status != fsm.StatusRunning {
		t.Fatalf("run %+v", r)
	}
	if c := h.mustCall(run, fsm.DiscoveryCall); !c.Claimed || c.Gen != gen {
		t.Fatalf("call after checkpoints %+v, want still claimed at gen %d", c, gen)
	}
	// A checkpoint the SDK retried: the first value stays.
	h.want(checkpoint(run, gen, t0+13, stepRun("s1", `{"a":9}`)), fsm.OK)
	if m := h.memo(run, "s1"); m != `{"data":{"a":1}}` {
		t.Fatalf("memo s1 after a repeat = %s", m)
	}
	if hist := h.history(run); !slices.Contains(hist, fsm.HistStepDuplicate) {
		t.Fatalf("history %v has no duplicate", hist)
	}
	res := h.apply1(&fsm.CallFinished{At: t0 + 20, RunID: run, Call: fsm.DiscoveryCall, Gen: gen, Status: 206, SDK: true, Version: 2,
		Ops: []fsm.Op{{ID: "0737c22d3bfae812339732d14d8c7dbd6dc4e09c", Op: fsm.OpRunComplete, Data: []byte(`{"done":true}`)}}})
	if res.Code != fsm.OK {
		t.Fatalf("final answer: %+v", res)
	}
	r := h.run(run)
	if r.Status != fsm.StatusCompleted || string(r.Output) != `{"done":true}` {
		t.Fatalf("run %s output %s", r.Status, r.Output)
	}
	if got := h.calls(run); len(got) != 0 {
		t.Fatalf("calls left %v", got)
	}
	// The run is over: a late checkpoint is stale, not applied.
	h.want(checkpoint(run, gen, t0+21, stepRun("s3", `3`)), fsm.Rejected)
}

// A checkpoint fenced by an older claim is stale; so is the superseded
// dispatch's final answer (the SDK's StaleDispatchError, 400 no-retry):
// it must not fail the run.
func TestStepsCheckpointedStaleGeneration(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	old := h.claim(run, fsm.DiscoveryCall, t0+10)
	// The lease ran out; another dispatch claims the call.
	cur := h.claim(run, fsm.DiscoveryCall, t0+40_000)
	res := h.want(checkpoint(run, old, t0+40_001, stepRun("s1", `1`)), fsm.Stale)
	if res.Msg != "superseded claim" {
		t.Fatalf("msg %q", res.Msg)
	}
	if r := h.run(run); len(r.Stack) != 0 {
		t.Fatalf("stale checkpoint memoized %v", r.Stack)
	}
	no := true
	h.want(&fsm.CallFinished{At: t0 + 40_002, RunID: run, Call: fsm.DiscoveryCall, Gen: old, Status: 400, SDK: true, NoRetry: &no,
		Body: []byte(`{"name":"StaleDispatchError","message":"Stale dispatch: checkpoint returned 409"}`)}, fsm.Stale)
	if r := h.run(run); r.Status != fsm.StatusRunning {
		t.Fatalf("a stale dispatch's answer ended the run: %s", r.Status)
	}
	h.want(checkpoint(run, cur, t0+40_003, stepRun("s1", `1`)), fsm.OK)
	// A call not claimed (answered, queued again) takes no checkpoint.
	h.want(&fsm.CallFinished{At: t0 + 40_004, RunID: run, Call: fsm.DiscoveryCall, Gen: cur, Status: 206, SDK: true,
		Ops: []fsm.Op{stepRun("s2", `2`)}}, fsm.OK)
	c := h.mustCall(run, fsm.DiscoveryCall)
	h.want(checkpoint(run, c.Gen, t0+40_005, stepRun("s3", `3`)), fsm.Stale)
}

// Only finished step.run ops may be checkpointed: an async op refuses the
// whole record, nothing of it is memoized.
func TestStepsCheckpointedRefusesAsyncOps(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	gen := h.claim(run, fsm.DiscoveryCall, t0+10)
	for _, op := range []fsm.Op{
		{ID: "z", Op: fsm.OpSleep, Name: "1s"},
		{ID: "z", Op: fsm.OpWaitForEvent, Name: "ev/x"},
		{ID: "z", Op: fsm.OpStepPlanned},
		{ID: "z", Op: fsm.OpStepError, Error: []byte(`{}`)},
		{ID: "z", Op: fsm.OpRunComplete},
		{Op: fsm.OpStepRun},
	} {
		h.want(checkpoint(run, gen, t0+11, stepRun("s1", `1`), op), fsm.Rejected)
	}
	h.want(checkpoint(run, gen, t0+11), fsm.Rejected) // no steps
	if r := h.run(run); len(r.Stack) != 0 || r.Status != fsm.StatusRunning {
		t.Fatalf("refused checkpoints changed the run: %+v", r)
	}
	if got := h.calls(run); !reflect.DeepEqual(got, []string{fsm.DiscoveryCall}) {
		t.Fatalf("calls %v", got)
	}
}

// A good checkpoint starts the call's attempts again: a step error after
// it is the first failure of what follows.
func TestStepsCheckpointedResetsAttempt(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	h.answer(run, fsm.DiscoveryCall, t0+10, fsm.CallFinished{Status: 500, SDK: true})
	c := h.mustCall(run, fsm.DiscoveryCall)
	if c.Attempt != 1 {
		t.Fatalf("attempt after an error = %d", c.Attempt)
	}
	gen := h.claim(run, fsm.DiscoveryCall, c.Due)
	h.want(checkpoint(run, gen, c.Due+1, stepRun("s1", `1`)), fsm.OK)
	if c := h.mustCall(run, fsm.DiscoveryCall); c.Attempt != 0 || !c.Claimed || c.Gen != gen {
		t.Fatalf("call after checkpoint %+v", c)
	}
}

// A checkpointed value over the step output limit is refused (the SDK
// then sends it in its answer, where it is screened).
func TestStepsCheckpointedOutputLimit(t *testing.T) {
	h := newHarness(t)
	h.want(&fsm.LimitsSet{At: t0, Limits: fsm.Limits{StepOutputBytes: 8}}, fsm.OK)
	run := h.startRun(3)
	gen := h.claim(run, fsm.DiscoveryCall, t0+10)
	h.want(checkpoint(run, gen, t0+11, stepRun("s1", `"0123456789"`)), fsm.Rejected)
	h.want(checkpoint(run, gen, t0+12, stepRun("s1", `1`)), fsm.OK)
}

func TestStepsCheckpointedNeedsFormat3(t *testing.T) {
	if err := fsm.Downgrade(&fsm.StepsCheckpointed{}, 2); !errors.Is(err, fsm.ErrFormat) {
		t.Fatalf("at format 2: %v", err)
	}
	if err := fsm.Downgrade(&fsm.StepsCheckpointed{}, 3); err != nil {
		t.Fatalf("at format 3: %v", err)
	}
}

// The API's check before proposing agrees with Apply.
func TestCheckpointRefusal(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	if _, refused, _ := h.f.CheckpointRefusal(checkpoint(run, 0, t0, stepRun("s1", `1`)), ""); !refused {
		t.Fatal("a checkpoint of an unclaimed call passed")
	}
	gen := h.claim(run, fsm.DiscoveryCall, t0+10)
	if res, refused, err := h.f.CheckpointRefusal(checkpoint(run, gen, t0+11, stepRun("s1", `1`)), ""); refused || err != nil {
		t.Fatalf("a good checkpoint refused: %+v %v", res, err)
	}
	if res, _, _ := h.f.CheckpointRefusal(checkpoint(run, gen-1, t0+11, stepRun("s1", `1`)), ""); res.Code != fsm.Stale {
		t.Fatalf("old generation: %+v", res)
	}
	if res, _, _ := h.f.CheckpointRefusal(checkpoint(run, gen, t0+11, fsm.Op{ID: "x", Op: fsm.OpSleep}), ""); res.Code != fsm.Rejected {
		t.Fatalf("sleep: %+v", res)
	}
	if res, refused, _ := h.f.CheckpointRefusal(checkpoint("01NOPE", 1, t0, stepRun("s1", `1`)), ""); !refused || res.Code != fsm.NotFound {
		t.Fatalf("unknown run: %+v", res)
	}
}

func TestQueueItemID(t *testing.T) {
	for _, c := range []struct {
		run, call string
		gen       uint32
	}{{"01RUN", fsm.DiscoveryCall, 1}, {"01RUN", "a:b", 4294967295}} {
		run, call, gen, ok := fsm.ParseQueueItemID(fsm.QueueItemID(c.run, c.call, c.gen))
		if !ok || run != c.run || call != c.call || gen != c.gen {
			t.Errorf("%+v: got %q %q %d %v", c, run, call, gen, ok)
		}
	}
	for _, bad := range []string{"", "step:1", ":step:1", "r::1", "r:step:", "r:step:x", "r:step:4294967296", "cXVldWUtc2hhcmQ6am9iLWlk"} {
		if _, _, _, ok := fsm.ParseQueueItemID(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	if id := fsm.FunctionUUID("tsapp-import-contacts"); len(id) != 36 || id[14] != '5' || id != fsm.FunctionUUID("tsapp-import-contacts") || id == fsm.FunctionUUID("tsapp-other") {
		t.Errorf("FunctionUUID %q", id)
	}
}

package fsm_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

const epRun = "01M8G1M72VTW4HRGZ67MQYCNEP"

func epStart(at int64, steps ...fsm.Op) *fsm.EndpointStarted {
	return &fsm.EndpointStarted{At: at, RunID: epRun, AppID: "http://127.0.0.1:13939", FnID: "GET /api/durable",
		URL: "http://127.0.0.1:13939/api/durable", Method: "GET", Retries: 2, EventID: "ev-" + epRun,
		JSON:  []byte(`{"name":"inngest/http.request","data":{"method":"GET","path":"/api/durable"},"id":"ev-` + epRun + `"}`),
		Steps: steps}
}

// The sync shape: the run, its function and app appear with the first
// checkpoint; steps are memoized as reported; RunComplete stores the
// handler's response; nothing is ever queued for the engine.
func TestEndpointSyncRun(t *testing.T) {
	h := newHarness(t)
	res := h.want(epStart(t0, stepRun("a", `{"id":"42"}`)), fsm.OK)
	if !slices.Equal(res.Runs, []string{epRun}) {
		t.Fatalf("runs = %v", res.Runs)
	}
	run := h.run(epRun)
	if run.Endpoint != "GET" || run.FnID != "GET /api/durable" || run.Status != fsm.StatusRunning {
		t.Fatalf("run = %+v", run)
	}
	if got := h.calls(epRun); len(got) != 0 {
		t.Fatalf("calls queued while the SDK owns the run: %v", got)
	}
	fn, _ := h.f.Function("GET /api/durable")
	if fn == nil || fn.AppID != "http://127.0.0.1:13939" || fn.URL != "http://127.0.0.1:13939/api/durable" || fn.MaxAttempts() != 3 {
		t.Fatalf("function = %+v", fn)
	}
	if m := h.memo(epRun, "a"); m != `{"data":{"id":"42"}}` {
		t.Fatalf("memo a = %s", m)
	}
	h.want(epStart(t0+1), fsm.Duplicate)
	h.want(&fsm.EndpointCheckpointed{At: t0 + 2, RunID: epRun, Steps: []fsm.Op{stepRun("b", `"hello"`)}}, fsm.OK)
	out := `{"status":200,"headers":{"content-type":"application/json"},"body":"{\"a\":1}","version":2}`
	h.want(&fsm.EndpointCheckpointed{At: t0 + 3, RunID: epRun, Steps: []fsm.Op{
		{ID: "0737c22d3bfae812339732d14d8c7dbd6dc4e09c", Op: fsm.OpRunComplete, Data: []byte(out)}}}, fsm.OK)
	run = h.run(epRun)
	if run.Status != fsm.StatusCompleted || string(run.Output) != out || !slices.Equal(run.Stack, []string{"a", "b"}) {
		t.Fatalf("run = %+v", run)
	}
	h.want(&fsm.EndpointCheckpointed{At: t0 + 4, RunID: epRun, Steps: []fsm.Op{stepRun("c", `1`)}}, fsm.Rejected)
	h.want(&fsm.EndpointCheckpointed{At: t0 + 4, RunID: "nope", Steps: []fsm.Op{stepRun("c", `1`)}}, fsm.NotFound)
	want := []string{fsm.HistRunScheduled, fsm.HistStepCompleted, fsm.HistStepCompleted, fsm.HistRunEnded(fsm.StatusCompleted),
		fsm.HistCheckpointRefused}
	if got := h.history(epRun); !slices.Equal(got, want) {
		t.Fatalf("history = %v, want %v", got, want)
	}
}

// A sleep hands the run to the engine: the timer is queued, and when it
// fires the engine re-enters the endpoint (a discovery call); a checkpoint
// is refused from then on, and the re-entry's answer completes the run.
func TestEndpointSleepHandsOver(t *testing.T) {
	h := newHarness(t)
	h.want(epStart(t0, stepRun("a", `1`)), fsm.OK)
	h.want(&fsm.EndpointCheckpointed{At: t0 + 1, RunID: epRun, Steps: []fsm.Op{
		{ID: "zz", Op: fsm.OpSleep, Name: "10s", DisplayName: "pause"}}}, fsm.OK)
	c := h.mustCall(epRun, "zz")
	if c.Type != fsm.CallSleep || c.Due != t0+1+10_000 {
		t.Fatalf("sleep = %+v", c)
	}
	h.want(&fsm.EndpointCheckpointed{At: t0 + 2, RunID: epRun, Steps: []fsm.Op{stepRun("b", `1`)}}, fsm.Rejected)
	h.want(&fsm.TimerFired{At: c.Due, RunID: epRun, Call: "zz", Gen: c.Gen}, fsm.OK)
	if m := h.memo(epRun, "zz"); m != "null" {
		t.Fatalf("sleep memo = %s", m)
	}
	h.mustCall(epRun, fsm.DiscoveryCall)
	out := `{"status":200,"headers":{},"body":"\"ok\"","version":2}`
	h.answer(epRun, fsm.DiscoveryCall, c.Due+5, ops(fsm.Op{ID: "c0", Op: fsm.OpRunComplete, Data: []byte(out)}))
	if run := h.run(epRun); run.Status != fsm.StatusCompleted || string(run.Output) != out {
		t.Fatalf("run = %+v", run)
	}
}

// A step error is retried by the engine (the SDK leaves the count to the
// server) until the function's attempts run out; then the step failed.
func TestEndpointStepErrorRetriesOnTheEngine(t *testing.T) {
	h := newHarness(t)
	h.want(epStart(t0, stepRun("a", `1`)), fsm.OK)
	stepErr := fsm.Op{ID: "b", Op: fsm.OpStepError, DisplayName: "b", Error: []byte(`{"name":"Error","message":"down"}`)}
	h.want(&fsm.EndpointCheckpointed{At: t0 + 1, RunID: epRun, Steps: []fsm.Op{stepErr}}, fsm.OK)
	c := h.mustCall(epRun, fsm.DiscoveryCall)
	if c.Attempt != 1 || c.Due <= t0+1 {
		t.Fatalf("retry = %+v", c)
	}
	h.answer(epRun, fsm.DiscoveryCall, c.Due, ops(stepErr)) // attempt 1 of 3
	c = h.mustCall(epRun, fsm.DiscoveryCall)
	h.answer(epRun, fsm.DiscoveryCall, c.Due, ops(stepErr)) // attempt 2: the last
	if m := h.memo(epRun, "b"); m != `{"error":{"name":"Error","message":"down"}}` {
		t.Fatalf("memo b = %s", m)
	}
	if c := h.mustCall(epRun, fsm.DiscoveryCall); c.Attempt != 0 {
		t.Fatalf("after failure = %+v", c)
	}
}

// maxRuntime: a DiscoveryRequest hands the run over as a discovery call.
func TestEndpointMaxRuntimeHandsOver(t *testing.T) {
	h := newHarness(t)
	h.want(epStart(t0, stepRun("a", `1`)), fsm.OK)
	h.want(&fsm.EndpointCheckpointed{At: t0 + 1, RunID: epRun, Steps: []fsm.Op{stepRun("b", `2`),
		{ID: "d", Op: fsm.OpDiscoveryRequest}}}, fsm.OK)
	if got := h.calls(epRun); !slices.Equal(got, []string{fsm.DiscoveryCall}) {
		t.Fatalf("calls = %v", got)
	}
}

// A function id owned by an app of another domain is refused.
func TestEndpointFunctionOfAnotherApp(t *testing.T) {
	h := newHarness(t)
	h.want(syncApp(t0, "app", fnDef("GET /api/durable", "ev/x", 0)), fsm.OK)
	h.want(epStart(t0+1), fsm.Rejected)
	if r, _ := h.f.Run(epRun); r != nil {
		t.Fatalf("run created: %+v", r)
	}
}

// The handler's response is kept once, before or after the run ends.
func TestEndpointResponded(t *testing.T) {
	h := newHarness(t)
	h.want(&fsm.EndpointResponded{At: t0, RunID: epRun, Response: []byte(`{}`)}, fsm.NotFound)
	h.want(epStart(t0, stepRun("a", `1`)), fsm.OK)
	h.want(&fsm.EndpointResponded{At: t0 + 1, RunID: epRun, Response: []byte(`{"status":201}`)}, fsm.OK)
	h.want(&fsm.EndpointResponded{At: t0 + 2, RunID: epRun, Response: []byte(`{"status":500}`)}, fsm.Duplicate)
	if r := h.run(epRun); string(r.Response) != `{"status":201}` || r.Status != fsm.StatusRunning {
		t.Fatalf("run = %+v", r)
	}
	h.limits(fsm.Limits{StepOutputBytes: 10})
	h.want(&fsm.EndpointStarted{At: t0 + 3, RunID: "01M8G1M72VTW4HRGZ67MQYCNEZ", AppID: "http://127.0.0.1:13939",
		FnID: "GET /api/durable", URL: "http://127.0.0.1:13939/api/durable", Method: "GET", EventID: "e2", JSON: []byte(`{}`)}, fsm.OK)
	h.want(&fsm.EndpointResponded{At: t0 + 4, RunID: "01M8G1M72VTW4HRGZ67MQYCNEZ", Response: []byte(`{"status":201,"body":"long"}`)}, fsm.Rejected)
}

// A rerun of an endpoint run is an endpoint run: the engine re-enters the
// endpoint for it.
func TestEndpointRerun(t *testing.T) {
	h := newHarness(t)
	h.want(epStart(t0, stepRun("a", `1`)), fsm.OK)
	h.want(&fsm.EndpointCheckpointed{At: t0 + 1, RunID: epRun, Steps: []fsm.Op{
		{ID: "c0", Op: fsm.OpRunComplete, Data: []byte(`{"status":200}`)}}}, fsm.OK)
	const rerun = "01M8G1M72VTW4HRGZ67MQYCNEQ"
	h.want(&fsm.RunRerun{At: t0 + 2, RunID: rerun, From: epRun}, fsm.OK)
	if r := h.run(rerun); r.Endpoint != "GET" {
		t.Fatalf("rerun = %+v", r)
	}
	h.mustCall(rerun, fsm.DiscoveryCall)
}

// A checkpointed value over the step output limit fails its step, and a
// response over it the run, as in an answer.
func TestEndpointOutputLimit(t *testing.T) {
	h := newHarness(t)
	h.limits(fsm.Limits{StepOutputBytes: 100})
	big := `"` + strings.Repeat("x", 200) + `"`
	h.want(epStart(t0, stepRun("a", big)), fsm.OK)
	if m := h.memo(epRun, "a"); !strings.HasPrefix(m, `{"error":`) || !strings.Contains(m, fsm.ErrOutputTooLarge) {
		t.Fatalf("memo a = %s", m)
	}
	h.mustCall(epRun, fsm.DiscoveryCall) // the failed step hands the run over
}

func TestEndpointRecordsNeedFormat3(t *testing.T) {
	for _, r := range []fsm.Record{&fsm.EndpointStarted{}, &fsm.EndpointCheckpointed{}, &fsm.EndpointResponded{}} {
		if err := fsm.Downgrade(r, 2); !errors.Is(err, fsm.ErrFormat) {
			t.Errorf("%s at format 2: %v", r.Kind(), err)
		}
	}
}

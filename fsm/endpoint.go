package fsm

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Durable endpoints (protocol §9.2). An endpoint is an ordinary HTTP handler
// of the user's app whose body is a workflow of steps. The SDK runs it in the
// end user's request and reports each finished step here, so the engine holds
// a journal it can resume from; while the SDK owns the run no call is queued.
// When the handler meets an async op (a sleep, a wait, a retriable step
// error) or runs past its maxRuntime, it reports the op and the engine owns
// the run from then on: its calls re-enter the endpoint with the original
// request (executor), and the answers are CallFinished records as for any run.

// EventHTTPRequest is the event the SDK builds from the end user's request.
const EventHTTPRequest = "inngest/http.request"

// EndpointStarted creates a durable endpoint's run (POST /v1/checkpoint),
// with the steps the handler already finished. The function and app are
// created as the official server does: the SDK registers nothing for an
// endpoint, so the first request is its registration.
type EndpointStarted struct {
	At    int64  `msgpack:"at"`
	RunID string `msgpack:"run"` // minted by the SDK (a ULID)
	AppID string `msgpack:"app"` // the request's domain ("http://host:port")
	FnID  string `msgpack:"fn"`  // data.fn, or "<METHOD> <path>"
	// URL is domain + path: where re-entries go, with the original query.
	URL    string `msgpack:"url"`
	Method string `msgpack:"m"`
	// Retries is the SDK's retries option (attempts = Retries + 1).
	Retries int    `msgpack:"ret"`
	EventID string `msgpack:"ev"`
	JSON    []byte `msgpack:"json"` // the inngest/http.request event, as stored
	Steps   []Op   `msgpack:"steps,omitempty"`
	By      string `msgpack:"by,omitempty"` // who asked (see By on EventAccepted)
}

// EndpointCheckpointed reports what a durable endpoint did since its last
// checkpoint (POST /v1/checkpoint/{runId}/steps): finished steps, the
// handler's response (RunComplete), or the async ops the engine now owns.
type EndpointCheckpointed struct {
	At    int64  `msgpack:"at"`
	RunID string `msgpack:"run"`
	Steps []Op   `msgpack:"steps"`
	// Jitter spreads the backoff of a step error the engine retries.
	Jitter uint32 `msgpack:"jit,omitempty"`
	By     string `msgpack:"by,omitempty"`
}

// EndpointResponded is the response a durable endpoint's handler produced
// when it ran on the engine, as its caller would have had it. The SDK's
// RunComplete of a re-entry carries the body re-encoded under its own
// status and content type only; the exact response comes apart, in the
// stream the SDK tees to the server (POST /v1/realtime/publish/tee), and
// the run-output endpoint serves it.
type EndpointResponded struct {
	At    int64  `msgpack:"at"`
	RunID string `msgpack:"run"`
	// Response is {"status", "headers", "body"}: the body as a string.
	Response []byte `msgpack:"resp"`
	By       string `msgpack:"by,omitempty"`
}

func (*EndpointResponded) Kind() Kind    { return KindEndpointResponded }
func (r *EndpointResponded) Time() int64 { return r.At }
func (*EndpointStarted) Kind() Kind      { return KindEndpointStarted }
func (*EndpointCheckpointed) Kind() Kind { return KindEndpointCheckpointed }
func (r *EndpointStarted) Time() int64   { return r.At }
func (r *EndpointCheckpointed) Time() int64 {
	return r.At
}

// EndpointFunctionID is the id the official server gives an endpoint's
// function: the SDK's functionId option, or the method and path.
func EndpointFunctionID(fn, method, path string) string {
	if fn != "" {
		return fn
	}
	return method + " " + path
}

// EndpointRefusal says why an endpoint's run may not start ("" if it may):
// its function id belongs to an app that is not this endpoint's domain.
// Apply decides with it; the API asks first so a refused request is not logged.
func EndpointRefusal(fn *Function, appID string) string {
	if fn != nil && fn.AppID != appID {
		return fmt.Sprintf("function %q belongs to app %q", fn.ID, fn.AppID)
	}
	return ""
}

// CheckpointRefusal says why a checkpoint of run may not be applied ("" if
// it may): only a running endpoint run that the SDK still owns (nothing
// queued) takes checkpoints; once the engine owns it, answers to its own
// calls are the only reports.
func CheckpointRefusal(run *Run, queued int) string {
	switch {
	case run == nil:
		return "no such run"
	case run.Endpoint == "":
		return "run is not a durable endpoint run"
	case run.Done():
		return "run is already " + run.Status
	case queued > 0:
		return "the engine owns this run"
	}
	return ""
}

// applyEndpointStarted creates the app, function and run of a durable
// endpoint, then applies the steps the request carried.
//   - A run id already stored is a Duplicate (the SDK retries a checkpoint).
//   - A function id owned by another app is Rejected.
func (t *txn) applyEndpointStarted(r *EndpointStarted) Result {
	if t.run(r.RunID) != nil {
		return Result{Code: Duplicate, ID: r.RunID, Msg: "run already exists"}
	}
	old := t.functionOrNil(r.FnID)
	if msg := EndpointRefusal(old, r.AppID); msg != "" {
		return Result{Code: Rejected, ID: r.RunID, Msg: msg}
	}
	var app App
	if !t.get(keyApp(r.AppID), &app) {
		app = App{ID: r.AppID, URL: r.AppID, SyncedAt: r.At, SyncedBy: r.By}
	}
	if old == nil {
		app.Functions = append(app.Functions, r.FnID)
	}
	t.put(keyApp(r.AppID), &app)
	cfg, _ := json.Marshal(map[string]any{"endpoint": map[string]string{"method": r.Method}})
	fn := &Function{FunctionDef: FunctionDef{ID: r.FnID, Name: r.FnID, URL: r.URL, Retries: r.Retries, Config: cfg},
		AppID: r.AppID}
	t.put(keyFn(r.FnID), fn)

	if !t.has(keyEvent(r.EventID)) {
		t.putRaw(keyEvent(r.EventID), r.JSON)
		if r.By != "" {
			t.put(keyEventOrigin(r.EventID), &EventOrigin{By: r.By})
		}
	}
	run := t.newRun(fn, r.RunID, r.At, []eventRef{{r.EventID, EventHTTPRequest, r.JSON}}, "", r.At, "")
	// The SDK is running the handler: the engine calls nothing until the
	// handler hands the run over.
	c := &Call{}
	if t.get(keyCall(run.ID, DiscoveryCall), c) {
		t.delCall(c)
	}
	run.Endpoint, run.StartedAt, run.Version = r.Method, r.At, 2
	run.StateBytes += int64(len(r.JSON))
	t.checkpoint(run, fn, r.At, 0, r.Steps)
	return Result{Code: OK, ID: r.RunID, Runs: []string{r.RunID}}
}

// applyEndpointCheckpointed applies a later checkpoint of an endpoint run.
func (t *txn) applyEndpointCheckpointed(r *EndpointCheckpointed) Result {
	run := t.run(r.RunID)
	var queued int
	if run != nil {
		queued = t.countCalls(run.ID)
	}
	if msg := CheckpointRefusal(run, queued); msg != "" {
		if run != nil {
			t.history(run, HistoryEntry{At: r.At, Type: HistCheckpointRefused, Detail: msg})
			return Result{Code: Rejected, ID: r.RunID, Msg: msg}
		}
		return Result{Code: NotFound, ID: r.RunID, Msg: msg}
	}
	t.checkpoint(run, t.function(run.FnID), r.At, r.Jitter, r.Steps)
	return Result{Code: OK, ID: r.RunID}
}

// checkpoint applies what a handler reported: finished steps are memoized
// at once, RunComplete ends the run with the handler's response
// ({status, headers, body}), DiscoveryRequest (maxRuntime) hands the run to
// the engine as a discovery call, and the other ops are handled exactly as
// in an answer to a call (processOps), which hands the run over too.
func (t *txn) checkpoint(run *Run, fn *Function, at int64, jitter uint32, ops []Op) {
	// A value over the step output limit fails its step (or the run, for
	// the response), as in an answer.
	screen := &CallFinished{Ops: slices.Clone(ops)}
	if ScreenAnswer(screen, t.limits()) {
		if len(screen.Fail) > 0 {
			t.finish(run, StatusFailed, at, nil, screen.Fail)
			return
		}
		ops = screen.Ops
	}
	var async []Op
	handover := false
	for _, op := range ops {
		h := HistoryEntry{At: at, Name: op.DisplayName}
		switch op.Op {
		case OpStepRun, OpStep:
			if _, ok := t.memoizeStep(run, op, &h); !ok {
				return
			}
			t.history(run, h)
		case OpRunComplete:
			t.finish(run, StatusCompleted, at, orNull(op.Data), nil)
			return
		case OpDiscoveryRequest:
			handover = true
		case OpNone, "":
		default:
			async = append(async, op)
		}
	}
	if len(async) > 0 {
		t.history(run, HistoryEntry{At: at, Type: HistEndpointAsync, Detail: fmt.Sprintf("%d op(s)", len(async))})
		c := &Call{RunID: run.ID, ID: DiscoveryCall, Type: CallHTTP}
		t.processOps(run, c, fn, &CallFinished{At: at, RunID: run.ID, Call: DiscoveryCall, Status: 206, SDK: true,
			Ops: async, Jitter: jitter})
		return
	}
	if handover && !run.Done() {
		t.history(run, HistoryEntry{At: at, Type: HistEndpointAsync, Detail: "maxRuntime"})
		if !t.has(keyCall(run.ID, DiscoveryCall)) {
			t.addCall(&Call{RunID: run.ID, ID: DiscoveryCall, Type: CallHTTP, Due: at})
		}
	}
}

// applyEndpointResponded keeps an endpoint run's response. It may come
// before or after the run ends (the SDK sends it beside its answer); the
// first one counts.
func (t *txn) applyEndpointResponded(r *EndpointResponded) Result {
	run := t.run(r.RunID)
	switch {
	case run == nil:
		return Result{Code: NotFound, ID: r.RunID, Msg: "no such run"}
	case run.Endpoint == "":
		return Result{Code: Rejected, ID: r.RunID, Msg: "run is not a durable endpoint run"}
	case t.limits().StepOutputBytes > 0 && int64(len(r.Response)) > t.limits().StepOutputBytes:
		// Kept in the run, it counts as the run's result: over the limit
		// the RunComplete's (screened) response is served instead.
		t.history(run, HistoryEntry{At: r.At, Type: HistResult(Rejected), Detail: "response over the step output limit"})
		return Result{Code: Rejected, ID: r.RunID, Msg: "response over the step output limit"}
	case run.Response != nil:
		t.history(run, HistoryEntry{At: r.At, Type: HistResult(Duplicate), Detail: "response already recorded"})
		return Result{Code: Duplicate, ID: r.RunID, Msg: "response already recorded"}
	}
	run.Response = r.Response
	t.history(run, HistoryEntry{At: r.At, Type: HistEndpointResponse})
	return Result{Code: OK, ID: r.RunID}
}

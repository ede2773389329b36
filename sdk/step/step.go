// Package step holds the step tools a function calls: each step's result is
// kept by the server, so a run that fails resumes after its last good step.
//
// A step stops the function's code when the server must act first (a step
// to run in its own call, a sleep, a wait): the tool does not return then,
// and the code runs again from the top on the next call, with the finished
// steps answered from memory. Code between steps must therefore be
// deterministic, and must not recover() the SDK's panics or call steps from
// goroutines other than through Parallel.
package step

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/sdk"
	"github.com/cairn-dev/cairn/sdk/internal/errs"
	"github.com/cairn-dev/cairn/sdk/internal/state"
	"github.com/cairn-dev/cairn/sdk/protocol"
)

// Run runs fn once per run and returns its result; later calls of the
// function get the stored result without running fn again. A failing fn is
// retried (each step has its own attempts); once it fails for good, Run
// returns a *sdk.StepError. Return sdk.NonRetriable(err) to fail at once,
// sdk.RetryAt(err, t) to pick the time of the next attempt.
func Run[T any](ctx context.Context, id string, fn func(ctx context.Context) (T, error)) (T, error) {
	return run(ctx, id, nil, fn)
}

// run is Run with op options (the tool type of SendEvent/SendSignal).
func run[T any](ctx context.Context, id string, opts map[string]any, fn func(ctx context.Context) (T, error)) (T, error) {
	r := state.From(ctx)
	if r == nil {
		return fn(ctx) // outside a function call (e.g. a unit test of user code)
	}
	s := r.Next(id)
	if raw, ok := r.Memoized(s); ok {
		return decodeResult[T](raw)
	}
	name := id
	if t, ok := opts["type"].(string); ok {
		name = t[len("step."):] // the TS SDK names these ops after the tool
	}
	op := s.Op(protocol.OpStepPlanned, name)
	for k, v := range opts {
		op.Opts[k] = v
	}
	switch r.Decide(s, true) {
	case state.Skip:
		r.Found(op)
	case state.Plan:
		r.Report(op)
	}
	op.Op = protocol.OpStepRun
	start := time.Now()
	v, err := state.Safely(func() (T, error) { return fn(ctx) })
	op.Timing = &state.Timing{Start: start.UnixNano(), Duration: int64(time.Since(start))}
	if err != nil {
		noRetry, at := errs.Retry(err)
		op.Error = errs.Serialize(err)
		op.Op = protocol.OpStepError
		if noRetry || r.LastAttempt() {
			op.Op, noRetry = protocol.OpStepFailed, true
		}
		r.NoRetry, r.RetryAt = noRetry, at
		r.Executed(ctx, op, true)
	}
	data, merr := json.Marshal(v)
	if merr != nil {
		op.Op, op.Error = protocol.OpStepFailed, errs.Serialize(fmt.Errorf("encoding the step's result: %w", merr))
		r.NoRetry = true
		r.Executed(ctx, op, true)
	}
	op.Data = data
	r.Executed(ctx, op, false)
	return v, nil // checkpointed inline: the code goes on
}

// decodeResult reads a memoized step: {"data":...} is a result, {"error":...}
// a failure, anything else the value itself (protocol note §4.3).
func decodeResult[T any](raw json.RawMessage) (T, error) {
	var zero T
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) == nil && m != nil {
		_, hasData := m["data"]
		_, hasErr := m["error"]
		_, hasType := m["type"]
		switch {
		case hasErr && len(m) == 1:
			return zero, errs.FromStored(m["error"])
		case hasData && (len(m) == 1 || len(m) == 2 && hasType):
			raw = m["data"]
		}
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return zero, sdk.NonRetriable(fmt.Errorf("step result does not decode as %T: %w", v, err))
	}
	return v, nil
}

// Sleep pauses the run for d. No code runs and nothing is held meanwhile.
func Sleep(ctx context.Context, id string, d time.Duration) error {
	return sleep(ctx, id, sdk.TimeString(d))
}

// SleepUntil pauses the run until t.
func SleepUntil(ctx context.Context, id string, t time.Time) error {
	return sleep(ctx, id, t.UTC().Format("2006-01-02T15:04:05.000Z"))
}

func sleep(ctx context.Context, id, until string) error {
	r := state.From(ctx)
	if r == nil {
		return errors.New("step: Sleep outside a function call")
	}
	s := r.Next(id)
	if _, ok := r.Memoized(s); ok {
		return nil
	}
	report(r, s.Op(protocol.OpSleep, until))
	return nil
}

// report hands an op that the server must act on (sleep, wait, invoke) and stops.
func report(r *state.Run, op state.Op) {
	if r.Decide(state.Step{Hash: op.ID}, false) == state.Skip {
		r.Found(op)
	}
	r.Report(op)
}

// ErrEventNotReceived is WaitForEvent's error when the wait timed out.
var ErrEventNotReceived = errors.New("step: the event was not received in time")

// WaitForEventOpts says which event to wait for.
type WaitForEventOpts struct {
	Event   string        // the event name
	Timeout time.Duration // required: how long to wait
	// If compares the run's event (event) with each candidate (async), e.g.
	// "async.data.user_id == event.data.user_id".
	If string
}

// WaitForEvent pauses the run until a matching event arrives and returns
// it, or ErrEventNotReceived after the timeout.
func WaitForEvent[T any](ctx context.Context, id string, opts WaitForEventOpts) (sdk.Event[T], error) {
	var zero sdk.Event[T]
	r := state.From(ctx)
	if r == nil {
		return zero, errors.New("step: WaitForEvent outside a function call")
	}
	if opts.Event == "" || opts.Timeout <= 0 {
		return zero, errors.New("step: WaitForEvent needs an Event and a Timeout")
	}
	s := r.Next(id)
	if raw, ok := r.Memoized(s); ok {
		if string(raw) == "null" {
			return zero, ErrEventNotReceived
		}
		var e sdk.Event[T]
		if err := json.Unmarshal(raw, &e); err != nil {
			return zero, sdk.NonRetriable(fmt.Errorf("the awaited event does not decode: %w", err))
		}
		return e, nil
	}
	op := s.Op(protocol.OpWaitForEvent, opts.Event)
	op.Opts["timeout"] = sdk.TimeString(opts.Timeout)
	if opts.If != "" {
		op.Opts["if"] = opts.If
	}
	report(r, op)
	return zero, nil
}

// Signal is a signal a run received: its name and data.
type Signal[T any] struct {
	Signal string `json:"signal"`
	Data   T      `json:"data"`
}

// ErrSignalNotReceived is WaitForSignal's error when the wait timed out.
var ErrSignalNotReceived = errors.New("step: the signal was not received in time")

// WaitForSignalOpts names the signal to wait for.
type WaitForSignalOpts struct {
	Signal  string        // unique: one run waits for a signal at a time
	Timeout time.Duration // required
	// Conflict is what happens if another run already waits for Signal:
	// "replace" takes it over, "fail" (the default) fails this run.
	Conflict string
}

// WaitForSignal pauses the run until the signal is sent (Client.SendSignal
// or POST /v1/signals) and returns its data, or ErrSignalNotReceived.
func WaitForSignal[T any](ctx context.Context, id string, opts WaitForSignalOpts) (Signal[T], error) {
	var zero Signal[T]
	r := state.From(ctx)
	if r == nil {
		return zero, errors.New("step: WaitForSignal outside a function call")
	}
	if opts.Signal == "" || opts.Timeout <= 0 {
		return zero, errors.New("step: WaitForSignal needs a Signal and a Timeout")
	}
	s := r.Next(id)
	if raw, ok := r.Memoized(s); ok {
		if string(raw) == "null" {
			return zero, ErrSignalNotReceived
		}
		return decodeResult[Signal[T]](raw)
	}
	op := s.Op(protocol.OpWaitForSignal, opts.Signal)
	op.Opts["signal"] = opts.Signal
	op.Opts["timeout"] = sdk.TimeString(opts.Timeout)
	if opts.Conflict != "" {
		op.Opts["conflict"] = opts.Conflict
	}
	report(r, op)
	return zero, nil
}

// InvokeOpts names the function to invoke and its input.
type InvokeOpts struct {
	// Function is a function of this app; FunctionID ("<app id>-<fn id>")
	// names one of any app.
	Function   *sdk.Function
	FunctionID string
	Data       any           // the invoked run's event data
	Timeout    time.Duration // 0: a year
}

// Invoke runs another function as a child run and returns its result (a
// *sdk.StepError if it failed).
func Invoke[T any](ctx context.Context, id string, opts InvokeOpts) (T, error) {
	var zero T
	r := state.From(ctx)
	if r == nil {
		return zero, errors.New("step: Invoke outside a function call")
	}
	target := opts.FunctionID
	if opts.Function != nil {
		target = opts.Function.FullID()
	}
	if target == "" {
		return zero, errors.New("step: Invoke needs a Function or a FunctionID")
	}
	s := r.Next(id)
	if raw, ok := r.Memoized(s); ok {
		return decodeResult[T](raw)
	}
	data := opts.Data
	if data == nil {
		data = map[string]any{}
	}
	op := s.Op(protocol.OpInvokeFunction, "")
	op.Opts["function_id"] = target
	op.Opts["payload"] = map[string]any{"data": data}
	if opts.Timeout > 0 {
		op.Opts["timeout"] = sdk.TimeString(opts.Timeout)
	}
	report(r, op)
	return zero, nil
}

// SendEvent sends events as a step, so a retried run does not send them
// twice, and returns their ids.
func SendEvent(ctx context.Context, id string, events ...any) ([]string, error) {
	r := state.From(ctx)
	if r == nil {
		return nil, errors.New("step: SendEvent outside a function call")
	}
	type sent struct {
		IDs []string `json:"ids"`
	}
	out, err := run(ctx, id, map[string]any{"type": "step.sendEvent"}, func(ctx context.Context) (sent, error) {
		ids, err := r.Sender.SendEvents(ctx, events)
		return sent{ids}, err
	})
	return out.IDs, err
}

// SendSignal sends a signal as a step and returns the id of the run it
// resumed ("" when none was waiting).
func SendSignal(ctx context.Context, id, signal string, data any) (string, error) {
	r := state.From(ctx)
	if r == nil {
		return "", errors.New("step: SendSignal outside a function call")
	}
	type sent struct {
		RunID string `json:"runId,omitempty"`
	}
	out, err := run(ctx, id, map[string]any{"type": "step.sendSignal", "signal": signal}, func(ctx context.Context) (sent, error) {
		runID, err := r.Sender.SendSignal(ctx, signal, data)
		if errors.Is(err, sdk.ErrNoSignalWaiter) {
			err = nil
		}
		return sent{runID}, err
	})
	return out.RunID, err
}

// Parallel runs branches as parallel steps: the steps they reach run each
// in their own call, at the same time, and Parallel returns once all are
// done, with the first error a branch returned.
func Parallel(ctx context.Context, branches ...func(ctx context.Context) error) error {
	r := state.From(ctx)
	if r == nil {
		var first error
		for _, b := range branches {
			if err := b(ctx); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	fns := make([]func() error, len(branches))
	for i, b := range branches {
		fns[i] = func() error { return b(ctx) }
	}
	return r.Parallel(fns)
}

package fsm

import (
	"strconv"
	"strings"

	"github.com/cairn-dev/cairn/sdk/protocol"
)

// The engine's vocabulary, in one place: run statuses, call types, the
// opcodes an SDK answers with, and the history entry types Apply writes.
// These strings are stored in the projection and shown to users: values
// are never changed, only added.

// Run statuses (Run.Status).
const (
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
	StatusSkipped   = "skipped" // refused by a rate limit or a singleton
)

// RunStatuses lists every run status.
var RunStatuses = []string{StatusRunning, StatusCompleted, StatusFailed, StatusCancelled, StatusSkipped}

// Run.Waiting of a run that has not started because its function
// debounces or batches events (its first call is due when it starts).
// Other held-back runs say why in a sentence (flow.go).
const (
	WaitingDebounce = "debounce"
	WaitingBatch    = "batch"
)

// Bulk replay statuses (Replay.Status).
const (
	ReplayStatusRunning   = "running" // still starting runs
	ReplayStatusCompleted = "completed"
	ReplayStatusCancelled = "cancelled"
)

// Call types (Call.Type). Every type but CallHTTP is a timer (IsTimer).
const (
	CallHTTP    = "http"    // POST to the app
	CallSleep   = "sleep"   // a timer that ends a step.sleep
	CallWait    = "wait"    // step.waitForEvent: a matching event or the timeout ends it
	CallSignal  = "signal"  // step.waitForSignal: the signal or the timeout ends it
	CallInvoke  = "invoke"  // step.invoke: the child's end or the timeout ends it
	CallTimeout = "timeout" // a run-level timeout (timeouts.start / finish)
)

// CallTypes lists every call type.
var CallTypes = []string{CallHTTP, CallSleep, CallWait, CallSignal, CallInvoke, CallTimeout}

// IsTimer reports whether a call is a timer: the executor fires it
// (TimerFired) when due, rather than claim it and call the app, and it holds
// no fair share or concurrency slot. Apply and the executor both ask this,
// so they cannot disagree on a call type.
func (c *Call) IsTimer() bool { return c.Type != CallHTTP }

// Opcodes of a 206 answer (Op.Op, protocol §6.2), as the SDK names them.
const (
	OpStepRun        = protocol.OpStepRun
	OpStep           = protocol.OpStep
	OpStepError      = protocol.OpStepError
	OpStepFailed     = protocol.OpStepFailed
	OpStepPlanned    = protocol.OpStepPlanned
	OpSleep          = protocol.OpSleep
	OpWaitForEvent   = protocol.OpWaitForEvent
	OpWaitForSignal  = protocol.OpWaitForSignal
	OpInvokeFunction = protocol.OpInvokeFunction
	OpRunComplete    = protocol.OpRunComplete
	OpNone           = protocol.OpNone
	// OpDiscoveryRequest: a durable endpoint ran past its maxRuntime and
	// hands the run to the engine (only in a checkpoint, endpoint.go).
	OpDiscoveryRequest = protocol.OpDiscoveryRequest
)

// History entry types (HistoryEntry.Type).
const (
	HistRunScheduled  = "run.scheduled"
	HistRunSkipped    = "run.skipped"
	HistRunDebounced  = "run.debounced"
	HistRunBatched    = "run.batched"
	HistRunThrottled  = "run.throttled"
	HistRunRerun      = "run.rerun"    // on the old run: a rerun of it started
	HistRunRerunOf    = "run.rerun_of" // on the new run: what it reruns, from which step
	HistCallClaimed   = "call.claimed"
	HistCallWaiting   = "call.waiting" // for a concurrency slot
	HistCallErrored   = "call.errored" // retried
	HistStepCompleted = "step.completed"
	HistStepErrored   = "step.errored" // retried
	HistStepFailed    = "step.failed"
	HistStepDuplicate = "step.duplicate"
	HistStepPlanned   = "step.planned"
	HistStepSleeping  = "step.sleeping"
	HistStepWoke      = "step.woke"
	HistWaitingEvent  = "step.waiting.event"
	HistWaitingSignal = "step.waiting.signal"
	HistEventReceived = "step.event.received"
	HistSignalRecv    = "step.signal.received"
	HistWaitTimeout   = "step.wait.timeout"
	HistInvoking      = "step.invoking"
	HistInvokeFailed  = "step.invoke.failed" // could not start
	HistInvokeDone    = "step.invoke.finished"
	HistInvokeTimeout = "step.invoke.timeout"
	// A durable endpoint handed its run to the engine (an async op, a
	// step error, its maxRuntime), or sent a checkpoint it may not.
	HistEndpointAsync     = "run.endpoint.async"
	HistCheckpointRefused = "run.checkpoint.refused"
	HistEndpointResponse  = "run.endpoint.response" // the handler's response, kept for its caller
	// HistEventDropped: an event the engine meant to emit could not be
	// encoded; the run's history says so instead of an empty event.
	HistEventDropped = "event.dropped"
)

// HistRunEnded is the history type of a run's end: "run." + its status
// (run.completed, run.failed, run.cancelled).
func HistRunEnded(status string) string { return "run." + status }

// HistRunEnd reports whether typ is the history type of a run's end.
func HistRunEnd(typ string) bool {
	switch typ {
	case HistRunEnded(StatusCompleted), HistRunEnded(StatusFailed), HistRunEnded(StatusCancelled):
		return true
	}
	return false
}

// HistResult is the history type of an answer that was refused:
// "result." + its code (result.stale, result.rejected, ...).
func HistResult(c Code) string { return "result." + c.String() }

// What the Data of a history entry holds, by the entry's type (HistData).
const (
	HistDataOutput = "output" // a value a step or the run produced (a resumed wait's value too)
	HistDataError  = "error"  // an error a step, a call or the run ended with
	HistDataInput  = "input"  // what a step was given: a wait's or an invoke's options
)

// HistData says what the Data of a history entry of type typ holds
// (HistDataOutput, HistDataError, HistDataInput), or "" for types that
// carry none, so that readers label it without knowing every type.
func HistData(typ string) string {
	switch typ {
	case HistStepCompleted, HistStepWoke, HistEventReceived, HistSignalRecv, HistWaitTimeout, HistInvokeDone,
		HistRunEnded(StatusCompleted):
		return HistDataOutput
	case HistStepErrored, HistStepFailed, HistCallErrored, HistInvokeFailed, HistInvokeTimeout,
		HistRunEnded(StatusFailed), HistRunEnded(StatusCancelled):
		return HistDataError
	case HistWaitingEvent, HistWaitingSignal, HistInvoking:
		return HistDataInput
	}
	return ""
}

// Step is the id of the step a history entry is about: the op id of a
// step entry (its Detail, up to a space: a sleep's says until when), the
// call of a call or result entry; "" for run-level entries, discovery
// calls (DiscoveryCall) and run timeouts.
func (h *HistoryEntry) Step() string {
	switch {
	case strings.HasPrefix(h.Type, "step."):
		id, _, _ := strings.Cut(h.Detail, " ")
		return id
	case strings.HasPrefix(h.Type, "call.") || strings.HasPrefix(h.Type, "result."):
		if h.Call == DiscoveryCall || h.Call == timeoutStartCall || h.Call == timeoutFinishCall {
			return ""
		}
		return h.Call
	}
	return ""
}

// LinkedRun is the run a run.rerun or run.rerun_of entry names (the rerun
// it started, or the run it reruns: the Detail "rerun as|of <id> ..."
// written by applyRunRerun), "" for any other entry. Readers (the UI) link
// runs without parsing the detail themselves.
func (h *HistoryEntry) LinkedRun() string {
	if h.Type != HistRunRerun && h.Type != HistRunRerunOf {
		return ""
	}
	if f := strings.Fields(h.Detail); len(f) >= 3 {
		return f[2]
	}
	return ""
}

// SleepsUntil is when the sleep of a step.sleeping entry ends (unix ms;
// its Detail is "<step id> until <ms>"), 0 for any other entry.
func (h *HistoryEntry) SleepsUntil() int64 {
	if h.Type != HistStepSleeping {
		return 0
	}
	_, until, _ := strings.Cut(h.Detail, " until ")
	ms, _ := strconv.ParseInt(until, 10, 64)
	return ms
}

package fsm

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

// Opcodes of a 206 answer (Op.Op, protocol §6.2).
const (
	OpStepRun        = "StepRun"
	OpStep           = "Step" // older SDKs' StepRun
	OpStepError      = "StepError"
	OpStepFailed     = "StepFailed"
	OpStepPlanned    = "StepPlanned"
	OpSleep          = "Sleep"
	OpWaitForEvent   = "WaitForEvent"
	OpWaitForSignal  = "WaitForSignal"
	OpInvokeFunction = "InvokeFunction"
	OpRunComplete    = "RunComplete"
	OpNone           = "None"
)

// History entry types (HistoryEntry.Type).
const (
	HistRunScheduled  = "run.scheduled"
	HistRunSkipped    = "run.skipped"
	HistRunDebounced  = "run.debounced"
	HistRunBatched    = "run.batched"
	HistRunThrottled  = "run.throttled"
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
	// HistEventDropped: an event the engine meant to emit could not be
	// encoded; the run's history says so instead of an empty event.
	HistEventDropped = "event.dropped"
)

// HistRunEnded is the history type of a run's end: "run." + its status
// (run.completed, run.failed, run.cancelled).
func HistRunEnded(status string) string { return "run." + status }

// HistResult is the history type of an answer that was refused:
// "result." + its code (result.stale, result.rejected, ...).
func HistResult(c Code) string { return "result." + c.String() }

package fsm

import "fmt"

// Kind tags a record in the log. Kinds are stored forever: append only, never
// renumber, never reuse a value.
type Kind uint8

const (
	KindInvalid         Kind = 0  // never written; catches zeroed bytes
	KindAppSynced       Kind = 1  // an app's functions, from POST /fn/register
	KindEventAccepted   Kind = 2  // one ingested event; starts the runs it triggers
	KindCallClaimed     Kind = 3  // the executor is about to call the app for a run
	KindCallFinished    Kind = 4  // the app answered a call (or the call failed)
	KindTimerFired      Kind = 5  // a sleep has elapsed
	KindCancelRequested Kind = 6  // a user asked to cancel a run
	KindSignalReceived  Kind = 7  // POST /v1/signals: resume the run waiting for it
	KindCronFired       Kind = 8  // a cron schedule came due: start a run
	KindBulkCancel      Kind = 9  // cancel a function's runs started in a time range
	KindNodeSeen        Kind = 10 // a cluster member's addresses, so any node can reach the leader
	KindAppRemoved      Kind = 11 // an operator removed an app and its functions
	KindLimitsSet       Kind = 12 // the limits Apply enforces on runs (limits.go)
)

func (k Kind) String() string {
	switch k {
	case KindAppSynced:
		return "AppSynced"
	case KindEventAccepted:
		return "EventAccepted"
	case KindCallClaimed:
		return "CallClaimed"
	case KindCallFinished:
		return "CallFinished"
	case KindTimerFired:
		return "TimerFired"
	case KindCancelRequested:
		return "CancelRequested"
	case KindSignalReceived:
		return "SignalReceived"
	case KindCronFired:
		return "CronFired"
	case KindBulkCancel:
		return "BulkCancel"
	case KindNodeSeen:
		return "NodeSeen"
	case KindAppRemoved:
		return "AppRemoved"
	case KindLimitsSet:
		return "LimitsSet"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

package fsm

import "fmt"

// Kind tags a record in the log. Kinds are stored forever: append only, never
// renumber, never reuse a value.
type Kind uint8

const (
	KindInvalid              Kind = 0  // never written; catches zeroed bytes
	KindAppSynced            Kind = 1  // an app's functions, from POST /fn/register
	KindEventAccepted        Kind = 2  // one ingested event; starts the runs it triggers
	KindCallClaimed          Kind = 3  // the executor is about to call the app for a run
	KindCallFinished         Kind = 4  // the app answered a call (or the call failed)
	KindTimerFired           Kind = 5  // a sleep has elapsed
	KindCancelRequested      Kind = 6  // a user asked to cancel a run
	KindSignalReceived       Kind = 7  // POST /v1/signals: resume the run waiting for it
	KindCronFired            Kind = 8  // a cron schedule came due: start a run
	KindBulkCancel           Kind = 9  // cancel a function's runs started in a time range
	KindNodeSeen             Kind = 10 // a cluster member's addresses, so any node can reach the leader
	KindAppRemoved           Kind = 11 // an operator removed an app and its functions
	KindLimitsSet            Kind = 12 // the limits Apply enforces on runs (limits.go)
	KindRunRerun             Kind = 13 // a new run of a finished run's function and events (rerun.go)
	KindReplayStarted        Kind = 14 // a bulk replay of a function's runs in a time window
	KindReplayCancelled      Kind = 15 // stop a bulk replay starting runs
	KindStepsCheckpointed    Kind = 16 // steps an SDK finished mid-call (async checkpointing, checkpoint.go)
	KindEndpointStarted      Kind = 17 // POST /v1/checkpoint: a durable endpoint's run (endpoint.go)
	KindEndpointCheckpointed Kind = 18 // POST /v1/checkpoint/{run}/steps: its later steps or its end
	KindEndpointResponded    Kind = 19 // the handler's response as the caller would have had it (the SDK's tee)
)

// KindIgnorable marks a kind that a node which does not know it may skip:
// its records only add what older nodes can do without. A node meeting an
// unknown kind without this bit stops rather than compute another state.
const KindIgnorable Kind = 0x80

// kindInfo is what the log knows of a kind: its name, how to make an empty
// record to decode into, and the format version that introduced it (the
// leader proposes it only once every member runs that version; format.go).
type kindInfo struct {
	name  string
	new   func() Record
	since int
}

// kinds is the one table of record kinds.
var kinds = [...]kindInfo{
	KindAppSynced:            {"AppSynced", func() Record { return new(AppSynced) }, 1},
	KindEventAccepted:        {"EventAccepted", func() Record { return new(EventAccepted) }, 1},
	KindCallClaimed:          {"CallClaimed", func() Record { return new(CallClaimed) }, 1},
	KindCallFinished:         {"CallFinished", func() Record { return new(CallFinished) }, 1},
	KindTimerFired:           {"TimerFired", func() Record { return new(TimerFired) }, 1},
	KindCancelRequested:      {"CancelRequested", func() Record { return new(CancelRequested) }, 1},
	KindSignalReceived:       {"SignalReceived", func() Record { return new(SignalReceived) }, 1},
	KindCronFired:            {"CronFired", func() Record { return new(CronFired) }, 1},
	KindBulkCancel:           {"BulkCancel", func() Record { return new(BulkCancel) }, 1},
	KindNodeSeen:             {"NodeSeen", func() Record { return new(NodeSeen) }, 1},
	KindAppRemoved:           {"AppRemoved", func() Record { return new(AppRemoved) }, 2},
	KindLimitsSet:            {"LimitsSet", func() Record { return new(LimitsSet) }, 2},
	KindRunRerun:             {"RunRerun", func() Record { return new(RunRerun) }, 3},
	KindReplayStarted:        {"ReplayStarted", func() Record { return new(ReplayStarted) }, 3},
	KindReplayCancelled:      {"ReplayCancelled", func() Record { return new(ReplayCancelled) }, 3},
	KindStepsCheckpointed:    {"StepsCheckpointed", func() Record { return new(StepsCheckpointed) }, 3},
	KindEndpointStarted:      {"EndpointStarted", func() Record { return new(EndpointStarted) }, 3},
	KindEndpointCheckpointed: {"EndpointCheckpointed", func() Record { return new(EndpointCheckpointed) }, 3},
	KindEndpointResponded:    {"EndpointResponded", func() Record { return new(EndpointResponded) }, 3},
}

func (k Kind) info() (kindInfo, bool) {
	if int(k) < len(kinds) && kinds[k].new != nil {
		return kinds[k], true
	}
	return kindInfo{}, false
}

func (k Kind) String() string {
	if i, ok := k.info(); ok {
		return i.name
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Ignorable reports whether a node that does not know k may skip it.
func (k Kind) Ignorable() bool { return k&KindIgnorable != 0 }

// newRecord returns an empty record of kind k, for decoding (nil if k is
// unknown).
func newRecord(k Kind) Record {
	if i, ok := k.info(); ok {
		return i.new()
	}
	return nil
}

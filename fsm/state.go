package fsm

import "github.com/cairn-dev/cairn/sdk/protocol"

// DefaultRetries is the number of retries when a function sets none: the
// official server's default, so 5 attempts in all.
const DefaultRetries = 4

// DiscoveryCall is the call id of a discovery request (stepId=step).
const DiscoveryCall = protocol.DiscoveryStep

// App is a synced app.
type App struct {
	ID        string   `msgpack:"id"`
	URL       string   `msgpack:"url"`
	SDK       string   `msgpack:"sdk"`
	Framework string   `msgpack:"fw"`
	Checksum  string   `msgpack:"sum"`
	Functions []string `msgpack:"fns"`
	SyncedAt  int64    `msgpack:"at"`
	Owner     string   `msgpack:"own,omitempty"` // signing key id (see AppSynced)
	SyncedBy  string   `msgpack:"by,omitempty"`  // the By of the sync that last changed it
}

// Function is a registered function.
type Function struct {
	FunctionDef `msgpack:",inline"`
	AppID       string `msgpack:"app"`
}

// MaxAttempts is the total number of attempts per step (retries + 1).
func (f *Function) MaxAttempts() int {
	if f.Retries < 0 {
		return DefaultRetries + 1
	}
	return f.Retries + 1
}

// Run is the projected state of one function run.
type Run struct {
	ID        string   `msgpack:"id"`
	FnID      string   `msgpack:"fn"`
	AppID     string   `msgpack:"app"`
	EventIDs  []string `msgpack:"evs"`
	Status    string   `msgpack:"st"`
	CreatedAt int64    `msgpack:"ca"`
	StartedAt int64    `msgpack:"sa"` // first claim
	EndedAt   int64    `msgpack:"ea"`
	Output    []byte   `msgpack:"out"` // raw JSON result when completed
	Error     []byte   `msgpack:"err"` // raw JSON error when failed or cancelled
	// Stack lists memoized step ids in completion order (ctx.stack.stack).
	Stack []string `msgpack:"stack"`
	// Version is the SDK's request version (-1 until it tells us).
	Version int `msgpack:"v"`
	// ForcePlan is ctx.disable_immediate_execution: set while parallel steps
	// are outstanding.
	ForcePlan bool `msgpack:"fp"`
	// Race is set when the planned steps are a race: rediscover after each.
	Race bool `msgpack:"race"`
	// Calls counts app calls made (claims), Steps memoized results.
	Calls   int    `msgpack:"calls"`
	HistSeq uint64 `msgpack:"hseq"`
	// StateBytes is what the run holds against its state limit: its
	// events (counted when it starts) and its memoized values.
	StateBytes int64 `msgpack:"sb,omitempty"`
	// Corr is the correlation id of an invoked run ("<parent run>.<op>"):
	// its result resumes the parent.
	Corr string `msgpack:"corr,omitempty"`
	// CancelKeys are this run's cancelOn index keys, dropped when it ends.
	CancelKeys []string `msgpack:"cks,omitempty"`
	// Waiting says why a run has not started yet (throttle, debounce,
	// batch) or why its next step waits (concurrency); "" when it doesn't.
	Waiting string `msgpack:"wait,omitempty"`
	// ConcKeys are the concurrency counters this run's steps take a slot
	// in, with their limits; Priority (seconds) orders waiters.
	ConcKeys   []string `msgpack:"ck,omitempty"`
	ConcLimits []int    `msgpack:"cl,omitempty"`
	Priority   int64    `msgpack:"prio,omitempty"`
	// AdmitKeys are debounce, batch and singleton entries pointing at this
	// run, dropped when it starts (debounce, batch) or ends (singleton).
	AdmitKeys []string `msgpack:"aks,omitempty"`
	// RerunOf is the run this one reruns (RunRerun).
	RerunOf string `msgpack:"rof,omitempty"`
	// Endpoint is the HTTP method of a durable endpoint's run (endpoint.go):
	// its calls re-enter the endpoint with the original request.
	Endpoint string `msgpack:"ep,omitempty"`
	// Response is an endpoint run's response as the handler produced it
	// (EndpointResponded): what its caller gets, headers and status
	// included, which the SDK's RunComplete of a re-entry does not carry.
	Response []byte `msgpack:"resp,omitempty"`
}

// Done reports whether the run has finished.
func (r *Run) Done() bool { return r.Status != StatusRunning }

// Run-level timeout calls have ids that no SDK step id can take.
const (
	timeoutStartCall  = "$timeout.start"
	timeoutFinishCall = "$timeout.finish"
)

// Call is one piece of queued work for a run: an app request or a timer.
// It is keyed by (run, call id) and indexed by due time in the queue.
type Call struct {
	RunID     string `msgpack:"run"`
	ID        string `msgpack:"id"` // "step" or a hashed step id
	Type      string `msgpack:"t"`
	Attempt   int    `msgpack:"att"`
	Gen       uint32 `msgpack:"gen"`
	Due       int64  `msgpack:"due"` // unix ms when it may run (the lease end while claimed)
	Claimed   bool   `msgpack:"cl"`
	Node      string `msgpack:"node,omitempty"` // claimant, while claimed
	Boot      string `msgpack:"boot,omitempty"`
	LastError []byte `msgpack:"le,omitempty"`
	// For waits: the event name and CEL condition (CallWait), the signal
	// (CallSignal) or the correlation id (CallInvoke).
	Event  string `msgpack:"ev,omitempty"`
	If     string `msgpack:"if,omitempty"`
	Signal string `msgpack:"sig,omitempty"`
	Corr   string `msgpack:"corr,omitempty"`
	// Slots: this claimed call holds its run's concurrency slots.
	// Blocked: the concurrency key it waits for (then it is in cw/, not in a due queue).
	Slots   bool   `msgpack:"slots,omitempty"`
	Blocked string `msgpack:"blk,omitempty"`
}

// HistoryEntry is one line of a run's audit trail.
type HistoryEntry struct {
	Seq     uint64 `msgpack:"seq" json:"seq"`
	Index   uint64 `msgpack:"idx" json:"log_index"`
	At      int64  `msgpack:"at" json:"at"`
	Type    string `msgpack:"t" json:"type"`
	Call    string `msgpack:"call,omitempty" json:"call,omitempty"`
	Attempt int    `msgpack:"att,omitempty" json:"attempt,omitempty"`
	Name    string `msgpack:"name,omitempty" json:"name,omitempty"`
	Detail  string `msgpack:"msg,omitempty" json:"detail,omitempty"`
	Data    []byte `msgpack:"data,omitempty" json:"-"`
	// By is the actor of the record that wrote the entry (its By: who
	// sent the event, the cancel, the signal); empty for the engine's own
	// records (claims, answers, timers, crons).
	By string `msgpack:"by,omitempty" json:"actor,omitempty"`
}

// EventOrigin is who sent a stored event and, for a replay, the event it
// sends again (eo/; absent for events that carry neither, as all did
// before format 3, and for the events the engine emits).
type EventOrigin struct {
	By           string `msgpack:"by,omitempty"`
	ReplayedFrom string `msgpack:"rpl,omitempty"`
}

// idempotency records the event that first used a user-supplied event id.
type idempotency struct {
	EventID string `msgpack:"ev"`
	At      int64  `msgpack:"at"`
}

// IdempotencyWindowMs is how long a user-supplied event id dedups (24 h).
const IdempotencyWindowMs = 24 * 60 * 60 * 1000

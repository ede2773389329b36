package fsm

// A Record is one fact appended to the log. Records are plain structs; the
// msgpack tags are short because every byte is stored in the log forever.
type Record interface {
	Kind() Kind
	Time() int64 // the record's time (unix ms): Apply's only clock
}

// AppSynced replaces an app's function definitions (POST /fn/register).
// Functions of the app that are missing from the new sync are removed.
type AppSynced struct {
	At        int64         `msgpack:"at"`
	AppID     string        `msgpack:"app"`
	URL       string        `msgpack:"url"`
	SDK       string        `msgpack:"sdk,omitempty"`
	Framework string        `msgpack:"fw,omitempty"`
	Checksum  string        `msgpack:"sum"` // of the normalized register body; equal = not modified
	Functions []FunctionDef `msgpack:"fns"`
	// Owner is the id of the signing key the app registered with ("" in
	// dev mode). An app owned by one key is replaced only by a sync with
	// the same key, or with a key that lists the old one in MayReplace
	// (the primary key replaces apps of the fallback during a rotation).
	Owner      string   `msgpack:"own,omitempty"`
	MayReplace []string `msgpack:"heir,omitempty"`
	// Exclusive refuses the whole sync when one of its function ids
	// belongs to another app (older records let functions move).
	Exclusive bool `msgpack:"excl,omitempty"`
	// By names who synced (format 3): see By on EventAccepted.
	By string `msgpack:"by,omitempty"`
}

// AppRemoved deletes an app and the functions it owns (cairn apps rm).
// Their runs stay readable; calls still queued for them fail.
type AppRemoved struct {
	At    int64  `msgpack:"at"`
	AppID string `msgpack:"app"`
	By    string `msgpack:"by,omitempty"` // who asked (see By on EventAccepted)
}

// FunctionDef is a function as the SDK registered it.
type FunctionDef struct {
	ID       string    `msgpack:"id"` // composite "<app>-<fn>"
	Name     string    `msgpack:"name"`
	URL      string    `msgpack:"url"` // step URL, deployId stripped
	Triggers []Trigger `msgpack:"trg"`
	// Retries is the number of retries after the first attempt; -1 means the
	// default (DefaultRetries).
	Retries int    `msgpack:"ret"`
	Config  []byte `msgpack:"cfg"` // the raw JSON config, kept for later features
	// Cancel lists cancelOn conditions.
	Cancel []CancelOn `msgpack:"cancel,omitempty"`
	// StartTimeoutMs cancels a run not started this long after it was
	// scheduled; FinishTimeoutMs one not finished this long after it started.
	StartTimeoutMs  int64 `msgpack:"tos,omitempty"`
	FinishTimeoutMs int64 `msgpack:"tof,omitempty"`
	// Idempotency is a CEL key expression: one run per key per 24 h.
	Idempotency string `msgpack:"idem,omitempty"`
	// Flow control (see flow.go).
	Concurrency []ConcurrencyLimit `msgpack:"conc,omitempty"`
	Throttle    *RateSpec          `msgpack:"thr,omitempty"`
	RateLimit   *RateSpec          `msgpack:"rl,omitempty"`
	Debounce    *DebounceSpec      `msgpack:"deb,omitempty"`
	Batch       *BatchSpec         `msgpack:"batch,omitempty"`
	Priority    string             `msgpack:"prio,omitempty"` // CEL: seconds of advantage
	Singleton   *SingletonSpec     `msgpack:"single,omitempty"`
}

// ConcurrencyLimit caps the steps running at once: per function, or per
// value of Key (CEL) within Scope ("fn", "env" or "account").
type ConcurrencyLimit struct {
	Limit int    `msgpack:"n"`
	Key   string `msgpack:"key,omitempty"`
	Scope string `msgpack:"scope,omitempty"`
}

// RateSpec is a throttle (runs wait) or a rate limit (runs are skipped):
// Limit runs per PeriodMs per Key value, Burst extra at once (throttle).
type RateSpec struct {
	Limit    int    `msgpack:"n"`
	PeriodMs int64  `msgpack:"p"`
	Key      string `msgpack:"key,omitempty"`
	Burst    int    `msgpack:"burst,omitempty"`
}

// DebounceSpec delays a run until PeriodMs passed without a new event for
// its Key, at most TimeoutMs after the first; it runs with the last event.
type DebounceSpec struct {
	PeriodMs  int64  `msgpack:"p"`
	Key       string `msgpack:"key,omitempty"`
	TimeoutMs int64  `msgpack:"to,omitempty"`
}

// BatchSpec gathers up to MaxSize events per Key (those meeting If) into
// one run, or fewer once TimeoutMs passed since the first.
type BatchSpec struct {
	MaxSize   int    `msgpack:"n"`
	TimeoutMs int64  `msgpack:"to"`
	Key       string `msgpack:"key,omitempty"`
	If        string `msgpack:"if,omitempty"`
}

// SingletonSpec allows one running run per Key: a new one is skipped, or
// (Mode "cancel") replaces the running one.
type SingletonSpec struct {
	Key  string `msgpack:"key,omitempty"`
	Mode string `msgpack:"mode"`
}

// CancelOn cancels a run when a matching event arrives.
type CancelOn struct {
	Event     string `msgpack:"ev"`
	If        string `msgpack:"if,omitempty"`
	TimeoutMs int64  `msgpack:"to,omitempty"` // 0: until the run ends
}

// Trigger starts a function on an event name or on a cron schedule.
type Trigger struct {
	Event      string `msgpack:"ev,omitempty"`
	Expression string `msgpack:"if,omitempty"`
	Cron       string `msgpack:"cron,omitempty"`
}

// EventAccepted is one ingested event. The proposer assigns the id and the
// full JSON the app will see; Apply dedups and starts triggered runs.
type EventAccepted struct {
	At      int64      `msgpack:"at"`
	ID      string     `msgpack:"id"`            // server event id (ULID)
	Name    string     `msgpack:"name"`          // event name, for trigger lookup
	IdemKey string     `msgpack:"idk,omitempty"` // user-supplied id: 24 h dedup key
	JSON    []byte     `msgpack:"json"`          // {"name","data","id","ts","user":{}...}
	Lease   *LeaseNext `msgpack:"lease,omitempty"`
	// By names who sent the event (format 3), as the API names the actor
	// of a request (api/auth.go): "cli (key:<id>)", "app (event-key:<h>)",
	// ... Records the engine proposes by itself carry none: their actor is
	// the engine. Apply only passes it on, to the event's origin (eo/) and
	// the history entries the record writes, so who caused a run, a cancel
	// or a resume stays in the audit trail.
	By string `msgpack:"by,omitempty"`
	// ReplayedFrom is the stored event this one sends again
	// (POST /v1/events/:id/replay; format 3).
	ReplayedFrom string `msgpack:"rpl,omitempty"`
}

// CallClaimed takes a lease on a queued call before the executor sends it, so
// that a new leader knows what was in flight. Gen must equal the call's
// current generation; the claim bumps it, fencing results of older claims.
type CallClaimed struct {
	At         int64  `msgpack:"at"`
	RunID      string `msgpack:"run"`
	Call       string `msgpack:"call"` // "step" (discovery) or a hashed step id
	Gen        uint32 `msgpack:"gen"`
	LeaseUntil int64  `msgpack:"lease"`
	// Node and Boot name the claiming process. A claim held by an earlier
	// boot of the same node may be taken over before its lease ends: that
	// process is gone, so nothing of it is still in flight.
	Node string `msgpack:"node"`
	Boot string `msgpack:"boot"`
	// Revoke takes over a claim before its lease ends (format 5): the
	// proposer found the claiming process gone (it restarted, does not
	// answer, or no longer has the call in hand). Gen still fences it: it
	// revokes exactly the claim the proposer saw, and the old claimant's
	// answer, if it ever comes, is stale. Absent: the lease is honoured.
	Revoke bool `msgpack:"rv,omitempty"`
}

// LeaseNext asks that the app calls a record makes due at once be claimed
// by the proposer in the same entry, saving a round of the log per step:
// the executor that reported a step result gets the next call back.
type LeaseNext struct {
	LeaseUntil int64  `msgpack:"lease"`
	Node       string `msgpack:"node"`
	Boot       string `msgpack:"boot"`
	// The executor's fair shares, as it counted them when the record was
	// proposed: claim at most Max calls in all, and per function and per
	// app at most its Rooms entry, or Each if it has none. The bounds count
	// the claims of every leasing record of the same log entry, which were
	// all sized from the same counts. A CallFinished or TimerFired ends a
	// call of the proposer: its bounds count that call's slot (and, for an
	// app call, its function's and app's share) as free, and so do the
	// records after it in the entry. Zero means no bound (records written
	// before shares existed).
	Max   int         `msgpack:"max,omitempty"`
	Each  int         `msgpack:"each,omitempty"`
	Rooms []LeaseRoom `msgpack:"rooms,omitempty"`
	// Keep (a CallFinished's lease, format 6) passes the slot of the call
	// the record ends to the first call it queues for that call's run,
	// whatever the bounds: the claims of other records in the entry, sized
	// at other times, cannot take it. A run under way then never waits
	// behind a backlog of runs not yet started.
	Keep bool `msgpack:"keep,omitempty"`
}

// LeaseRoom is how many more calls of one function (Fn) or one app (App)
// the proposer may take.
type LeaseRoom struct {
	Fn  string `msgpack:"fn,omitempty"`
	App string `msgpack:"app,omitempty"`
	N   int    `msgpack:"n"`
}

// CallFinished is the app's answer to a claimed call, or the failure to get
// one. Apply interprets it: memoize steps, schedule retries, finish the run.
type CallFinished struct {
	At      int64      `msgpack:"at"`
	RunID   string     `msgpack:"run"`
	Call    string     `msgpack:"call"`
	Gen     uint32     `msgpack:"gen"`  // the generation returned by the claim
	Status  int        `msgpack:"st"`   // HTTP status after unwrapping streaming; 0 = no response
	SDK     bool       `msgpack:"sdk"`  // the response carried X-Inngest-SDK
	Version int        `msgpack:"v"`    // x-inngest-req-version, 0 if absent
	NoRetry *bool      `msgpack:"nr"`   // X-Inngest-No-Retry, nil if absent
	RetryAt int64      `msgpack:"ra"`   // from Retry-After, unix ms; 0 if absent
	Body    []byte     `msgpack:"body"` // raw JSON body for 200 and errors
	Ops     []Op       `msgpack:"ops"`  // parsed 206 ops
	Err     string     `msgpack:"err"`  // transport or protocol error text
	Jitter  uint32     `msgpack:"jit"`  // random from the proposer, for retry backoff
	Millis  int64      `msgpack:"ms"`   // how long the call took
	Lease   *LeaseNext `msgpack:"lease,omitempty"`
	// Fail, set when screening the answer found a run result over the
	// step output limit (ScreenAnswer), fails the run with this error
	// instead: the result itself is never recorded.
	Fail []byte `msgpack:"fail,omitempty"`
}

// Op is one opcode from a 206 response. Unknown fields are dropped.
type Op struct {
	ID          string `msgpack:"id"`
	Op          string `msgpack:"op"`
	Name        string `msgpack:"name,omitempty"`
	DisplayName string `msgpack:"dn,omitempty"`
	Opts        []byte `msgpack:"opts,omitempty"`  // raw JSON
	Data        []byte `msgpack:"data,omitempty"`  // raw JSON; nil when absent
	Error       []byte `msgpack:"error,omitempty"` // raw JSON; nil when absent
}

// TimerFired ends a sleep. Apply ignores it if the timer is not yet due or
// no longer armed, so a sleep never ends early and never ends twice.
type TimerFired struct {
	At    int64      `msgpack:"at"`
	RunID string     `msgpack:"run"`
	Call  string     `msgpack:"call"`
	Gen   uint32     `msgpack:"gen"`
	Lease *LeaseNext `msgpack:"lease,omitempty"`
}

// CancelRequested cancels a run that has not finished.
type CancelRequested struct {
	At     int64  `msgpack:"at"`
	RunID  string `msgpack:"run"`
	Reason string `msgpack:"why,omitempty"`
	By     string `msgpack:"by,omitempty"` // who asked (format 3; see EventAccepted)
}

// SignalReceived resumes the run waiting for a signal (waitForSignal).
type SignalReceived struct {
	At     int64      `msgpack:"at"`
	Signal string     `msgpack:"sig"`
	Data   []byte     `msgpack:"data"` // raw JSON
	Lease  *LeaseNext `msgpack:"lease,omitempty"`
	By     string     `msgpack:"by,omitempty"` // who sent it (format 3; see EventAccepted)
}

// CronFired starts a run of a cron-triggered function for one scheduled
// time. Apply dedups by (function, scheduled time), so a schedule fires once
// even if two leaders propose it.
type CronFired struct {
	At          int64      `msgpack:"at"`
	FnID        string     `msgpack:"fn"`
	Cron        string     `msgpack:"cron"`
	ScheduledAt int64      `msgpack:"sched"` // unix ms
	Lease       *LeaseNext `msgpack:"lease,omitempty"`
}

// BulkCancel cancels every running run of a function created in
// [From, To] (unix ms).
type BulkCancel struct {
	At     int64  `msgpack:"at"`
	FnID   string `msgpack:"fn"`
	From   int64  `msgpack:"from"`
	To     int64  `msgpack:"to"`
	Reason string `msgpack:"why,omitempty"`
	By     string `msgpack:"by,omitempty"` // who asked (format 3; see EventAccepted)
}

// RunRerun starts a new run (RunID, chosen by the proposer) of the function
// of run From, with From's events, against the function as it is now. With
// FromStep (a hashed step id), the steps From memoized before that step are
// copied into the new run, so the app skips them and resumes at FromStep.
// From itself is left as it was, but for a history line naming the rerun.
// A rerun of a bulk replay names it (Replay) and its place in it (Seq):
// Apply takes each place once, so a replay re-proposed by a new leader
// starts no run twice.
type RunRerun struct {
	At       int64  `msgpack:"at"`
	RunID    string `msgpack:"run"`
	From     string `msgpack:"from"`
	FromStep string `msgpack:"step,omitempty"`
	By       string `msgpack:"by,omitempty"`
	Replay   string `msgpack:"rp,omitempty"`
	Seq      int    `msgpack:"seq,omitempty"`
}

// ReplayStarted opens a bulk replay: one RunRerun per run in Runs, which
// the leader found matching the window (function, creation time in
// [From, To], Statuses) when it was asked. Listing the runs in the record
// makes what is replayed a fact of the log, not of the projection that was
// read. The leader then proposes the reruns a few at a time.
type ReplayStarted struct {
	At       int64    `msgpack:"at"`
	ID       string   `msgpack:"id"`
	FnID     string   `msgpack:"fn"`
	From     int64    `msgpack:"from"`
	To       int64    `msgpack:"to"`
	Statuses []string `msgpack:"sts"`
	Runs     []string `msgpack:"runs"`
	By       string   `msgpack:"by,omitempty"`
}

// ReplayCancelled stops a bulk replay: no further reruns start (those
// started already go on).
type ReplayCancelled struct {
	At int64  `msgpack:"at"`
	ID string `msgpack:"id"`
	By string `msgpack:"by,omitempty"`
}

// StepsCheckpointed memoizes steps that the SDK finished inside a call
// that is still running (async checkpointing, protocol §9.1): with
// ctx.fn_id the SDK runs several steps per request and reports each one as
// it ends, answering the call itself only later. The call stays claimed
// (its final answer, a CallFinished, ends it), so Gen must be the call's
// current claim: a checkpoint from a superseded dispatch is Stale, and the
// SDK then gives that dispatch up. Only StepRun (or Step) ops are taken;
// anything else refuses the whole record, as Inngest's server answers 400.
type StepsCheckpointed struct {
	At    int64  `msgpack:"at"`
	RunID string `msgpack:"run"`
	Call  string `msgpack:"call"` // the claimed call the steps ran in
	Gen   uint32 `msgpack:"gen"`  // its claim, from the qi_id the SDK echoed
	Steps []Op   `msgpack:"steps"`
}

// NodeSeen records a cluster member's Raft and HTTP addresses. Followers
// use it to forward writes to the leader's HTTP API.
type NodeSeen struct {
	At       int64  `msgpack:"at"`
	ID       string `msgpack:"id"`
	RaftAddr string `msgpack:"raft"`
	HTTPAddr string `msgpack:"http"`
	// Format is the record format version the member's binary reads
	// (FormatVersion; absent: 1). The leader proposes new kinds and fields
	// only once every member reads them (format.go).
	Format int `msgpack:"fmt,omitempty"`
}

// LimitsSet records the limits Apply enforces on runs, so that every
// replica and every replay enforces the same ones whatever each node was
// started with. A leader proposes it when it takes office with limits that
// differ from the recorded ones; runs already past new limits fail at their
// next step.
type LimitsSet struct {
	At     int64 `msgpack:"at"`
	Limits `msgpack:",inline"`
}

func (*AppSynced) Kind() Kind       { return KindAppSynced }
func (*EventAccepted) Kind() Kind   { return KindEventAccepted }
func (*CallClaimed) Kind() Kind     { return KindCallClaimed }
func (*CallFinished) Kind() Kind    { return KindCallFinished }
func (*TimerFired) Kind() Kind      { return KindTimerFired }
func (*CancelRequested) Kind() Kind { return KindCancelRequested }
func (*SignalReceived) Kind() Kind  { return KindSignalReceived }
func (*CronFired) Kind() Kind       { return KindCronFired }
func (*BulkCancel) Kind() Kind      { return KindBulkCancel }
func (*NodeSeen) Kind() Kind        { return KindNodeSeen }
func (*AppRemoved) Kind() Kind      { return KindAppRemoved }
func (*LimitsSet) Kind() Kind       { return KindLimitsSet }
func (*RunRerun) Kind() Kind        { return KindRunRerun }
func (*ReplayStarted) Kind() Kind   { return KindReplayStarted }
func (*ReplayCancelled) Kind() Kind { return KindReplayCancelled }

func (*StepsCheckpointed) Kind() Kind { return KindStepsCheckpointed }

func (r *AppSynced) Time() int64       { return r.At }
func (r *EventAccepted) Time() int64   { return r.At }
func (r *CallClaimed) Time() int64     { return r.At }
func (r *CallFinished) Time() int64    { return r.At }
func (r *TimerFired) Time() int64      { return r.At }
func (r *CancelRequested) Time() int64 { return r.At }
func (r *SignalReceived) Time() int64  { return r.At }
func (r *CronFired) Time() int64       { return r.At }
func (r *BulkCancel) Time() int64      { return r.At }
func (r *NodeSeen) Time() int64        { return r.At }
func (r *AppRemoved) Time() int64      { return r.At }
func (r *LimitsSet) Time() int64       { return r.At }
func (r *RunRerun) Time() int64        { return r.At }
func (r *ReplayStarted) Time() int64   { return r.At }
func (r *ReplayCancelled) Time() int64 { return r.At }

func (r *StepsCheckpointed) Time() int64 { return r.At }

// ignoredRecord stands for a record of an ignorable kind this node does
// not know: Apply skips it.
type ignoredRecord struct{ kind Kind }

func (r *ignoredRecord) Kind() Kind  { return r.kind }
func (r *ignoredRecord) Time() int64 { return 0 }

package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/oklog/ulid/v2"
)

// apply applies one record, then stores the runs it changed (flushRuns).
func (t *txn) apply(r Record) Result {
	res := t.applyRecord(r)
	t.flushRuns()
	return res
}

// applyRecord is the one switch over record kinds.
func (t *txn) applyRecord(r Record) Result {
	t.fresh = t.fresh[:0]
	t.at = r.Time()
	t.by = recordBy(r)
	switch r := r.(type) {
	case *AppSynced:
		return t.applyAppSynced(r)
	case *EventAccepted:
		return t.leaseNext(t.applyEventAccepted(r), r.At, r.Lease, freesNothing)
	case *CallClaimed:
		return t.applyCallClaimed(r)
	case *CallFinished:
		return t.leaseNext(t.applyCallFinished(r), r.At, r.Lease, freesShare(r.RunID))
	case *TimerFired:
		return t.leaseNext(t.applyTimerFired(r), r.At, r.Lease, freesSlot)
	case *CancelRequested:
		return t.applyCancelRequested(r)
	case *SignalReceived:
		return t.leaseNext(t.applySignalReceived(r), r.At, r.Lease, freesNothing)
	case *CronFired:
		return t.leaseNext(t.applyCronFired(r), r.At, r.Lease, freesNothing)
	case *BulkCancel:
		return t.applyBulkCancel(r)
	case *NodeSeen:
		t.put(keyNode(r.ID), r)
		return Result{Code: OK, ID: r.ID}
	case *AppRemoved:
		return t.applyAppRemoved(r)
	case *ignoredRecord:
		return Result{Code: Ignored, Msg: fmt.Sprintf("record of unknown ignorable kind %d skipped", r.kind)}
	case *LimitsSet:
		t.put(keyLimits, &r.Limits)
		if t.limitsSet != nil {
			*t.limitsSet = true
		}
		return Result{Code: OK}
	case *RunRerun:
		return t.applyRunRerun(r)
	case *ReplayStarted:
		return t.applyReplayStarted(r)
	case *ReplayCancelled:
		return t.applyReplayCancelled(r)
	case *StepsCheckpointed:
		return t.applyStepsCheckpointed(r)
	case *EndpointStarted:
		return t.applyEndpointStarted(r)
	case *EndpointCheckpointed:
		return t.applyEndpointCheckpointed(r)
	case *EndpointResponded:
		return t.applyEndpointResponded(r)
	}
	panic(fmt.Sprintf("fsm: no applier for %T", r))
}

// recordBy is who caused a record ("" for the engine's own records).
func recordBy(r Record) string {
	switch r := r.(type) {
	case *AppSynced:
		return r.By
	case *EventAccepted:
		return r.By
	case *CancelRequested:
		return r.By
	case *SignalReceived:
		return r.By
	case *BulkCancel:
		return r.By
	case *AppRemoved:
		return r.By
	case *RunRerun:
		return r.By
	case *ReplayStarted:
		return r.By
	case *ReplayCancelled:
		return r.By
	case *EndpointStarted:
		return r.By
	case *EndpointCheckpointed:
		return r.By
	case *EndpointResponded:
		return r.By
	}
	return ""
}

// frees is what the call a leasing record ends held of the proposer's
// bounds: nothing (events, signals, crons), one slot (a timer that fired),
// or a slot and a share of its run's function and app (an app call).
type frees struct {
	slot bool
	run  string // with a share: the run of the app call
}

var (
	freesNothing = frees{}
	freesSlot    = frees{slot: true}
)

func freesShare(run string) frees { return frees{slot: true, run: run} }

// leaseNext claims, for the proposer, the app calls that the record just
// queued and that are due now, exactly as separate CallClaimed records would,
// within the lease's bounds. A record that ends one of the proposer's calls
// was sized with that call's slot (and share) counted as free: once it is
// applied, that slot counts as free for the records after it in the entry.
// With Keep, the first call it queued for the ended call's run is claimed
// whatever the bounds: it takes the slot that call frees.
func (t *txn) leaseNext(res Result, at int64, l *LeaseNext, f frees) Result {
	if l == nil {
		return res
	}
	t.by = "" // the claims are the engine's, whoever sent the record
	if res.Code == OK {
		fresh := append([]*Call(nil), t.fresh...)
		keep := l.Keep && f.run != "" // the freed slot is still to pass on
		for _, c := range fresh {
			if c.Due > at {
				continue
			}
			fn, app, ok := t.leaseRoom(l, c.RunID)
			if keep && c.RunID == f.run {
				keep, ok = false, true
				if l.Each > 0 {
					fn, app = t.runOwner(c.RunID)
				}
			}
			if !ok {
				continue // left queued: the executor takes it when it has room
			}
			cr := t.applyCallClaimed(&CallClaimed{At: at, RunID: c.RunID, Call: c.ID, Gen: c.Gen,
				LeaseUntil: l.LeaseUntil, Node: l.Node, Boot: l.Boot})
			if cr.Code == OK {
				claimed := *c
				claimed.Gen, claimed.Claimed, claimed.Due = cr.Gen, true, l.LeaseUntil
				claimed.Node, claimed.Boot = l.Node, l.Boot
				res.Claimed = append(res.Claimed, claimed)
				t.countLeased(1, fn, app)
			}
		}
	}
	if f.slot && (l.Max > 0 || l.Each > 0) {
		fn, app := "", ""
		if f.run != "" && l.Each > 0 {
			fn, app = t.runOwner(f.run)
		}
		t.countLeased(-1, fn, app)
	}
	return res
}

// countLeased adds n to the calls leased in this entry: in all, and to
// the function fn and app app (if known).
func (t *txn) countLeased(n int, fn, app string) {
	if t.leased == nil {
		t.leased = map[string]int{}
	}
	t.leased[""] += n
	if fn != "" {
		t.leased["f"+fn] += n
	}
	if app != "" {
		t.leased["a"+app] += n
	}
}

// runOwner returns a run's function and app ("" if there is no such run).
func (t *txn) runOwner(runID string) (fn, app string) {
	if run := t.run(runID); run != nil {
		return run.FnID, run.AppID
	}
	return "", ""
}

// leaseRoom reports whether l's bounds leave room to claim a call of
// runID, and the run's function and app.
func (t *txn) leaseRoom(l *LeaseNext, runID string) (fn, app string, ok bool) {
	if l.Max > 0 && t.leased[""] >= l.Max {
		return "", "", false
	}
	if l.Each <= 0 {
		return "", "", true
	}
	fn, app = t.runOwner(runID)
	fnRoom, appRoom := l.Each, l.Each
	for _, r := range l.Rooms {
		switch {
		case r.Fn != "" && r.Fn == fn:
			fnRoom = r.N
		case r.App != "" && r.App == app:
			appRoom = r.N
		}
	}
	return fn, app, t.leased["f"+fn] < fnRoom && t.leased["a"+app] < appRoom
}

// applyAppSynced replaces an app's functions.
//   - Same checksum as the stored app: nothing changes, Modified=false.
//   - Functions missing from the new sync are removed with their triggers.
//   - Runs in flight keep going with the function's new definition.
func (t *txn) applyAppSynced(r *AppSynced) Result {
	if t.synced != nil {
		*t.synced = true
	}
	var old App
	had := t.get(keyApp(r.AppID), &old)
	var prev *App
	if had {
		prev = &old
	}
	if msg := syncRefusal(r, prev, func(id string) *Function { return t.functionOrNil(id) }); msg != "" {
		return Result{Code: Rejected, ID: r.AppID, Msg: msg}
	}
	if had && old.Checksum == r.Checksum && old.URL == r.URL && old.Owner == r.Owner {
		return Result{Code: OK, ID: r.AppID}
	}
	for _, id := range old.Functions {
		if fn := t.functionOrNil(id); fn != nil && fn.AppID == r.AppID {
			t.deleteFunction(id) // unless it has moved to another app since
		}
	}
	app := App{ID: r.AppID, URL: r.URL, SDK: r.SDK, Framework: r.Framework, Checksum: r.Checksum, SyncedAt: r.At,
		Owner: r.Owner, SyncedBy: r.By}
	for _, def := range r.Functions {
		t.deleteFunction(def.ID) // a function may move between apps
		fn := Function{FunctionDef: def, AppID: r.AppID}
		t.put(keyFn(def.ID), &fn)
		var crons []string
		for _, trg := range def.Triggers {
			if trg.Event != "" {
				t.putRaw(keyTrigger(trg.Event, def.ID), nil)
			}
			if trg.Cron != "" {
				crons = append(crons, trg.Cron)
			}
		}
		if len(crons) > 0 {
			t.put(keyCronFn(def.ID), crons)
		}
		app.Functions = append(app.Functions, def.ID)
	}
	t.put(keyApp(r.AppID), &app)
	return Result{Code: OK, ID: r.AppID, Modified: true}
}

// syncRefusal says why a sync may not replace what is registered ("" if
// it may): the app (old, nil if new) belongs to another signing key, or
// (Exclusive) one of its functions belongs to another app. Apply decides
// with it; the API asks first (SyncRefused) so a refused sync is not logged.
func syncRefusal(r *AppSynced, old *App, function func(id string) *Function) string {
	if old != nil && old.Owner != "" && old.Owner != r.Owner && !slices.Contains(r.MayReplace, old.Owner) {
		return fmt.Sprintf("app %q was registered with another signing key (id %s)", r.AppID, old.Owner)
	}
	if !r.Exclusive {
		return ""
	}
	for _, def := range r.Functions {
		if fn := function(def.ID); fn != nil && fn.AppID != r.AppID {
			return fmt.Sprintf("function id %q belongs to app %q; remove that app first (cairn apps rm %s)", def.ID, fn.AppID, fn.AppID)
		}
	}
	return ""
}

// applyAppRemoved deletes an app and the functions it still owns.
func (t *txn) applyAppRemoved(r *AppRemoved) Result {
	var app App
	if !t.get(keyApp(r.AppID), &app) {
		return Result{Code: NotFound, ID: r.AppID, Msg: "no such app"}
	}
	if t.synced != nil {
		*t.synced = true // functions change: bypass the function cache
	}
	for _, id := range app.Functions {
		if fn := t.functionOrNil(id); fn != nil && fn.AppID == r.AppID {
			t.deleteFunction(id)
		}
	}
	t.del(keyApp(r.AppID))
	return Result{Code: OK, ID: r.AppID, Modified: true}
}

func (t *txn) deleteFunction(id string) {
	var fn Function
	if !t.get(keyFn(id), &fn) {
		return
	}
	for _, trg := range fn.Triggers {
		if trg.Event != "" {
			t.del(keyTrigger(trg.Event, id))
		}
	}
	t.del(keyFn(id))
	t.del(keyCronFn(id))
}

// applyEventAccepted accepts an event from a client (see acceptEvent).
//   - A user-supplied id seen within 24 h is a Duplicate of the first event.
func (t *txn) applyEventAccepted(r *EventAccepted) Result {
	if t.has(keyEvent(r.ID)) {
		return Result{Code: Duplicate, ID: r.ID, Msg: "event id already accepted"}
	}
	if r.IdemKey != "" {
		var prev idempotency
		if t.get(keyIdem(r.IdemKey), &prev) && r.At-prev.At < IdempotencyWindowMs {
			return Result{Code: Duplicate, ID: prev.EventID, Msg: "event id seen in the last 24h"}
		}
		t.put(keyIdem(r.IdemKey), &idempotency{EventID: r.ID, At: r.At})
	}
	if r.By != "" || r.ReplayedFrom != "" {
		t.put(keyEventOrigin(r.ID), &EventOrigin{By: r.By, ReplayedFrom: r.ReplayedFrom})
	}
	return t.acceptEvent(r.At, r.ID, r.Name, r.JSON)
}

// runID derives a ULID from the event and function: time-ordered by
// acceptance, unique per (event, function), and the same on every replica.
func runID(eventID, fnID string, at int64) string {
	h := sha256.Sum256([]byte(eventID + sep + fnID))
	return ulid.ULID(mustULID(uint64(at), h[:10])).String()
}

func mustULID(ms uint64, entropy []byte) ulid.ULID {
	id, err := ulid.New(ms, bytes.NewReader(entropy))
	if err != nil {
		panic(fmt.Sprintf("fsm: ulid: %v", err))
	}
	return id
}

// applyCallClaimed leases a queued call to the executor.
//   - The run must be running and the call queued with generation r.Gen.
//   - A call is claimable once due: a fresh call at its due time, a claimed
//     one only after its lease ran out (its executor is presumed gone), or
//     at once by a new boot of its node or by a claim that revokes it (the
//     proposer found its claimant gone).
//   - The claim bumps the generation: results of older claims become Stale.
//   - A run's first claim counts its events against its state limit; a run
//     over it fails (InngestErrStateOverflowed) and is not called.
func (t *txn) applyCallClaimed(r *CallClaimed) Result {
	run, c, res := t.loadCall(r.RunID, r.Call, r.Gen)
	if res.Code != OK {
		return res
	}
	if c.IsTimer() {
		return Result{Code: Rejected, ID: r.RunID, Msg: "call is a timer"}
	}
	restarted := c.Claimed && c.Node == r.Node && c.Boot != r.Boot
	revoked := c.Claimed && r.Revoke && r.At < c.Due
	if r.At < c.Due && !restarted && !revoked {
		return Result{Code: Stale, ID: r.RunID, Msg: "call not due"}
	}
	var detail string
	if revoked && !restarted {
		detail = "claim of " + c.Node + " revoked"
	}
	if run.StartedAt == 0 {
		// A run's events are final once it starts (a debounce or a batch
		// changes them until then): they open its state.
		run.StateBytes = 0
		for _, id := range run.EventIDs {
			run.StateBytes += t.size(keyEvent(id))
		}
		if errBody := t.limits().overflow(run.StateBytes, len(run.Stack)); errBody != nil {
			t.finish(run, StatusFailed, r.At, nil, errBody)
			return Result{Code: Rejected, ID: r.RunID, Msg: "the run's events are over its state limit"}
		}
	}
	t.unqueue(c)
	if !c.Claimed && len(run.ConcKeys) > 0 {
		// A fresh claim needs a slot in each concurrency key; a claim that
		// takes over an expired one keeps the slots it holds.
		if full := t.acquire(run); full != "" {
			// Waiters are served oldest run first (less its priority), so a
			// run that has started finishes before newer ones take its key.
			c.Blocked, c.Due = full, run.CreatedAt-run.Priority*1000
			t.addCall(c)
			run.Waiting = "concurrency limit reached"
			t.history(run, HistoryEntry{At: r.At, Type: HistCallWaiting, Call: c.ID, Detail: "concurrency limit reached"})
			return Result{Code: Rejected, ID: r.RunID, Msg: "concurrency limit reached"}
		}
		c.Slots = true
	}
	c.Gen++
	c.Claimed, c.Node, c.Boot = true, r.Node, r.Boot
	c.Due = r.LeaseUntil
	t.addCall(c)
	if run.StartedAt == 0 {
		run.StartedAt = r.At
		t.startTimeouts(run, r.At)
		t.started(run)
	}
	run.Calls++
	t.history(run, HistoryEntry{At: r.At, Type: HistCallClaimed, Call: c.ID, Attempt: c.Attempt, Detail: detail})
	return Result{Code: OK, ID: r.RunID, Gen: c.Gen}
}

// loadCall fetches a running run and one of its calls at generation gen.
func (t *txn) loadCall(runID, callID string, gen uint32) (*Run, *Call, Result) {
	run := t.run(runID)
	if run == nil {
		return nil, nil, Result{Code: NotFound, ID: runID, Msg: "no such run"}
	}
	if run.Done() {
		return run, nil, Result{Code: Rejected, ID: runID, Msg: "run is " + run.Status}
	}
	c := &Call{}
	if !t.get(keyCall(runID, callID), c) {
		return run, nil, Result{Code: Stale, ID: runID, Msg: "call no longer queued"}
	}
	if c.Gen != gen {
		return run, nil, Result{Code: Stale, ID: runID, Msg: "superseded claim"}
	}
	return run, c, Result{Code: OK}
}

// applyCallFinished interprets the app's answer to a claimed call.
//   - Only the answer to the current claim counts; others are Stale and are
//     kept in the history.
//   - 200 from the SDK completes the run with the body as output.
//   - 206 ops are processed in order (processOps).
//   - X-Inngest-No-Retry: true fails the run; any other failure is retried
//     with exponential backoff (or Retry-After) until attempts run out.
//   - Values over the step output limit are screened out first
//     (ScreenAnswer): the step fails, or the run when it is its result.
func (t *txn) applyCallFinished(r *CallFinished) Result {
	run, c, res := t.loadCall(r.RunID, r.Call, r.Gen)
	if res.Code == OK && !c.Claimed {
		res = Result{Code: Stale, ID: r.RunID, Msg: "call not claimed"}
	}
	if res.Code != OK {
		if run != nil {
			t.history(run, HistoryEntry{At: r.At, Type: HistResult(res.Code), Call: r.Call, Detail: res.Msg})
		}
		return res
	}
	if r.Version != 0 {
		run.Version = r.Version
	}
	ScreenAnswer(r, t.limits())
	fn := t.function(run.FnID)
	switch {
	case len(r.Fail) > 0:
		t.finish(run, StatusFailed, r.At, nil, r.Fail)
	case r.SDK && r.Status == 200:
		t.finish(run, StatusCompleted, r.At, orNull(r.Body), nil)
	case r.SDK && r.Status == 206:
		t.processOps(run, c, fn, r)
	case r.NoRetry != nil && *r.NoRetry:
		t.finish(run, StatusFailed, r.At, nil, errorBody(r))
	default:
		t.retryOrFail(run, c, fn, r, errorBody(r))
	}
	return Result{Code: OK, ID: r.RunID}
}

// processOps applies the opcodes of a 206 response (protocol §6.2).
func (t *txn) processOps(run *Run, c *Call, fn *Function, r *CallFinished) {
	if len(r.Ops) > 1 {
		run.ForcePlan = true
	}
	memoized, retrying := false, false
	for _, op := range waitsFirst(r.Ops) {
		h := HistoryEntry{At: r.At, Call: c.ID, Attempt: c.Attempt, Name: op.DisplayName}
		switch op.Op {
		case OpStepRun, OpStep:
			fresh, ok := t.memoizeStep(run, op, &h)
			if !ok {
				return
			}
			if !fresh {
				t.history(run, h)
				continue
			}
			memoized = true
		case OpStepError:
			if c.Attempt+1 < fn.MaxAttempts() {
				h.Type, h.Detail, h.Data = HistStepErrored, op.ID, op.Error
				t.history(run, h)
				t.reschedule(c, r)
				retrying = true
				continue
			}
			fallthrough
		case OpStepFailed:
			if t.has(keyStep(run.ID, op.ID)) {
				h.Type, h.Detail = HistStepDuplicate, op.ID
				t.history(run, h)
				continue
			}
			if !t.memoize(run, op.ID, wrap("error", op.Error)) {
				return
			}
			h.Type, h.Detail, h.Data = HistStepFailed, op.ID, op.Error
			memoized = true
		case OpStepPlanned:
			if t.has(keyStep(run.ID, op.ID)) || t.has(keyCall(run.ID, op.ID)) {
				continue
			}
			if planOpt(op.Opts, "parallelMode") == "race" {
				run.Race = true
			}
			t.addCall(&Call{RunID: run.ID, ID: op.ID, Type: CallHTTP, Due: r.At})
			h.Type, h.Detail = HistStepPlanned, op.ID
		case OpSleep:
			if t.has(keyStep(run.ID, op.ID)) || t.has(keyCall(run.ID, op.ID)) {
				continue // reported again: its timer keeps its wake-up
			}
			until, err := sleepUntil(r.At, op)
			if err != nil {
				t.finish(run, StatusFailed, r.At, nil, errJSON("InvalidSleep", err.Error()))
				return
			}
			t.addCall(&Call{RunID: run.ID, ID: op.ID, Type: CallSleep, Due: until})
			h.Type, h.Detail = HistStepSleeping, fmt.Sprintf("%s until %d", op.ID, until)
		case OpWaitForEvent, OpWaitForSignal:
			if t.has(keyStep(run.ID, op.ID)) || t.has(keyCall(run.ID, op.ID)) {
				continue
			}
			add, what := t.addWaitForEvent, HistWaitingEvent
			if op.Op == OpWaitForSignal {
				add, what = t.addWaitForSignal, HistWaitingSignal
			}
			if err := add(run, r.At, op); err != nil {
				t.finish(run, StatusFailed, r.At, nil, errJSON("Invalid"+op.Op, err.Error()))
				return
			}
			h.Type, h.Detail, h.Data = what, op.ID, op.Opts
		case OpInvokeFunction:
			if t.has(keyStep(run.ID, op.ID)) || t.has(keyCall(run.ID, op.ID)) {
				continue
			}
			memo, err := t.addInvoke(run, r.At, op)
			if err != nil {
				t.finish(run, StatusFailed, r.At, nil, errJSON("InvalidInvoke", err.Error()))
				return
			}
			h.Type, h.Detail, h.Data = HistInvoking, op.ID, op.Opts
			if memo != nil {
				if !t.memoize(run, op.ID, memo) {
					return
				}
				h.Type, h.Data, memoized = HistInvokeFailed, memo, true
			}
		case OpRunComplete:
			t.finish(run, StatusCompleted, r.At, orNull(op.Data), nil)
			return
		case OpNone, "":
			continue
		default:
			t.finish(run, StatusFailed, r.At, nil, errJSON("UnsupportedOpcode",
				fmt.Sprintf("opcode %s (step %q) is not supported by this Cairn server", op.Op, op.DisplayName)))
			return
		}
		if run.Done() {
			// An event the op emitted ended the run (a cancelOn on
			// inngest/function.invoked): finish dropped its calls, c too.
			return
		}
		t.history(run, h)
	}
	if !retrying {
		t.delCall(c)
	}
	t.afterStep(run, r.At, memoized, len(r.Ops) == 0 && !retrying)
}

// afterStep decides what comes next once a call or timer is done: wait for
// outstanding parallel work, or ask the app what to do next (discovery).
func (t *txn) afterStep(run *Run, at int64, memoized, empty bool) {
	if run.Done() {
		return
	}
	outstanding := t.countCalls(run.ID)
	switch {
	case empty && outstanding == 0:
		t.finish(run, StatusFailed, at, nil, errJSON("NoProgress", "the app returned no ops and no step is pending"))
	case outstanding == 0 || (memoized && run.Race):
		// Nothing left in flight (or a race step finished): ask the app
		// what comes next. This also covers answers that only repeated a
		// step already memoized, which must not leave the run stalled.
		// With nothing outstanding there is no discovery call either: no
		// need to look for one.
		if outstanding == 0 {
			run.ForcePlan, run.Race = false, false
		}
		if outstanding == 0 || !t.has(keyCall(run.ID, DiscoveryCall)) {
			t.addCall(&Call{RunID: run.ID, ID: DiscoveryCall, Type: CallHTTP, Due: at})
		}
	}
}

func (t *txn) retryOrFail(run *Run, c *Call, fn *Function, r *CallFinished, errBody []byte) {
	if c.Attempt+1 >= fn.MaxAttempts() {
		t.finish(run, StatusFailed, r.At, nil, errBody)
		return
	}
	t.history(run, HistoryEntry{At: r.At, Type: HistCallErrored, Call: c.ID, Attempt: c.Attempt, Data: errBody,
		Detail: fmt.Sprintf("status %d", r.Status)})
	t.reschedule(c, r)
}

// reschedule queues the same call again for its next attempt.
func (t *txn) reschedule(c *Call, r *CallFinished) {
	t.delCall(c) // frees its concurrency slots while it waits to retry
	c.Attempt++
	c.Claimed, c.Node, c.Boot = false, "", ""
	c.Due = retryAt(r.At, c.Attempt, r.Jitter, r.RetryAt)
	t.addCall(c)
}

// Backoff: 1 s doubling per attempt, capped at 10 minutes, with ±25 %
// jitter from the record. Retry-After wins when given, clamped to [1 s, 24 h].
const (
	backoffBaseMs = 1000
	backoffMaxMs  = 10 * 60 * 1000
)

func retryAt(at int64, attempt int, jitter uint32, retryAfter int64) int64 {
	if retryAfter > 0 {
		return min(max(retryAfter, at+1000), at+24*60*60*1000)
	}
	d := int64(backoffBaseMs)
	for i := 1; i < attempt && d < backoffMaxMs; i++ {
		d *= 2
	}
	d = min(d, backoffMaxMs)
	return at + d*int64(750+jitter%501)/1000
}

// applyTimerFired ends a timer: a sleep (value null), a wait that timed
// out (null; an invoke gets a timeout error), or a run-level timeout
// (cancels the run). It is ignored if the timer is not yet due or no longer
// armed, so a sleep never ends early and never ends twice.
func (t *txn) applyTimerFired(r *TimerFired) Result {
	run, c, res := t.loadCall(r.RunID, r.Call, r.Gen)
	if res.Code != OK {
		return res
	}
	if !c.IsTimer() {
		return Result{Code: Rejected, ID: r.RunID, Msg: "call is not a timer"}
	}
	if r.At < c.Due {
		return Result{Code: Stale, ID: r.RunID, Msg: "timer not due"}
	}
	switch c.Type {
	case CallSleep:
		t.resume(run, c, r.At, []byte("null"), HistStepWoke)
	case CallWait, CallSignal:
		t.resume(run, c, r.At, []byte("null"), HistWaitTimeout)
	case CallInvoke:
		t.resume(run, c, r.At, []byte(`{"error":{"name":"InngestInvokeTimeoutError","message":"Timed out waiting for invoked function to complete"}}`), HistInvokeTimeout)
	case CallTimeout:
		which := "timeouts.start"
		if c.ID == timeoutFinishCall {
			which = "timeouts.finish"
		}
		t.finish(run, StatusCancelled, r.At, nil, errJSON("FunctionTimeoutError", "the run exceeded "+which))
	}
	return Result{Code: OK, ID: r.RunID}
}

// startTimeouts runs when a run is first called: the start timeout is met,
// the finish timeout starts counting.
func (t *txn) startTimeouts(run *Run, at int64) {
	c := &Call{}
	if t.get(keyCall(run.ID, timeoutStartCall), c) {
		t.delCall(c)
	}
	if fn := t.functionOrNil(run.FnID); fn != nil && fn.FinishTimeoutMs > 0 {
		t.putCall(&Call{RunID: run.ID, ID: timeoutFinishCall, Type: CallTimeout, Due: at + fn.FinishTimeoutMs})
	}
}

// applyCancelRequested stops a running run: no further app calls.
func (t *txn) applyCancelRequested(r *CancelRequested) Result {
	run := t.run(r.RunID)
	if run == nil {
		return Result{Code: NotFound, ID: r.RunID, Msg: "no such run"}
	}
	if run.Done() {
		return Result{Code: Rejected, ID: r.RunID, Msg: "run is already " + run.Status}
	}
	reason := r.Reason
	if reason == "" {
		reason = "cancelled by request"
	}
	t.finish(run, StatusCancelled, r.At, nil, errJSON("RunCancelled", reason))
	return Result{Code: OK, ID: r.RunID}
}

// finish ends a run and drops its queued calls.
func (t *txn) finish(run *Run, status string, at int64, output, errBody []byte) {
	var calls []Call
	if ids, ok := t.runCalls(run.ID); ok {
		for _, id := range ids {
			var c Call
			if !t.get(keyCall(run.ID, id), &c) {
				panic(fmt.Sprintf("fsm: run %s: prefetched call %q is not stored", run.ID, id))
			}
			calls = append(calls, c)
		}
	} else {
		t.scan(prefixCalls(run.ID), func(_, v []byte) bool {
			var c Call
			mustUnmarshal(v, &c)
			calls = append(calls, c)
			return true
		})
	}
	for i := range calls {
		t.delCall(&calls[i])
	}
	for _, k := range run.CancelKeys {
		t.del([]byte(k))
	}
	t.del(keyActive(run.FnID, run.ID))
	t.ended(run)
	run.Status, run.EndedAt, run.Output, run.Error = status, at, output, errBody
	run.ForcePlan, run.Race, run.CancelKeys = false, false, nil
	data := output
	if status != StatusCompleted {
		data = errBody
	}
	t.history(run, HistoryEntry{At: at, Type: HistRunEnded(status), Data: data})
	t.finalized(run, at)
}

// memoizeStep memoizes a finished step (an answer's or a checkpoint's) and
// fills in its history line: completed, or duplicate for a step memoized
// already (an SDK's retry changes nothing). ok is false when the value took
// the run past its limits: memoize has failed the run.
func (t *txn) memoizeStep(run *Run, op Op, h *HistoryEntry) (fresh, ok bool) {
	if t.has(keyStep(run.ID, op.ID)) {
		h.Type, h.Detail = HistStepDuplicate, op.ID
		return false, true
	}
	if !t.memoize(run, op.ID, wrap("data", op.Data)) {
		return false, false
	}
	h.Type, h.Detail, h.Data = HistStepCompleted, op.ID, orNull(op.Data)
	return true, true
}

// memoize stores a step's value and reports whether the run goes on: a
// value that would take the run past its limits fails it instead.
func (t *txn) memoize(run *Run, stepID string, value []byte) bool {
	if errBody := t.limits().overflow(run.StateBytes+int64(len(value)), len(run.Stack)+1); errBody != nil {
		t.finish(run, StatusFailed, t.at, nil, errBody)
		return false
	}
	t.putRaw(keyStep(run.ID, stepID), value)
	run.Stack = append(run.Stack, stepID)
	run.StateBytes += int64(len(value))
	return true
}

func (t *txn) history(run *Run, h HistoryEntry) {
	h.By = t.by
	run.HistSeq++
	h.Seq, h.Index = run.HistSeq, t.index
	t.put(keyHistory(run.ID, h.Seq), &h)
}

// putCall stores a call and queues it: blocked on a concurrency key (cw/),
// claimed (lq/) or waiting to be (qt/ for a timer, its function's qf/). A
// call stored already leaves its old queue entry first, since the entry's
// key holds the due time and an entry left behind would never be deleted.
func (t *txn) putCall(c *Call) {
	if old := (&Call{}); t.get(keyCall(c.RunID, c.ID), old) {
		t.unqueue(old)
	}
	t.addCall(c)
}

// addCall is putCall for a call with nothing stored under its id: a new
// one, or one just taken out (unqueue, delCall) to be put back changed.
func (t *txn) addCall(c *Call) {
	t.put(keyCall(c.RunID, c.ID), c)
	if c.Blocked != "" {
		t.putRaw(keyConcWait(c.Blocked, c.Due, c.RunID, c.ID), nil)
		return
	}
	fn := t.queueFn(c)
	if !c.Claimed {
		t.due.Lower(c.IsTimer(), fn, c.Due)
		if !c.IsTimer() {
			cp := *c
			t.fresh = append(t.fresh, &cp)
		}
	}
	t.putRaw(keyCallQueue(c, fn), nil)
}

// queueFn is the function whose queue holds c while it waits unclaimed
// (its run's; "" for timers and claimed calls, which need none).
func (t *txn) queueFn(c *Call) string {
	if c.Claimed || c.IsTimer() {
		return ""
	}
	if run := t.run(c.RunID); run != nil {
		return run.FnID
	}
	return ""
}

// unqueue removes a call and its queue entries, to put it back changed.
func (t *txn) unqueue(c *Call) {
	t.del(keyCall(c.RunID, c.ID))
	if c.Blocked != "" {
		t.del(keyConcWait(c.Blocked, c.Due, c.RunID, c.ID))
		return
	}
	t.del(keyCallQueue(c, t.queueFn(c)))
}

// delCall ends a call: out of the queues and indexes, its concurrency
// slots handed on.
func (t *txn) delCall(c *Call) {
	t.unqueue(c)
	t.release(c)
	switch c.Type {
	case CallWait:
		t.del(keyWait(c.Event, c.RunID, c.ID))
	case CallSignal:
		if string(t.getRaw(keySignal(c.Signal))) == c.RunID+sep+c.ID {
			t.del(keySignal(c.Signal))
		}
	case CallInvoke:
		t.del(keyInvoke(c.Corr))
	}
}

// countCalls counts a run's outstanding steps (run-level timeouts aside).
func (t *txn) countCalls(runID string) int {
	n := 0
	if t.pre != nil {
		if ids, ok := t.pre.calls[runID]; ok {
			for id := range ids {
				if !strings.HasPrefix(id, "$") {
					n++
				}
			}
			return n
		}
	}
	p := prefixCalls(runID)
	t.scan(p, func(k, _ []byte) bool {
		if k[len(p)] != '$' {
			n++
		}
		return true
	})
	return n
}

// functionOrNil returns a registered function, or nil. Callers must not
// modify it: it may be shared through the function cache.
func (t *txn) functionOrNil(id string) *Function {
	if id == "" {
		return nil
	}
	useCache := t.fns != nil && !*t.synced
	var gen uint64
	if useCache {
		var fn *Function
		if fn, gen = t.fns.get(id); fn != nil {
			return fn
		}
	}
	fn := &Function{}
	if !t.get(keyFn(id), fn) {
		return nil
	}
	if useCache {
		t.fns.put(id, fn, gen)
	}
	return fn
}

// function returns the run's function, or a default stand-in if the app
// has since removed it (the run still finishes under default retries).
func (t *txn) function(id string) *Function {
	if fn := t.functionOrNil(id); fn != nil {
		return fn
	}
	return &Function{FunctionDef: FunctionDef{ID: id, Retries: -1}}
}

func orNull(b []byte) []byte {
	if len(bytes.TrimSpace(b)) == 0 {
		return []byte("null")
	}
	return b
}

// wrap builds the memo {"data": v} or {"error": v}.
func wrap(field string, v []byte) []byte {
	out := make([]byte, 0, len(v)+len(field)+5)
	out = append(out, `{"`...)
	out = append(out, field...)
	out = append(out, `":`...)
	out = append(out, orNull(v)...)
	return append(out, '}')
}

func errJSON(name, msg string) []byte {
	b, _ := json.Marshal(map[string]string{"name": name, "message": msg})
	return b
}

// errorBody is the stored error of a failed call: the app's JSON error if
// it sent one, else a description of what went wrong.
func errorBody(r *CallFinished) []byte {
	if len(r.Body) > 0 && json.Valid(r.Body) && r.SDK {
		return r.Body
	}
	msg := r.Err
	if msg == "" {
		msg = fmt.Sprintf("app answered HTTP %d", r.Status)
	}
	return errJSON("CallError", msg)
}

func planOpt(opts []byte, key string) string {
	if len(opts) == 0 {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(opts, &m) != nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}

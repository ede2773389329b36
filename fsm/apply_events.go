package fsm

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"unsafe"

	"github.com/cairn-dev/cairn/expr"
)

// Internal event names (protocol §7.6, §7.8, §7.9).
const (
	EventInvoked   = "inngest/function.invoked"
	EventFinished  = "inngest/function.finished"
	EventFailed    = "inngest/function.failed"
	EventCancelled = "inngest/function.cancelled"
	EventCron      = "inngest/scheduled.timer"
)

// acceptEvent is everything an event does, whether a client sent it or the
// engine emitted it, in this order:
//   - An event id already stored is a Duplicate (SDK retries reuse the seed).
//   - It resumes every waitForEvent pause on its name whose condition holds.
//   - It cancels every run with a matching cancelOn condition.
//   - It starts one run per function it triggers (trigger "if" filters,
//     function idempotency keys); an invocation event starts exactly the
//     function it names.
func (t *txn) acceptEvent(at int64, id, name string, js []byte) Result {
	if t.has(keyEvent(id)) {
		return Result{Code: Duplicate, ID: id, Msg: "event id already accepted"}
	}
	t.putRaw(keyEvent(id), js)
	t.matchWaits(at, name, js)
	t.matchCancels(at, name, js)
	res := Result{Code: OK, ID: id}
	if name == EventInvoked {
		var ev struct {
			Data struct {
				Inngest struct {
					FnID string `json:"fn_id"`
					Corr string `json:"correlation_id"`
				} `json:"_inngest"`
			} `json:"data"`
		}
		json.Unmarshal(js, &ev)
		if fn := t.functionOrNil(ev.Data.Inngest.FnID); fn != nil {
			if run := t.startRun(fn, at, []eventRef{{id, name, js}}, ev.Data.Inngest.Corr, at, ""); run != nil {
				res.Runs = append(res.Runs, run.ID)
			}
		}
		return res
	}
	for _, fnID := range t.triggered(name) {
		fn := t.functionOrNil(fnID)
		if fn == nil || !t.triggerMatches(fn, name, js) {
			continue
		}
		if run := t.admit(fn, at, eventRef{id, name, js}); run != nil {
			res.Runs = append(res.Runs, run.ID)
		}
	}
	return res
}

// triggered lists the functions with a trigger on the event name.
func (t *txn) triggered(name string) []string {
	var fnIDs []string
	prefix := prefixTrigger(name)
	t.scan(prefix, func(k, _ []byte) bool {
		fnIDs = append(fnIDs, string(k[len(prefix):]))
		return true
	})
	return fnIDs
}

// triggerMatches reports whether one of fn's triggers on name accepts the
// event. A condition that fails to evaluate does not match.
func (t *txn) triggerMatches(fn *Function, name string, js []byte) bool {
	for _, trg := range fn.Triggers {
		if trg.Event == name && t.match(trg.Expression, js, nil) {
			return true
		}
	}
	return false
}

// startRun creates a run of fn for its events, its first call due at
// `due` (later if a throttle says so), or returns nil when the function's
// idempotency key already started a run in the last 24 h. `waiting` says
// why it does not start at once (debounce, batch).
func (t *txn) startRun(fn *Function, at int64, evs []eventRef, corr string, due int64, waiting string) *Run {
	first := evs[0]
	if fn.Idempotency != "" {
		key, err := t.evalKey(fn.Idempotency, first.JSON)
		if err == nil {
			var prev idempotency
			if t.get(keyFnIdem(fn.ID, key), &prev) && at-prev.At < IdempotencyWindowMs {
				return nil
			}
			t.put(keyFnIdem(fn.ID, key), &idempotency{EventID: first.ID, At: at})
		}
	}
	return t.newRun(fn, runID(first.ID, fn.ID, at), at, evs, corr, due, waiting)
}

// newRun creates run id of fn for its events, past admission (idempotency,
// rate limits and the like), or returns nil if a run with that id exists.
func (t *txn) newRun(fn *Function, id string, at int64, evs []eventRef, corr string, due int64, waiting string) *Run {
	first := evs[0]
	run := &Run{
		ID: id, FnID: fn.ID, AppID: fn.AppID,
		Status: StatusRunning, CreatedAt: at, Version: -1, Corr: corr, Waiting: waiting,
	}
	if t.run(run.ID) != nil {
		return nil // the same event cannot start the same function twice
	}
	t.addRun(run)
	for _, ev := range evs {
		run.EventIDs = append(run.EventIDs, ev.ID)
		t.putRaw(keyEventRun(ev.ID, run.ID), nil)
	}
	t.putRaw(keyActive(fn.ID, run.ID), nil)
	t.putRaw(keyFnRun(fn.ID, at, run.ID), nil)
	t.history(run, HistoryEntry{At: at, Type: HistRunScheduled, Name: first.Name, Detail: "event " + first.ID})
	for i, c := range fn.Cancel {
		entry := cancelEntry{If: c.If}
		if c.TimeoutMs > 0 {
			entry.Expires = at + c.TimeoutMs
		}
		k := keyCancelOn(c.Event, run.ID, i)
		t.put(k, &entry)
		run.CancelKeys = append(run.CancelKeys, string(k))
	}
	due = t.setupFlow(fn, run, at, due, first.JSON)
	if fn.StartTimeoutMs > 0 {
		t.putCall(&Call{RunID: run.ID, ID: timeoutStartCall, Type: CallTimeout, Due: at + fn.StartTimeoutMs})
	}
	t.putCall(&Call{RunID: run.ID, ID: DiscoveryCall, Type: CallHTTP, Due: due})
	return run
}

// cancelEntry is one cancelOn condition of one run.
type cancelEntry struct {
	If      string `msgpack:"if,omitempty"`
	Expires int64  `msgpack:"exp,omitempty"` // 0: until the run ends
}

// evalKey evaluates a key expression (idempotency, flow-control keys) to a
// string.
func (t *txn) evalKey(src string, js []byte) (string, error) {
	v, err := t.eval(src, js)
	if err != nil {
		return "", err
	}
	return fmt.Sprint(v), nil
}

// eval evaluates an expression over one event.
func (t *txn) eval(src string, js []byte) (any, error) {
	p, err := expr.Compile(src)
	if err != nil {
		return nil, err
	}
	ev, err := t.event(js)
	if err != nil {
		return nil, err
	}
	return p.Eval(expr.VarsOf(ev, nil))
}

// match evaluates a condition over the run's event and a new one (async);
// an empty one matches, one that fails to evaluate does not.
func (t *txn) match(src string, event, async []byte) bool {
	if src == "" {
		return true
	}
	p, err := expr.Compile(src)
	if err != nil {
		return false
	}
	ev, err := t.event(event)
	if err != nil {
		return false
	}
	as, err := t.event(async)
	if err != nil {
		return false
	}
	ok, err := p.Bool(expr.VarsOf(ev, as))
	return err == nil && ok
}

// event decodes an event's JSON for expressions once per entry, however
// many expressions read it (trigger conditions, flow keys, batch
// conditions, waits, cancels): the same bytes give the same decoded value.
func (t *txn) event(js []byte) (any, error) {
	if len(js) == 0 {
		return nil, nil
	}
	k := docKey{unsafe.SliceData(js), len(js)}
	if d, ok := t.docs[k]; ok {
		return d.v, d.err
	}
	v, err := expr.Decode(js)
	if t.docs == nil {
		t.docs = map[docKey]decoded{}
	}
	t.docs[k] = decoded{v, err}
	return v, err
}

// docKey names an event's bytes by where they are: Apply never changes an
// event's bytes, so the same place holds the same event.
type docKey struct {
	p *byte
	n int
}

type decoded struct {
	v   any
	err error
}

// runEvent returns the JSON of a run's triggering event (the CEL `event`).
func (t *txn) runEvent(run *Run) []byte {
	if len(run.EventIDs) == 0 {
		return nil
	}
	return t.getRaw(keyEvent(run.EventIDs[0]))
}

// matchWaits resumes the waitForEvent pauses on this event name whose
// condition holds, with the whole event as the step's value.
func (t *txn) matchWaits(at int64, name string, js []byte) {
	type ref struct{ run, call string }
	var refs []ref
	prefix := prefixWaits(name)
	t.scan(prefix, func(k, _ []byte) bool {
		run, call, _ := strings.Cut(string(k[len(prefix):]), sep)
		refs = append(refs, ref{run, call})
		return true
	})
	for _, r := range refs {
		run := t.run(r.run)
		c := &Call{}
		if run == nil || run.Done() || !t.get(keyCall(r.run, r.call), c) || c.Type != CallWait {
			t.del(keyWait(name, r.run, r.call))
			continue
		}
		if !t.match(c.If, t.runEvent(run), js) {
			continue
		}
		t.resume(run, c, at, js, HistEventReceived)
	}
}

// matchCancels cancels the runs whose cancelOn condition this event meets.
func (t *txn) matchCancels(at int64, name string, js []byte) {
	type ref struct {
		key   []byte
		run   string
		entry cancelEntry
	}
	var refs []ref
	prefix := prefixCancelOn(name)
	t.scan(prefix, func(k, v []byte) bool {
		run, _, _ := strings.Cut(string(k[len(prefix):]), sep)
		r := ref{key: append([]byte(nil), k...), run: run}
		mustUnmarshal(v, &r.entry)
		refs = append(refs, r)
		return true
	})
	for _, r := range refs {
		run := t.run(r.run)
		if run == nil || run.Done() || (r.entry.Expires > 0 && at > r.entry.Expires) {
			t.del(r.key)
			continue
		}
		if !t.match(r.entry.If, t.runEvent(run), js) {
			continue
		}
		t.finish(run, StatusCancelled, at, nil, errJSON("RunCancelled", "cancelled by event "+name))
	}
}

// resume ends a waiting call with a value, then lets the run go on.
func (t *txn) resume(run *Run, c *Call, at int64, value []byte, what string) {
	t.delCall(c)
	if !t.memoize(run, c.ID, value) {
		return
	}
	t.history(run, HistoryEntry{At: at, Type: what, Detail: c.ID, Data: value})
	t.afterStep(run, at, true, false)
}

// hasConsumers reports whether anything would react to an event name, so
// that the engine emits its internal events only when they matter.
func (t *txn) hasConsumers(name string) bool {
	found := false
	for _, p := range [][]byte{prefixTrigger(name), prefixWaits(name), prefixCancelOn(name)} {
		t.scan(p, func(_, _ []byte) bool { found = true; return false })
		if found {
			return true
		}
	}
	return false
}

// internalEventID derives the id of an event the engine emits.
func internalEventID(at int64, seed string) string {
	h := sha256.Sum256([]byte(seed))
	return mustULID(uint64(at), h[:10]).String()
}

// emit accepts an event that the engine itself produces. It returns the
// encoding error, if any, rather than store an empty event; callers pass
// raw values through rawJSON so that there is none.
func (t *txn) emit(at int64, seed, name string, data any) error {
	id := internalEventID(at, seed)
	js, err := json.Marshal(map[string]any{"name": name, "data": data, "id": id, "ts": at, "user": map[string]any{}})
	if err != nil {
		return fmt.Errorf("encode event %s: %w", name, err)
	}
	t.acceptEvent(at, id, name, js)
	return nil
}

// rawJSON embeds b in an event as is when it is JSON (null when empty),
// else as a JSON string: an app's result need not be valid JSON, and an
// invalid json.RawMessage would fail the whole event's encoding.
func rawJSON(b []byte) json.RawMessage {
	b = orNull(b)
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b)) // a string always encodes
	return s
}

// finalized runs what follows a run's end: its invoking parent resumes,
// and inngest/function.finished/failed/cancelled go out to whoever listens.
func (t *txn) finalized(run *Run, at int64) {
	if run.Corr != "" {
		memo := wrap("data", run.Output)
		if run.Status != StatusCompleted {
			memo = wrap("error", run.Error)
		}
		t.resumeInvoke(at, run.Corr, memo)
	}
	names := []string{EventFinished}
	switch run.Status {
	case StatusFailed:
		names = append(names, EventFailed)
	case StatusCancelled:
		names = append(names, EventCancelled)
	}
	for _, name := range names {
		if !t.hasConsumers(name) {
			continue
		}
		data := map[string]any{"function_id": run.FnID, "run_id": run.ID}
		var events []json.RawMessage
		for _, id := range run.EventIDs {
			if ev := t.getRaw(keyEvent(id)); ev != nil {
				events = append(events, rawJSON(ev))
			}
		}
		if len(events) > 0 {
			data["event"], data["events"] = events[0], events
		}
		if run.Status == StatusCompleted {
			data["result"] = rawJSON(run.Output)
		} else {
			data["error"] = rawJSON(run.Error)
		}
		if run.Corr != "" {
			data["correlation_id"] = run.Corr
		}
		if err := t.emit(at, run.ID+"/"+name, name, data); err != nil {
			t.history(run, HistoryEntry{At: at, Type: HistEventDropped, Detail: err.Error()})
		}
	}
}

// resumeInvoke hands a child run's outcome to the invoke step waiting for it.
func (t *txn) resumeInvoke(at int64, corr string, memo []byte) {
	ref := t.getRaw(keyInvoke(corr))
	if ref == nil {
		return // timed out already, or the parent ended
	}
	runID, callID, _ := strings.Cut(string(ref), sep)
	run, c := t.run(runID), &Call{}
	if run == nil || run.Done() || !t.get(keyCall(runID, callID), c) || c.Type != CallInvoke {
		t.del(keyInvoke(corr))
		return
	}
	t.resume(run, c, at, memo, HistInvokeDone)
}

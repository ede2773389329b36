package fsm

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/expr"
)

// defaultInvokeTimeoutMs is how long step.invoke waits without a timeout.
const defaultInvokeTimeoutMs = 365 * 24 * 60 * 60 * 1000

// waitsFirst orders ops so that pauses are registered before the other ops
// of the same response are processed (protocol §6.2): a [WaitForEvent,
// sendEvent] pair cannot miss its reply.
func waitsFirst(ops []Op) []Op {
	out := append([]Op(nil), ops...)
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Op == OpWaitForEvent && out[j].Op != OpWaitForEvent
	})
	return out
}

// waitTimeout computes when a wait ends from its opts.timeout: a time
// string or a date; an empty one expires at once.
func waitTimeout(at int64, timeout string, def int64) (int64, error) {
	if timeout == "" {
		if def > 0 {
			return at + def, nil
		}
		return at, nil
	}
	if len(timeout) >= 10 {
		if ts, err := time.Parse(time.RFC3339Nano, timeout); err == nil {
			return max(ts.UnixMilli(), at), nil
		}
	}
	ms, err := ParseDurationMs(timeout)
	if err != nil {
		return 0, fmt.Errorf("timeout %q: %w", timeout, err)
	}
	return at + ms, nil
}

// addWaitForEvent registers a pause: a future event named op.Name (or
// opts.event) for which opts.if holds resumes the step.
func (t *txn) addWaitForEvent(run *Run, at int64, op Op) error {
	event := planOpt(op.Opts, "event")
	if event == "" {
		event = op.Name
	}
	cond := planOpt(op.Opts, "if")
	if cond != "" {
		if _, err := expr.Compile(cond); err != nil {
			return err
		}
	}
	due, err := waitTimeout(at, planOpt(op.Opts, "timeout"), 0)
	if err != nil {
		return err
	}
	t.putCall(&Call{RunID: run.ID, ID: op.ID, Type: CallWait, Event: event, If: cond, Due: due})
	t.putRaw(keyWait(event, run.ID, op.ID), nil)
	return nil
}

// addWaitForSignal registers the one wait for a signal name. A second wait
// for the same signal fails its run, unless it asks to replace the first
// (conflict "replace"), which then only waits for its timeout.
func (t *txn) addWaitForSignal(run *Run, at int64, op Op) error {
	sig := planOpt(op.Opts, "signal")
	if sig == "" {
		sig = op.Name
	}
	if sig == "" {
		return fmt.Errorf("waitForSignal without a signal name")
	}
	if ref := t.getRaw(keySignal(sig)); ref != nil && planOpt(op.Opts, "conflict") != "replace" {
		holder, _, _ := strings.Cut(string(ref), sep)
		if other := t.run(holder); other != nil && !other.Done() {
			return fmt.Errorf("signal %q is already awaited by run %s", sig, holder)
		}
	}
	due, err := waitTimeout(at, planOpt(op.Opts, "timeout"), 0)
	if err != nil {
		return err
	}
	t.putCall(&Call{RunID: run.ID, ID: op.ID, Type: CallSignal, Signal: sig, Due: due})
	t.putRaw(keySignal(sig), []byte(run.ID+sep+op.ID))
	return nil
}

// invokeOpts is InvokeFunction's opts.
type invokeOpts struct {
	FunctionID string `json:"function_id"`
	Payload    struct {
		Data json.RawMessage `json:"data"`
		V    string          `json:"v"`
	} `json:"payload"`
	Timeout string `json:"timeout"`
}

// addInvoke starts a child run of opts.function_id and pauses the step
// until the child ends or the timeout passes (protocol §7.6). It returns
// the memo to store at once when the child cannot start.
func (t *txn) addInvoke(run *Run, at int64, op Op) ([]byte, error) {
	var o invokeOpts
	if err := json.Unmarshal(op.Opts, &o); err != nil || o.FunctionID == "" {
		return nil, fmt.Errorf("invoke without a function_id")
	}
	fn := t.functionOrNil(o.FunctionID)
	if fn == nil {
		return wrap("error", errJSON("Error", fmt.Sprintf("could not find function %q to invoke", o.FunctionID))), nil
	}
	due, err := waitTimeout(at, o.Timeout, defaultInvokeTimeoutMs)
	if err != nil {
		return nil, err
	}
	corr := run.ID + "." + op.ID
	t.putCall(&Call{RunID: run.ID, ID: op.ID, Type: CallInvoke, Corr: corr, Due: due})
	t.putRaw(keyInvoke(corr), []byte(run.ID+sep+op.ID))

	data := map[string]any{}
	if len(o.Payload.Data) > 0 && string(o.Payload.Data) != "null" {
		if err := json.Unmarshal(o.Payload.Data, &data); err != nil {
			return nil, fmt.Errorf("invoke payload data must be an object: %w", err)
		}
	}
	data["_inngest"] = map[string]any{
		"fn_id": o.FunctionID, "correlation_id": corr, "expire": due, "name": op.DisplayName,
		"source_app_id": run.AppID, "source_fn_id": run.FnID,
	}
	if err := t.emit(at, corr, EventInvoked, data); err != nil {
		return nil, err
	}
	return nil, nil
}

// applySignalReceived resumes the run waiting for the signal with
// {"data": {"signal", "data"}}; NotFound when none waits.
func (t *txn) applySignalReceived(r *SignalReceived) Result {
	ref := t.getRaw(keySignal(r.Signal))
	if ref == nil {
		return Result{Code: NotFound, Msg: fmt.Sprintf("no run is waiting for signal %q", r.Signal)}
	}
	runID, callID, _ := strings.Cut(string(ref), sep)
	run, c := t.run(runID), &Call{}
	if run == nil || run.Done() || !t.get(keyCall(runID, callID), c) || c.Type != CallSignal {
		t.del(keySignal(r.Signal))
		return Result{Code: NotFound, Msg: fmt.Sprintf("no run is waiting for signal %q", r.Signal)}
	}
	sigJSON, _ := json.Marshal(r.Signal)
	memo := []byte(`{"data":{"signal":` + string(sigJSON) + `,"data":` + string(orNull(r.Data)) + `}}`)
	t.resume(run, c, r.At, memo, HistSignalRecv)
	return Result{Code: OK, ID: run.ID}
}

// applyCronFired starts a run for one scheduled time of a cron trigger,
// once: a second record for the same time is a Duplicate.
func (t *txn) applyCronFired(r *CronFired) Result {
	fn := t.functionOrNil(r.FnID)
	if fn == nil {
		return Result{Code: NotFound, Msg: "no such function"}
	}
	has := false
	for _, trg := range fn.Triggers {
		has = has || trg.Cron == r.Cron
	}
	if !has {
		return Result{Code: Rejected, Msg: "function has no such cron trigger"}
	}
	k := keyCronFired(r.FnID, r.ScheduledAt)
	if t.has(k) {
		return Result{Code: Duplicate, Msg: "already fired"}
	}
	t.putRaw(k, nil)
	sched := time.UnixMilli(r.ScheduledAt).UTC().Format(time.RFC3339)
	id := internalEventID(r.ScheduledAt, r.FnID+"/"+sched)
	js, _ := json.Marshal(map[string]any{
		"name": EventCron, "id": id, "ts": r.ScheduledAt, "user": map[string]any{},
		"data": map[string]any{"cron": r.Cron, "scheduledAt": sched, "fireAt": time.UnixMilli(r.At).UTC().Format(time.RFC3339Nano)},
	})
	if t.has(keyEvent(id)) {
		return Result{Code: Duplicate, ID: id}
	}
	t.putRaw(keyEvent(id), js)
	res := Result{Code: OK, ID: id}
	if run := t.admit(fn, r.At, eventRef{id, EventCron, js}); run != nil {
		res.Runs = []string{run.ID}
	}
	return res
}

// cancels reports whether the bulk cancel applies to run: running, and
// created in [From, To]. The API asks the same (BulkCancelMatches) so that
// a cancel matching nothing is never proposed.
func (r *BulkCancel) cancels(run *Run) bool {
	return !run.Done() && run.CreatedAt >= r.From && run.CreatedAt <= r.To
}

// applyBulkCancel cancels a function's running runs created in [From, To].
func (t *txn) applyBulkCancel(r *BulkCancel) Result {
	var ids []string
	p := prefixActive(r.FnID)
	t.scan(p, func(k, _ []byte) bool {
		ids = append(ids, string(k[len(p):]))
		return true
	})
	reason := r.Reason
	if reason == "" {
		reason = "cancelled in bulk"
	}
	res := Result{Code: OK}
	for _, id := range ids {
		run := t.run(id)
		if run == nil || !r.cancels(run) {
			continue
		}
		t.finish(run, StatusCancelled, r.At, nil, errJSON("RunCancelled", reason))
		res.Runs = append(res.Runs, run.ID)
	}
	return res
}

package fsm

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Async checkpointing (protocol §9.1). With ctx.fn_id in a discovery call,
// the SDK runs step after step in the same request and reports each
// finished step.run to the API (StepsCheckpointed), which memoizes it at
// once: were the request to die, the next call already holds the step, so
// its body runs only once. The call answers later, with the next async op,
// an error, or a 206 [RunComplete] at the end: that answer is an ordinary
// CallFinished of the same claim.

// CheckpointOpsError says why steps cannot be checkpointed ("" when they
// can): only finished step.run ops, with an id, within the step output
// limit. Everything else (sleeps, waits, invokes, plans, errors) changes
// what the run waits for and must come as the call's answer, where Apply
// handles it in order; Inngest's server refuses them in /async too.
// Screening an oversized value is left to the answer as well: the SDK
// falls back to a 206 with the steps it could not checkpoint, and the
// executor screens that (ScreenAnswer). The API and Apply both ask this.
func CheckpointOpsError(steps []Op, l Limits) string {
	if len(steps) == 0 {
		return "no steps"
	}
	for i, op := range steps {
		switch {
		case op.Op != OpStepRun && op.Op != OpStep:
			return fmt.Sprintf("step %d (%q) is %s: only %s may be checkpointed, asynchronous ops come as the call's answer", i, op.ID, op.Op, OpStepRun)
		case op.ID == "":
			return fmt.Sprintf("step %d has no id", i)
		case l.StepOutputBytes > 0 && int64(len(op.Data)) > l.StepOutputBytes:
			return fmt.Sprintf("step %d (%q) has an output of %d bytes; the limit is %s", i, op.ID, len(op.Data), SizeText(l.StepOutputBytes))
		}
	}
	return ""
}

// applyStepsCheckpointed memoizes steps reported mid-call.
//   - The run must be running and the call claimed at generation r.Gen:
//     a checkpoint of a superseded dispatch is Stale (the API answers 409,
//     and the SDK gives that dispatch up).
//   - Ops that are not finished steps refuse the whole record (Rejected).
//   - Each step is memoized as a StepRun answer would be; one memoized
//     already is a duplicate (the SDK retries a checkpoint it did not see
//     acknowledged). A value taking the run past its limits fails it.
//   - The call stays claimed; its attempt counter starts again, as
//     Inngest's server resets the queue item's: the steps done so far
//     succeeded, so an error after them is a first attempt.
func (t *txn) applyStepsCheckpointed(r *StepsCheckpointed) Result {
	run, c, res := t.loadCall(r.RunID, r.Call, r.Gen)
	if res.Code == OK && !c.Claimed {
		res = Result{Code: Stale, ID: r.RunID, Msg: "call not claimed"}
	}
	if res.Code == OK {
		if msg := CheckpointOpsError(r.Steps, t.limits()); msg != "" {
			res = Result{Code: Rejected, ID: r.RunID, Msg: msg}
		}
	}
	if res.Code != OK {
		if run != nil {
			t.history(run, HistoryEntry{At: r.At, Type: HistResult(res.Code), Call: r.Call, Detail: res.Msg})
		}
		return res
	}
	for _, op := range r.Steps {
		h := HistoryEntry{At: r.At, Call: c.ID, Attempt: c.Attempt, Name: op.DisplayName}
		if _, ok := t.memoizeStep(run, op, &h); !ok {
			return Result{Code: Rejected, ID: r.RunID, Msg: "the run is over its state limits"}
		}
		t.history(run, h)
	}
	if c.Attempt != 0 {
		c.Attempt = 0
		t.putCall(c)
	}
	return Result{Code: OK, ID: r.RunID}
}

// CheckpointRefusal reports, from the projection, whether a checkpoint
// would be refused and how, so the API answers it without writing it to
// the log. Apply decides again for checkpoints that race a new claim.
// fnUUID, when given, is the ctx.fn_id the SDK echoed: it must name the
// run's function.
func (f *FSM) CheckpointRefusal(r *StepsCheckpointed, fnUUID string) (res Result, refused bool, err error) {
	run, err := f.Run(r.RunID)
	if err != nil || run == nil {
		return Result{Code: NotFound, ID: r.RunID, Msg: "no such run"}, err == nil, err
	}
	if fnUUID != "" && fnUUID != FunctionUUID(run.FnID) {
		return Result{Code: Rejected, ID: r.RunID, Msg: fmt.Sprintf("fn_id %q is not the function of run %s", fnUUID, r.RunID)}, true, nil
	}
	if run.Done() {
		return Result{Code: Stale, ID: r.RunID, Msg: "run is " + run.Status}, true, nil
	}
	call, err := f.Call(r.RunID, r.Call)
	switch {
	case err != nil:
		return Result{}, false, err
	case call == nil:
		return Result{Code: Stale, ID: r.RunID, Msg: "call no longer queued"}, true, nil
	case call.Gen != r.Gen:
		return Result{Code: Stale, ID: r.RunID, Msg: "superseded claim"}, true, nil
	case !call.Claimed:
		return Result{Code: Stale, ID: r.RunID, Msg: "call not claimed"}, true, nil
	}
	l, err := f.Limits()
	if err != nil {
		return Result{}, false, err
	}
	if msg := CheckpointOpsError(r.Steps, l); msg != "" {
		return Result{Code: Rejected, ID: r.RunID, Msg: msg}, true, nil
	}
	return Result{}, false, nil
}

// FunctionUUID is the ctx.fn_id sent to the SDK for a function: its
// presence turns async checkpointing on, and the SDK echoes it in each
// checkpoint. Inngest's server sends the function's UUID; the SDK only
// passes it on, so a name-based one (SHA-1 of the composite id, shaped as
// a version 5 UUID) is stable across syncs and nodes without storing it.
func FunctionUUID(fnID string) string {
	h := sha1.Sum([]byte("cairn function " + fnID))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// QueueItemID is the ctx.qi_id of a claimed call: the SDK echoes it in each
// checkpoint, which names the dispatch it came from (run, call, claim). A
// claim bumps the call's generation, so the id of a superseded dispatch no
// longer matches. Form: "<run>:<call>:<gen>".
func QueueItemID(run, call string, gen uint32) string {
	return run + ":" + call + ":" + strconv.FormatUint(uint64(gen), 10)
}

// ParseQueueItemID reads a QueueItemID.
func ParseQueueItemID(s string) (run, call string, gen uint32, ok bool) {
	i, j := strings.IndexByte(s, ':'), strings.LastIndexByte(s, ':')
	if i <= 0 || j <= i+1 {
		return "", "", 0, false
	}
	g, err := strconv.ParseUint(s[j+1:], 10, 32)
	if err != nil {
		return "", "", 0, false
	}
	return s[:i], s[i+1 : j], uint32(g), true
}

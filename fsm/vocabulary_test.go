package fsm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// vocab is a small driver for scenario tests of the step vocabulary: it
// applies records one entry each and keeps the log so it can be replayed.
type vocab struct {
	t     *testing.T
	f     *fsm.FSM
	index uint64
	log   []fsm.Entry
}

func newVocab(t *testing.T) *vocab {
	t.Helper()
	f, err := fsm.Open(t.TempDir(), fsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	v := &vocab{t: t, f: f}
	newVocabHook(v)
	return v
}

// newVocabHook lets the replay test capture the log of a scenario.
var newVocabHook = func(*vocab) {}

func (v *vocab) apply(recs ...fsm.Record) []fsm.Result {
	v.t.Helper()
	data, err := fsm.EncodeEntry(recs...)
	if err != nil {
		v.t.Fatal(err)
	}
	v.index++
	e := fsm.Entry{Index: v.index, Data: data}
	v.log = append(v.log, e)
	return v.f.ApplyEntries([]fsm.Entry{e})[0]
}

func (v *vocab) run(id string) *fsm.Run {
	v.t.Helper()
	r, err := v.f.Run(id)
	if err != nil || r == nil {
		v.t.Fatalf("run %s: %v %v", id, r, err)
	}
	return r
}

func (v *vocab) memo(run, step string) string {
	v.t.Helper()
	m, err := v.f.Memo(run, step)
	if err != nil {
		v.t.Fatal(err)
	}
	return string(m)
}

// call answers the run's queued call `call` with ops, claiming it first.
func (v *vocab) answer(at int64, runID, call string, ops ...fsm.Op) fsm.Result {
	v.t.Helper()
	c, err := v.f.Call(runID, call)
	if err != nil || c == nil {
		v.t.Fatalf("call %s/%s not queued: %v", runID, call, err)
	}
	res := v.apply(&fsm.CallClaimed{At: at, RunID: runID, Call: call, Gen: c.Gen, LeaseUntil: at + 60000, Node: "n", Boot: "b"})
	if res[0].Code != fsm.OK {
		v.t.Fatalf("claim: %+v", res[0])
	}
	return v.apply(&fsm.CallFinished{At: at, RunID: runID, Call: call, Gen: res[0].Gen, Status: 206, SDK: true, Ops: ops})[0]
}

// fire fires a timer call.
func (v *vocab) fire(at int64, runID, call string) fsm.Result {
	v.t.Helper()
	c, _ := v.f.Call(runID, call)
	if c == nil {
		v.t.Fatalf("timer %s/%s not queued", runID, call)
	}
	return v.apply(&fsm.TimerFired{At: at, RunID: runID, Call: call, Gen: c.Gen})[0]
}

func vEvent(at int64, id, name, data string) *fsm.EventAccepted {
	return &fsm.EventAccepted{At: at, ID: id, Name: name,
		JSON: []byte(fmt.Sprintf(`{"name":%q,"data":%s,"id":%q,"ts":%d,"user":{}}`, name, data, id, at))}
}

func vApp(fns ...fsm.FunctionDef) *fsm.AppSynced {
	return &fsm.AppSynced{At: 1, AppID: "app", URL: "http://app/api", Checksum: fmt.Sprint(len(fns)), Functions: fns}
}

func vFn(id string, mod func(*fsm.FunctionDef)) fsm.FunctionDef {
	d := fsm.FunctionDef{ID: id, Name: id, URL: "http://app/api?fnId=" + id + "&stepId=step", Retries: -1}
	if mod != nil {
		mod(&d)
	}
	return d
}

func opts(o any) []byte { b, _ := json.Marshal(o); return b }

func TestWaitForEventMatchAndTimeout(t *testing.T) {
	v := newVocab(t)
	v.apply(vApp(vFn("app-w", func(d *fsm.FunctionDef) { d.Triggers = []fsm.Trigger{{Event: "start"}} })))
	r1 := v.apply(vEvent(100, "e1", "start", `{"k":"a"}`))[0].Runs[0]
	r2 := v.apply(vEvent(100, "e2", "start", `{"k":"b"}`))[0].Runs[0]
	wait := fsm.Op{ID: "w", Op: "WaitForEvent", Name: "reply", Opts: opts(map[string]string{"timeout": "10s", "if": "async.data.k == event.data.k"})}
	v.answer(200, r1, "step", wait)
	v.answer(200, r2, "step", wait)

	// A reply for run 1 resumes run 1 only, with the whole event.
	reply := vEvent(300, "e3", "reply", `{"k":"a"}`)
	v.apply(reply)
	if got := v.memo(r1, "w"); got != string(reply.JSON) {
		t.Fatalf("memo %s, want the raw event", got)
	}
	if c, _ := v.f.Call(r1, "step"); c == nil {
		t.Fatal("no discovery after the wait resumed")
	}
	if v.memo(r2, "w") != "" {
		t.Fatal("run 2's wait resumed by run 1's reply")
	}
	// Run 2 times out: not before its due time, then with null.
	if res := v.fire(5000, r2, "w"); res.Code != fsm.Stale {
		t.Fatalf("early timeout: %v", res.Code)
	}
	if res := v.fire(10200, r2, "w"); res.Code != fsm.OK || v.memo(r2, "w") != "null" {
		t.Fatalf("timeout: %v memo %q", res.Code, v.memo(r2, "w"))
	}
	// After the timeout a late reply changes nothing.
	v.apply(vEvent(10300, "e4", "reply", `{"k":"b"}`))
	if v.memo(r2, "w") != "null" {
		t.Fatal("a late reply overwrote the timeout")
	}
}

func TestWaitRegisteredBeforeOtherOpsOfTheSameResponse(t *testing.T) {
	v := newVocab(t)
	v.apply(vApp(vFn("app-w", func(d *fsm.FunctionDef) { d.Triggers = []fsm.Trigger{{Event: "start"}} })))
	r := v.apply(vEvent(100, "e1", "start", `{}`))[0].Runs[0]
	// The SDK lists the planned send before the wait; the wait still goes first.
	v.answer(200, r, "step",
		fsm.Op{ID: "send", Op: "StepPlanned"},
		fsm.Op{ID: "w", Op: "WaitForEvent", Name: "reply", Opts: opts(map[string]string{"timeout": "1m"})})
	if run := v.run(r); !run.ForcePlan {
		t.Fatal("two ops must set disable_immediate_execution")
	}
	v.answer(300, r, "send", fsm.Op{ID: "send", Op: "StepRun", Data: []byte(`{"ids":["e2"]}`)})
	v.apply(vEvent(301, "e2", "reply", `{}`)) // the event the planned step sent
	if v.memo(r, "w") == "" {
		t.Fatal("the run's own reply was missed")
	}
	if c, _ := v.f.Call(r, "step"); c == nil || v.run(r).ForcePlan {
		t.Fatal("after both parallel ops: one discovery without force-plan")
	}
}

func TestSignal(t *testing.T) {
	v := newVocab(t)
	v.apply(vApp(vFn("app-s", func(d *fsm.FunctionDef) { d.Triggers = []fsm.Trigger{{Event: "start"}} })))
	r1 := v.apply(vEvent(100, "e1", "start", `{}`))[0].Runs[0]
	r2 := v.apply(vEvent(100, "e2", "start", `{}`))[0].Runs[0]
	r3 := v.apply(vEvent(100, "e3", "start", `{}`))[0].Runs[0]
	sig := func(conflict string) fsm.Op {
		return fsm.Op{ID: "s", Op: "WaitForSignal", Name: "sig", Opts: opts(map[string]string{"signal": "go", "timeout": "1h", "conflict": conflict})}
	}
	if res := v.apply(&fsm.SignalReceived{At: 150, Signal: "go"})[0]; res.Code != fsm.NotFound {
		t.Fatalf("signal before any wait: %v", res.Code)
	}
	v.answer(200, r1, "step", sig(""))
	v.answer(200, r2, "step", sig("")) // conflict: fails run 2
	if st := v.run(r2).Status; st != fsm.StatusFailed {
		t.Fatalf("second waiter: %s, want failed", st)
	}
	v.answer(200, r3, "step", sig("replace")) // steals the signal from run 1
	res := v.apply(&fsm.SignalReceived{At: 300, Signal: "go", Data: []byte(`{"x":1}`)})[0]
	if res.Code != fsm.OK || res.ID != r3 {
		t.Fatalf("signal went to %s (%v), want %s", res.ID, res.Code, r3)
	}
	if got := v.memo(r3, "s"); got != `{"data":{"signal":"go","data":{"x":1}}}` {
		t.Fatalf("memo %s", got)
	}
	if res := v.fire(3600200, r1, "s"); res.Code != fsm.OK || v.memo(r1, "s") != "null" {
		t.Fatalf("replaced waiter times out with null: %v %q", res.Code, v.memo(r1, "s"))
	}
}

func TestInvokeResultErrorTimeoutAndMissingFunction(t *testing.T) {
	v := newVocab(t)
	v.apply(vApp(
		vFn("app-parent", func(d *fsm.FunctionDef) { d.Triggers = []fsm.Trigger{{Event: "start"}} }),
		vFn("app-child", nil),
	))
	invoke := func(timeout string) fsm.Op {
		return fsm.Op{ID: "inv", Op: "InvokeFunction", DisplayName: "call child",
			Opts: opts(map[string]any{"function_id": "app-child", "payload": map[string]any{"data": map[string]int{"n": 2}}, "timeout": timeout})}
	}
	child := func(parent string) string {
		runs, _ := v.f.RecentRuns(100)
		for _, r := range runs {
			if r.FnID == "app-child" && r.Corr == parent+".inv" {
				return r.ID
			}
		}
		t.Fatalf("no child for %s", parent)
		return ""
	}
	// Result.
	p1 := v.apply(vEvent(100, "e1", "start", `{}`))[0].Runs[0]
	v.answer(200, p1, "step", invoke("1m"))
	c1 := child(p1)
	v.apply(&fsm.CallClaimed{At: 300, RunID: c1, Call: "step", Gen: 0, LeaseUntil: 9999})
	v.apply(&fsm.CallFinished{At: 300, RunID: c1, Call: "step", Gen: 1, Status: 200, SDK: true, Body: []byte(`{"doubled":4}`)})
	if got := v.memo(p1, "inv"); got != `{"data":{"doubled":4}}` {
		t.Fatalf("invoke result memo %s", got)
	}
	// Error.
	p2 := v.apply(vEvent(100, "e2", "start", `{}`))[0].Runs[0]
	v.answer(200, p2, "step", invoke("1m"))
	c2 := child(p2)
	no := true
	v.apply(&fsm.CallClaimed{At: 300, RunID: c2, Call: "step", Gen: 0, LeaseUntil: 9999})
	v.apply(&fsm.CallFinished{At: 300, RunID: c2, Call: "step", Gen: 1, Status: 400, SDK: true, NoRetry: &no, Body: []byte(`{"name":"Error","message":"bad"}`)})
	if got := v.memo(p2, "inv"); got != `{"error":{"name":"Error","message":"bad"}}` {
		t.Fatalf("invoke error memo %s", got)
	}
	// Timeout: the child may still finish later; the parent keeps the timeout.
	p3 := v.apply(vEvent(100, "e3", "start", `{}`))[0].Runs[0]
	v.answer(200, p3, "step", invoke("1s"))
	v.fire(1300, p3, "inv")
	if got := v.memo(p3, "inv"); !bytes.Contains([]byte(got), []byte("InngestInvokeTimeoutError")) {
		t.Fatalf("invoke timeout memo %s", got)
	}
	// A function that does not exist fails the step at once.
	v.apply(vApp(vFn("app-parent", func(d *fsm.FunctionDef) { d.Triggers = []fsm.Trigger{{Event: "start"}} })))
	p4 := v.apply(vEvent(100, "e4", "start", `{}`))[0].Runs[0]
	v.answer(200, p4, "step", invoke("1m"))
	if got := v.memo(p4, "inv"); !bytes.Contains([]byte(got), []byte(`could not find function`)) {
		t.Fatalf("missing function memo %s", got)
	}
}

func TestCancelOnTimeoutsAndIdempotency(t *testing.T) {
	v := newVocab(t)
	v.apply(vApp(vFn("app-c", func(d *fsm.FunctionDef) {
		d.Triggers = []fsm.Trigger{{Event: "start", Expression: "event.data.go == true"}}
		d.Cancel = []fsm.CancelOn{{Event: "stop", If: "async.data.k == event.data.k", TimeoutMs: 10000}}
		d.StartTimeoutMs, d.FinishTimeoutMs = 1000, 5000
		d.Idempotency = "event.data.k"
	})))
	if runs := v.apply(vEvent(100, "e0", "start", `{"k":"x","go":false}`))[0].Runs; len(runs) != 0 {
		t.Fatal("trigger if did not filter")
	}
	r1 := v.apply(vEvent(100, "e1", "start", `{"k":"a","go":true}`))[0].Runs[0]
	if runs := v.apply(vEvent(200, "e1b", "start", `{"k":"a","go":true}`))[0].Runs; len(runs) != 0 {
		t.Fatal("idempotency key let a second run start")
	}
	r2 := v.apply(vEvent(100, "e2", "start", `{"k":"b","go":true}`))[0].Runs[0]
	r3 := v.apply(vEvent(100, "e3", "start", `{"k":"c","go":true}`))[0].Runs[0]

	// cancelOn: only the matching run is cancelled.
	v.apply(vEvent(300, "e4", "stop", `{"k":"a"}`))
	if v.run(r1).Status != fsm.StatusCancelled || v.run(r2).Status != fsm.StatusRunning {
		t.Fatalf("cancelOn: r1 %s r2 %s", v.run(r1).Status, v.run(r2).Status)
	}
	// timeouts.start: r3 is never called and is cancelled at 1.1 s.
	if res := v.fire(1100, r3, "$timeout.start"); res.Code != fsm.OK || v.run(r3).Status != fsm.StatusCancelled {
		t.Fatalf("start timeout: %v %s", res.Code, v.run(r3).Status)
	}
	// timeouts.finish: r2 starts at 400 and is cancelled at 5.4 s.
	v.answer(400, r2, "step", fsm.Op{ID: "z", Op: "Sleep", Name: "1h"})
	if c, _ := v.f.Call(r2, "$timeout.start"); c != nil {
		t.Fatal("start timeout still armed after the first call")
	}
	if res := v.fire(5400, r2, "$timeout.finish"); res.Code != fsm.OK || v.run(r2).Status != fsm.StatusCancelled {
		t.Fatalf("finish timeout: %v %s", res.Code, v.run(r2).Status)
	}
	due, _, _ := v.f.Due(1<<62, 100, nil)
	if len(due) != 0 {
		t.Fatalf("cancelled runs left %d queued calls", len(due))
	}
}

// A run whose finish timeout is armed still asks the app for its next step
// after each one, answered or woken: the timeout's call is not a step.
func TestTimeoutCallIsNotAStep(t *testing.T) {
	v := newVocab(t)
	v.apply(vApp(vFn("app-t", func(d *fsm.FunctionDef) {
		d.Triggers = []fsm.Trigger{{Event: "start"}}
		d.FinishTimeoutMs = 3600_000
	})))
	r := v.apply(vEvent(100, "e1", "start", `{}`))[0].Runs[0]
	v.answer(200, r, "step", fsm.Op{ID: "a", Op: "StepRun", Data: []byte(`1`)})
	if c, _ := v.f.Call(r, "$timeout.finish"); c == nil {
		t.Fatal("the finish timeout is not armed")
	}
	if c, _ := v.f.Call(r, "step"); c == nil {
		t.Fatal("after a step the app is not asked for the next one")
	}
	v.answer(300, r, "step", fsm.Op{ID: "z", Op: "Sleep", Name: "1s"})
	if res := v.fire(1300, r, "z"); res.Code != fsm.OK {
		t.Fatalf("sleep: %+v", res)
	}
	if c, _ := v.f.Call(r, "step"); c == nil {
		t.Fatal("after a sleep the app is not asked for the next step")
	}
}

func TestCronFiresOncePerScheduledTime(t *testing.T) {
	v := newVocab(t)
	v.apply(vApp(vFn("app-cron", func(d *fsm.FunctionDef) { d.Triggers = []fsm.Trigger{{Cron: "0 * * * *"}} })))
	fns, _ := v.f.CronFunctions()
	if len(fns) != 1 || fns[0].FnID != "app-cron" || fns[0].Crons[0] != "0 * * * *" {
		t.Fatalf("cron index %+v", fns)
	}
	rec := &fsm.CronFired{At: 3600500, FnID: "app-cron", Cron: "0 * * * *", ScheduledAt: 3600000}
	if res := v.apply(rec)[0]; res.Code != fsm.OK || len(res.Runs) != 1 {
		t.Fatalf("first fire %+v", res)
	}
	if res := v.apply(rec)[0]; res.Code != fsm.Duplicate {
		t.Fatalf("second fire of the same time: %v", res.Code)
	}
	if last, _ := v.f.LastCronFired("app-cron"); last != 3600000 {
		t.Fatalf("last fired %d", last)
	}
	if res := v.apply(&fsm.CronFired{At: 1, FnID: "app-cron", Cron: "* * * * *", ScheduledAt: 60000})[0]; res.Code != fsm.Rejected {
		t.Fatalf("unknown schedule: %v", res.Code)
	}
}

// TestVocabularyReplayIsDeterministic replays the log of every scenario
// above (waits, timers, signals, invokes, cancels, cron) into fresh FSMs,
// all at once and entry by entry, and compares state digests.
func TestVocabularyReplayIsDeterministic(t *testing.T) {
	for name, test := range map[string]func(*testing.T){
		"wait":    TestWaitForEventMatchAndTimeout,
		"race":    TestWaitRegisteredBeforeOtherOpsOfTheSameResponse,
		"signal":  TestSignal,
		"invoke":  TestInvokeResultErrorTimeoutAndMissingFunction,
		"cancel":  TestCancelOnTimeoutsAndIdempotency,
		"cronfsm": TestCronFiresOncePerScheduledTime,
	} {
		t.Run(name, func(t *testing.T) {
			var recorded *vocab
			orig := newVocabHook
			newVocabHook = func(v *vocab) { recorded = v }
			test(t)
			newVocabHook = orig
			if recorded == nil {
				t.Fatal("scenario recorded no log")
			}
			want, _ := recorded.f.StateDigest()

			all, _ := fsm.Open(t.TempDir(), fsm.Options{})
			defer all.Close()
			all.ApplyEntries(recorded.log)
			one, _ := fsm.Open(t.TempDir(), fsm.Options{})
			defer one.Close()
			for _, e := range recorded.log {
				one.ApplyEntries([]fsm.Entry{e})
			}
			for label, f := range map[string]*fsm.FSM{"one batch": all, "entry by entry": one} {
				if got, _ := f.StateDigest(); got != want {
					t.Errorf("%s: digest %s, want %s", label, got, want)
				}
			}
		})
	}
}

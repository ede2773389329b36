package fsm_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// A run whose cancelOn matches the invocation event its own InvokeFunction
// emits is cancelled in the middle of its caller's record. The caller must
// not then store an older copy of the run over the cancel.
func TestCancelOnOwnInvokeStaysCancelled(t *testing.T) {
	v := newVocab(t)
	v.apply(vApp(
		vFn("app-parent", func(d *fsm.FunctionDef) {
			d.Triggers = []fsm.Trigger{{Event: "start"}}
			d.Cancel = []fsm.CancelOn{{Event: fsm.EventInvoked}}
		}),
		vFn("app-child", nil),
	))
	p := v.apply(vEvent(100, "e1", "start", `{}`))[0].Runs[0]
	v.answer(200, p, fsm.DiscoveryCall, fsm.Op{ID: "inv", Op: "InvokeFunction",
		Opts: opts(map[string]any{"function_id": "app-child", "timeout": "1m"})})

	if r := v.run(p); r.Status != fsm.StatusCancelled {
		t.Fatalf("parent status %s, want cancelled", r.Status)
	}
	hist, err := v.f.History(p)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i, e := range hist {
		types = append(types, e.Type)
		if e.Seq != uint64(i+1) {
			t.Fatalf("history seq %d at position %d: %v", e.Seq, i, hist)
		}
	}
	if want := []string{"run.scheduled", "call.claimed", "run.cancelled"}; !reflect.DeepEqual(types, want) {
		t.Fatalf("history %v, want %v", types, want)
	}
	due, _, err := v.f.Due(1<<62, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range due {
		if c.RunID == p {
			t.Fatalf("cancelled parent still has call %s queued", c.ID)
		}
	}
}

// With concurrency 1 and two parallel steps, the second waits for the slot;
// when the first ends, handing the slot on clears the run's Waiting, and the
// record that ended the first step must not put it back.
func TestConcurrencyWakeClearsWaiting(t *testing.T) {
	v := newVocab(t)
	v.apply(vApp(vFn("app-c1", func(d *fsm.FunctionDef) {
		d.Triggers = []fsm.Trigger{{Event: "go"}}
		d.Concurrency = []fsm.ConcurrencyLimit{{Limit: 1}}
	})))
	run := v.apply(vEvent(100, "e1", "go", `{}`))[0].Runs[0]
	v.answer(200, run, fsm.DiscoveryCall,
		fsm.Op{ID: "pa", Op: "StepPlanned"}, fsm.Op{ID: "pb", Op: "StepPlanned"})
	claim := func(call string, at int64) fsm.Result {
		c, _ := v.f.Call(run, call)
		return v.apply(&fsm.CallClaimed{At: at, RunID: run, Call: call, Gen: c.Gen, LeaseUntil: 60000, Node: "n", Boot: "b"})[0]
	}
	a := claim("pa", 300)
	if a.Code != fsm.OK {
		t.Fatalf("claim pa: %+v", a)
	}
	if b := claim("pb", 300); b.Code != fsm.Rejected {
		t.Fatalf("claim pb with the slot taken: %+v", b)
	}
	if w := v.run(run).Waiting; w == "" {
		t.Fatal("run not marked waiting for its concurrency slot")
	}
	v.apply(&fsm.CallFinished{At: 400, RunID: run, Call: "pa", Gen: a.Gen, Status: 206, SDK: true,
		Ops: []fsm.Op{{ID: "pa", Op: "StepRun", Data: []byte(`1`)}}})
	if w := v.run(run).Waiting; w != "" {
		t.Fatalf("run still waiting (%q) after its blocked step was woken", w)
	}
	if b := claim("pb", 500); b.Code != fsm.OK {
		t.Fatalf("claim pb after the slot was freed: %+v", b)
	}
}

// A Sleep reported again (here by the second of two parallel steps) must
// neither move its wake-up nor leave a second queue entry behind, and
// nothing of the run stays queued once it ends.
func TestReportedAgainSleepKeepsItsTimer(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(3)
	at := t0 + 100
	h.answer(run, fsm.DiscoveryCall, at, ops(
		fsm.Op{ID: "pa", Op: "StepPlanned"}, fsm.Op{ID: "pb", Op: "StepPlanned"}))
	sleep := fsm.Op{ID: "zz", Op: "Sleep", Name: "30s", Opts: []byte(`{}`)}
	h.answer(run, "pa", at+10, ops(sleep))
	wake := h.mustCall(run, "zz").Due
	h.answer(run, "pb", at+5000, ops(sleep))
	if got := h.mustCall(run, "zz").Due; got != wake {
		t.Fatalf("re-reported sleep moved its wake-up from %d to %d", wake, got)
	}
	if q := fsm.QueueEntries(h.f, run); len(q) != 1 {
		t.Fatalf("queue entries %v, want the sleep's one", q)
	}
	h.want(&fsm.CancelRequested{At: at + 6000, RunID: run}, fsm.OK)
	if q := fsm.QueueEntries(h.f, run); len(q) != 0 {
		t.Fatalf("queue entries %v left after the run ended", q)
	}
}

// A run's result that is not JSON must not make the engine emit an empty
// inngest/function.finished event: the listener gets a valid event.
func TestFinishedEventWithInvalidResultIsValidJSON(t *testing.T) {
	v := newVocab(t)
	v.apply(vApp(
		vFn("app-a", func(d *fsm.FunctionDef) { d.Triggers = []fsm.Trigger{{Event: "start"}} }),
		vFn("app-listen", func(d *fsm.FunctionDef) { d.Triggers = []fsm.Trigger{{Event: fsm.EventFinished}} }),
	))
	run := v.apply(vEvent(100, "e1", "start", `{}`))[0].Runs[0]
	c, _ := v.f.Call(run, fsm.DiscoveryCall)
	cl := v.apply(&fsm.CallClaimed{At: 200, RunID: run, Call: fsm.DiscoveryCall, Gen: c.Gen, LeaseUntil: 9999, Node: "n", Boot: "b"})[0]
	v.apply(&fsm.CallFinished{At: 300, RunID: run, Call: fsm.DiscoveryCall, Gen: cl.Gen, Status: 200, SDK: true, Body: []byte(`not json`)})
	if r := v.run(run); r.Status != fsm.StatusCompleted {
		t.Fatalf("run %s", r.Status)
	}
	runs, err := v.f.RecentRuns(10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range runs {
		if r.FnID != "app-listen" {
			continue
		}
		found = true
		ev, _ := v.f.Event(r.EventIDs[0])
		var got struct {
			Name string `json:"name"`
			Data struct {
				Result string `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal(ev, &got); err != nil || got.Name != fsm.EventFinished || got.Data.Result != "not json" {
			t.Fatalf("finished event %q (%v)", ev, err)
		}
	}
	if !found {
		t.Fatal("listener did not start")
	}
}

// Code.String names every code and does not panic on others (a result
// from a newer release, a corrupt value in a log line).
func TestCodeString(t *testing.T) {
	for c, want := range map[fsm.Code]string{fsm.OK: "ok", fsm.Duplicate: "duplicate", fsm.Stale: "stale",
		fsm.NotFound: "not_found", fsm.Rejected: "rejected", fsm.Code(200): "code(200)"} {
		if got := c.String(); got != want {
			t.Errorf("Code(%d).String() = %q, want %q", c, got, want)
		}
	}
}

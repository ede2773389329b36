package fsm_test

import (
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// Who caused a record reaches where users look: the history entries the
// record writes (not the claims its lease makes: those are the engine's),
// the event's origin, the app.
func TestRecordActorsReachHistoryAndViews(t *testing.T) {
	h := newHarness(t)
	s := syncApp(t0, "app", fnDef("app-fn", "ev/go", 0))
	s.By = "app (key:k1)"
	h.want(s, fsm.OK)
	if a, _ := h.f.App("app"); a == nil || a.SyncedBy != "app (key:k1)" {
		t.Fatalf("app %+v", a)
	}
	ev := event(t0, "01EVACTOR00000000000000000", "ev/go")
	ev.By, ev.ReplayedFrom = "cli (key:k1)", "01EVORIGINAL00000000000000"
	ev.Lease = &fsm.LeaseNext{LeaseUntil: t0 + 60_000, Node: "n1", Boot: "b1"}
	res := h.want(ev, fsm.OK)
	if len(res.Runs) != 1 || len(res.Claimed) != 1 {
		t.Fatalf("event: %+v", res)
	}
	run := res.Runs[0]
	if o, err := h.f.EventOrigin(ev.ID); err != nil || o != (fsm.EventOrigin{By: "cli (key:k1)", ReplayedFrom: ev.ReplayedFrom}) {
		t.Fatalf("origin %+v %v", o, err)
	}
	h.want(&fsm.CancelRequested{At: t0 + 5, RunID: run, Reason: "enough", By: "alice (key:k1)"}, fsm.OK)
	hist, err := h.f.History(run)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]string{}
	for _, e := range hist {
		by[e.Type] = e.By
	}
	want := map[string]string{fsm.HistRunScheduled: "cli (key:k1)", fsm.HistCallClaimed: "",
		fsm.HistRunEnded(fsm.StatusCancelled): "alice (key:k1)"}
	for typ, who := range want {
		if got, ok := by[typ]; !ok || got != who {
			t.Errorf("%s by %q (present %v), want %q", typ, got, ok, who)
		}
	}
	// Events without an origin (older records, the engine's) have none.
	h.want(event(t0+6, "01EVPLAIN00000000000000000", "ev/none"), fsm.OK)
	if o, err := h.f.EventOrigin("01EVPLAIN00000000000000000"); err != nil || o != (fsm.EventOrigin{}) {
		t.Fatalf("plain origin %+v %v", o, err)
	}
}

// A bulk cancel and a signal name their actor in the histories they touch.
func TestBulkCancelAndSignalActors(t *testing.T) {
	h := newHarness(t)
	run := h.startRun(0)
	h.want(&fsm.BulkCancel{At: t0 + 10, FnID: "app-fn", From: 0, To: t0 + 10, By: "cli (key:k2)"}, fsm.OK)
	hist, _ := h.f.History(run)
	if last := hist[len(hist)-1]; last.Type != fsm.HistRunEnded(fsm.StatusCancelled) || last.By != "cli (key:k2)" {
		t.Fatalf("last entry %+v", last)
	}

	v := newVocab(t)
	v.apply(vApp(vFn("app-s", func(d *fsm.FunctionDef) { d.Triggers = []fsm.Trigger{{Event: "start"}} })))
	r := v.apply(vEvent(100, "e1", "start", `{}`))[0].Runs[0]
	v.answer(200, r, "step", fsm.Op{ID: "s", Op: "WaitForSignal", Name: "sig",
		Opts: opts(map[string]string{"signal": "go", "timeout": "1h"})})
	if res := v.apply(&fsm.SignalReceived{At: 300, Signal: "go", By: "cli (key:k2)"})[0]; res.Code != fsm.OK {
		t.Fatalf("signal: %v", res.Code)
	}
	hist, _ = v.f.History(r)
	found := false
	for _, e := range hist {
		if e.Type == fsm.HistSignalRecv {
			found = e.By == "cli (key:k2)"
		}
	}
	if !found {
		t.Fatalf("no %s entry by the signal's sender: %+v", fsm.HistSignalRecv, hist)
	}
}

// The step an entry is about, and what its data holds, come from its type.
func TestHistoryStepAndData(t *testing.T) {
	for _, c := range []struct {
		e          fsm.HistoryEntry
		step, data string
	}{
		{fsm.HistoryEntry{Type: fsm.HistStepCompleted, Call: fsm.DiscoveryCall, Detail: "abc"}, "abc", fsm.HistDataOutput},
		{fsm.HistoryEntry{Type: fsm.HistStepSleeping, Call: fsm.DiscoveryCall, Detail: "abc until 5"}, "abc", ""},
		{fsm.HistoryEntry{Type: fsm.HistCallClaimed, Call: "abc"}, "abc", ""},
		{fsm.HistoryEntry{Type: fsm.HistCallClaimed, Call: fsm.DiscoveryCall}, "", ""},
		{fsm.HistoryEntry{Type: fsm.HistCallErrored, Call: "abc"}, "abc", fsm.HistDataError},
		{fsm.HistoryEntry{Type: fsm.HistRunScheduled, Detail: "event 01X"}, "", ""},
		{fsm.HistoryEntry{Type: fsm.HistRunEnded(fsm.StatusFailed)}, "", fsm.HistDataError},
		{fsm.HistoryEntry{Type: fsm.HistWaitingEvent, Detail: "w"}, "w", fsm.HistDataInput},
	} {
		if got := c.e.Step(); got != c.step {
			t.Errorf("%s: step %q, want %q", c.e.Type, got, c.step)
		}
		if got := fsm.HistData(c.e.Type); got != c.data {
			t.Errorf("%s: data %q, want %q", c.e.Type, got, c.data)
		}
	}
	for typ, ends := range map[string]bool{fsm.HistRunEnded(fsm.StatusCancelled): true, fsm.HistRunEnded(fsm.StatusCompleted): true,
		fsm.HistRunScheduled: false, fsm.HistRunSkipped: false, fsm.HistStepCompleted: false} {
		if fsm.HistRunEnd(typ) != ends {
			t.Errorf("HistRunEnd(%s) = %v", typ, !ends)
		}
	}
}

package fsm_test

import (
	"fmt"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// A lease's bounds (the executor's fair shares) count over every leasing
// record of one entry: calls beyond them stay queued, unclaimed.
func TestLeaseNextBounds(t *testing.T) {
	h := newHarness(t)
	h.want(syncApp(t0, "app", fnDef("app-a", "ev/x", 1), fnDef("app-b", "ev/x", 1)), fsm.OK)
	h.want(syncApp(t0, "other", fnDef("other-c", "ev/x", 1)), fsm.OK)
	lease := &fsm.LeaseNext{LeaseUntil: t0 + 60_000, Node: "n1", Boot: "b1", Max: 10, Each: 2,
		Rooms: []fsm.LeaseRoom{{Fn: "app-b", N: 0}, {App: "other", N: 1}}}
	var recs []fsm.Record
	for i := range 3 {
		e := event(t0+10, fmt.Sprintf("01EVBOUND%017d", i), "ev/x")
		e.Lease = lease
		recs = append(recs, e)
	}
	perFn := map[string]int{}
	runs := 0
	for _, r := range h.apply(recs...) {
		runs += len(r.Runs)
		for _, c := range r.Claimed {
			perFn[h.run(c.RunID).FnID]++
		}
	}
	if runs != 9 {
		t.Fatalf("%d runs started, want 9", runs)
	}
	if want := map[string]int{"app-a": 2, "other-c": 1}; fmt.Sprint(perFn) != fmt.Sprint(want) {
		t.Fatalf("claimed per function %v, want %v", perFn, want)
	}
	// The rest wait in the queue, unclaimed.
	due, _, err := h.f.Due(t0+10, 100, nil)
	if err != nil || len(due) != 6 {
		t.Fatalf("queued after the bounded lease: %d calls (%v), want 6", len(due), err)
	}

	// Max bounds the entry as a whole; a new entry counts afresh.
	lease.Max, lease.Rooms = 1, nil
	for i := range 2 {
		e := event(t0+20, fmt.Sprintf("01EVMAX%019d", i), "ev/x")
		e.Lease = lease
		res := h.want(e, fsm.OK)
		if len(res.Claimed) != 1 {
			t.Fatalf("entry %d with Max 1 claimed %d calls", i, len(res.Claimed))
		}
	}
}

// Answers that share an entry each free their call's slot and share: each
// leases its run's next call although every lease was sized from the same
// counts (no room but its own).
func TestLeaseNextAnswersPassTheirSlotsOn(t *testing.T) {
	h := newHarness(t)
	h.want(syncApp(t0, "app", fnDef("app-a", "ev/x", 1)), fsm.OK)
	var runs []string
	for i := range 3 {
		res := h.want(event(t0+10, fmt.Sprintf("01EVPASS%018d", i), "ev/x"), fsm.OK)
		runs = append(runs, res.Runs...)
	}
	lease := &fsm.LeaseNext{LeaseUntil: t0 + 60_000, Node: "n1", Boot: "b1", Max: 1, Each: 8,
		Rooms: []fsm.LeaseRoom{{Fn: "app-a", N: 1}, {App: "app", N: 1}}}
	var answers []fsm.Record
	for i, run := range runs {
		gen := h.claim(run, fsm.DiscoveryCall, t0+20)
		cf := ops(stepRun(fmt.Sprintf("s%d", i), `1`))
		cf.At, cf.RunID, cf.Call, cf.Gen, cf.Lease = t0+30, run, fsm.DiscoveryCall, gen, lease
		answers = append(answers, &cf)
	}
	for i, r := range h.apply(answers...) {
		if r.Code != fsm.OK || len(r.Claimed) != 1 {
			t.Fatalf("answer %d leased %d calls (%v), want its run's next", i, len(r.Claimed), r.Code)
		}
	}
}

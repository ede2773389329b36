package fsm_test

import (
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// owned is a sync as the API proposes it in production mode.
func owned(at int64, app, owner string, fns ...fsm.FunctionDef) *fsm.AppSynced {
	s := syncApp(at, app, fns...)
	s.Owner, s.Exclusive = owner, true
	return s
}

// A function id belongs to one app: another app declaring it is refused
// whole, and the owner keeps receiving its events.
func TestSyncRefusesAnotherAppsFunction(t *testing.T) {
	h := newHarness(t)
	h.want(owned(t0, "shop", "", fnDef("shop-charge", "ev/pay", 0)), fsm.OK)
	res := h.want(owned(t0+1, "evil", "", fnDef("evil-x", "ev/x", 0), fnDef("shop-charge", "ev/pay", 0)), fsm.Rejected)
	if res.Msg == "" {
		t.Fatal("refusal without a reason")
	}
	if app, _ := h.f.App("evil"); app != nil {
		t.Fatalf("refused app was stored: %+v", app)
	}
	if fn, _ := h.f.Function("evil-x"); fn != nil {
		t.Fatal("a refused sync registered part of its functions")
	}
	ev := h.want(event(t0+2, "01EVPAY0000000000000000000", "ev/pay"), fsm.OK)
	if len(ev.Runs) != 1 || h.run(ev.Runs[0]).FnID != "shop-charge" {
		t.Fatalf("ev/pay started %v", ev.Runs)
	}
}

// An app registered with one signing key is replaced only with that key,
// or by the new primary key of a rotation that names the old one.
func TestSyncOwnerKey(t *testing.T) {
	h := newHarness(t)
	h.want(owned(t0, "shop", "old", fnDef("shop-a", "ev/a", 0)), fsm.OK)
	h.want(owned(t0+1, "shop", "other", fnDef("shop-b", "ev/b", 0)), fsm.Rejected)
	if fn, _ := h.f.Function("shop-a"); fn == nil {
		t.Fatal("a refused sync replaced the app's functions")
	}
	h.want(owned(t0+2, "shop", "old", fnDef("shop-a", "ev/a2", 0)), fsm.OK)
	rot := owned(t0+3, "shop", "new", fnDef("shop-a", "ev/a", 0))
	rot.MayReplace = []string{"old"}
	h.want(rot, fsm.OK)
	if app, _ := h.f.App("shop"); app == nil || app.Owner != "new" {
		t.Fatalf("after rotation: %+v", app)
	}
	// The old key cannot take it back.
	h.want(owned(t0+4, "shop", "old", fnDef("shop-a", "ev/a", 0)), fsm.Rejected)
}

// Removing an app removes its functions and triggers; its function ids
// are free for another app.
func TestAppRemoved(t *testing.T) {
	h := newHarness(t)
	h.want(owned(t0, "shop", "", fnDef("shop-charge", "ev/pay", 0)), fsm.OK)
	h.want(&fsm.AppRemoved{At: t0 + 1, AppID: "nope"}, fsm.NotFound)
	h.want(&fsm.AppRemoved{At: t0 + 1, AppID: "shop", By: "cli"}, fsm.OK)
	if app, _ := h.f.App("shop"); app != nil {
		t.Fatal("app still there")
	}
	if fn, _ := h.f.Function("shop-charge"); fn != nil {
		t.Fatal("function still there")
	}
	if ev := h.want(event(t0+2, "01EVPAY0000000000000000000", "ev/pay"), fsm.OK); len(ev.Runs) != 0 {
		t.Fatalf("a removed function still starts runs: %v", ev.Runs)
	}
	h.want(owned(t0+3, "shop2", "", fnDef("shop-charge", "ev/pay", 0)), fsm.OK)
}

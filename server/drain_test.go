package server

import (
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A leader stopped on purpose (rolling restart) finishes the app call it has
// in flight, records the answer and hands leadership over: the step runs
// once, and the run completes without anyone waiting out the call's lease
// (2 min 10 s here, far longer than waitUntil's 60 s).
func TestGracefulStopDrainsAndHandsOver(t *testing.T) {
	app, execs, inStep, release := slowStepApp(t)

	nodes := cluster(t, func(c *Config) { c.CallTimeout = 2 * time.Minute })
	old := leaderOf(nodes)
	rest := without(nodes, old)
	register(t, rest[0], app.URL)
	ev, code := sendEvent(t, rest[0])
	if code != 200 {
		t.Fatalf("event: %d", code)
	}
	<-inStep
	stopped := make(chan struct{})
	go func() { old.stop(); close(stopped) }()
	// Close stops serving HTTP first, then drains: answer the step only
	// once the old leader has stopped taking requests.
	waitUntil(t, "the old leader to stop serving", func() bool {
		var v map[string]any
		return get(old.srv.URL()+"/health", &v) == 0
	})
	close(release)
	<-stopped
	waitUntil(t, "a new leader", func() bool { return leaderOf(rest) != nil })
	waitUntil(t, "the run to complete", func() bool { return runStatus(rest[0], ev) == "completed" })
	if n := execs.Load(); n != 1 {
		t.Fatalf("step a ran %d times, want 1", n)
	}
}

// A leader deposed while an app call is out (here leadership moves; a pause
// or a partition does the same) still gets the answer and forwards it to the
// new leader, which accepts it: the step runs once and nobody waits out the
// call's lease.
func TestDeposedLeaderForwardsAnswer(t *testing.T) {
	app, execs, inStep, release := slowStepApp(t)

	nodes := cluster(t, func(c *Config) { c.CallTimeout = 2 * time.Minute })
	old := leaderOf(nodes)
	register(t, old, app.URL)
	ev, code := sendEvent(t, old)
	if code != 200 {
		t.Fatalf("event: %d", code)
	}
	<-inStep
	if err := old.srv.Node.HandOver(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "another leader", func() bool { l := leaderOf(nodes); return l != nil && l != old })
	close(release)
	waitUntil(t, "the run to complete", func() bool { return runStatus(old, ev) == "completed" })
	if n := execs.Load(); n != 1 {
		t.Fatalf("step a ran %d times, want 1", n)
	}
}

// slowStepApp is protocolApp whose step "a" waits for release to be closed.
// inStep receives when the step first starts; execs counts its runs.
func slowStepApp(t *testing.T) (app *httptest.Server, execs *atomic.Int32, inStep chan struct{}, release chan struct{}) {
	execs = new(atomic.Int32)
	inStep, release = make(chan struct{}, 1), make(chan struct{})
	app = protocolAppWith(t, func() {
		execs.Add(1)
		select {
		case inStep <- struct{}{}:
		default:
		}
		<-release
	})
	return app, execs, inStep, release
}

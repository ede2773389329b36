package server

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/internal/faultnet"
)

// Calls in flight on a leader that goes away are taken over by the next
// leader at once (CallClaimed.Revoke), not after their lease: the leases
// here are 2 min 10 s, far longer than waitUntil's 60 s, so a run that
// waited one out would fail the test. No duration is asserted.

// holdFirstApp is protocolApp whose step "a" holds the first call of each
// run until release is closed; later calls of the run (a re-send) answer at
// once. It counts the executions of step "a" per run.
type holdFirstApp struct {
	srv     *httptest.Server
	release chan struct{}
	mu      sync.Mutex
	execs   map[string]int // run → executions of step "a"
	held    int            // first calls being held
}

func newHoldFirstApp(t *testing.T) *holdFirstApp {
	a := &holdFirstApp{release: make(chan struct{}), execs: map[string]int{}}
	sum := sha1.Sum([]byte("a"))
	idA := hex.EncodeToString(sum[:])
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Steps map[string]json.RawMessage `json:"steps"`
			Ctx   struct {
				RunID string `json:"run_id"`
			} `json:"ctx"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("X-Inngest-SDK", "cairn-test:v0")
		w.Header().Set("Content-Type", "application/json")
		if _, ok := body.Steps[idA]; ok {
			w.WriteHeader(200)
			io.WriteString(w, `"done"`)
			return
		}
		a.mu.Lock()
		a.execs[body.Ctx.RunID]++
		first := a.execs[body.Ctx.RunID] == 1
		if first {
			a.held++
		}
		a.mu.Unlock()
		if first {
			<-a.release
		}
		w.WriteHeader(206)
		fmt.Fprintf(w, `[{"id":%q,"op":"StepRun","name":"a","displayName":"a","data":1}]`, idA)
	}))
	t.Cleanup(a.srv.Close)
	t.Cleanup(a.free) // before srv.Close, which waits for the handlers
	return a
}

func (a *holdFirstApp) free() {
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-a.release:
	default:
		close(a.release)
	}
}

func (a *holdFirstApp) holding() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.held
}

func (a *holdFirstApp) executions(run string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.execs[run]
}

// runOf returns the id of the run an event started.
func runOf(t *testing.T, via *testNode, eventID string) string {
	t.Helper()
	var out struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if code := get(via.srv.URL()+"/v1/events/"+eventID+"/runs", &out); code != 200 || len(out.Data) != 1 {
		t.Fatalf("runs of event %s: %d %+v", eventID, code, out)
	}
	return out.Data[0].ID
}

// acceptedOnce checks, on node n, that every run completed with the app's
// output and that its step was accepted exactly once, whatever the number
// of executions; it returns how many claims revoked another.
func acceptedOnce(t *testing.T, n *testNode, runs []string) (revokes int) {
	t.Helper()
	for _, run := range runs {
		r, err := n.srv.FSM.Run(run)
		if err != nil || r == nil || r.Status != fsm.StatusCompleted || string(r.Output) != `"done"` {
			t.Fatalf("run %s on %s: %+v %v", run, n.cfg.NodeID, r, err)
		}
		hist, err := n.srv.FSM.History(run)
		if err != nil {
			t.Fatal(err)
		}
		completed := 0
		var lines []string
		for _, h := range hist {
			lines = append(lines, fmt.Sprintf("%s %s %s", h.Type, h.Call, h.Detail))
			switch {
			case h.Type == fsm.HistStepCompleted:
				completed++
			case h.Type == fsm.HistCallClaimed && strings.HasSuffix(h.Detail, " revoked"):
				revokes++
			}
		}
		if completed != 1 {
			t.Fatalf("run %s: step accepted %d times, want once:\n%s", run, completed, strings.Join(lines, "\n"))
		}
	}
	return revokes
}

// A leader that stops with app calls out (its drain gives up at once, as a
// crash would leave them) hands over to a leader that re-sends them at once:
// the old process is gone, so its HTTP address refuses the probe.
func TestLeaderStoppedMidCallRunsResume(t *testing.T) {
	app := newHoldFirstApp(t)
	nodes := cluster(t, func(c *Config) { c.CallTimeout, c.DrainTimeout = 2*time.Minute, -1 })
	old := leaderOf(nodes)
	rest := without(nodes, old)
	register(t, rest[0], app.srv.URL)
	events := sendEvents(t, rest[0], 5)
	waitUntil(t, "every run's first call to be out", func() bool { return app.holding() == len(events) })
	var runs []string
	for _, ev := range events {
		runs = append(runs, runOf(t, rest[0], ev))
	}

	old.stop() // the calls it had out are abandoned, their claims left
	waitUntil(t, "a new leader", func() bool { return leaderOf(rest) != nil })
	for _, ev := range events {
		waitUntil(t, "run of "+ev+" to complete", func() bool { return runStatus(rest[0], ev) == "completed" })
	}
	app.free() // the first calls end; nobody is left to take their answers
	converged(t, rest)
	if n := acceptedOnce(t, rest[0], runs); n == 0 {
		t.Fatal("no claim revoked another: the runs resumed some other way")
	}
	for _, run := range runs {
		if n := app.executions(run); n < 2 {
			t.Fatalf("run %s: step executed %d times; the abandoned call was not re-sent", run, n)
		}
	}
}

// A leader cut off mid-call (Raft and node-to-node HTTP alike) does not
// answer the new leader's probe, so its calls are re-sent at once. Its own
// calls are answered later, after the runs completed, and it forwards those
// answers once healed: each is refused as stale (the revoke bumped the
// claim's generation), so every step is accepted exactly once.
func TestCutOffLeaderLateAnswersAreFenced(t *testing.T) {
	app := newHoldFirstApp(t)
	mesh := &faultnet.Mesh{}
	t.Cleanup(mesh.Close)
	nodes := meshCluster(t, mesh, 70, 2*time.Minute)
	register(t, nodes[1], app.srv.URL)
	old := leaderOf(nodes)
	var oldIdx int
	var rest []*testNode
	var restIdx []int
	for i, n := range nodes {
		if n == old {
			oldIdx = i
		} else {
			rest, restIdx = append(rest, n), append(restIdx, i)
		}
	}
	events := sendEvents(t, rest[0], 3)
	waitUntil(t, "every run's first call to be out", func() bool { return app.holding() == len(events) })
	var runs []string
	for _, ev := range events {
		runs = append(runs, runOf(t, rest[0], ev))
	}

	mesh.Cut(oldIdx, restIdx...)
	waitUntil(t, "a leader in the majority", func() bool { return leaderOf(rest) != nil })
	for _, ev := range events {
		waitUntil(t, "run of "+ev+" to complete", func() bool { return runStatus(rest[0], ev) == "completed" })
	}

	// The cut-off leader's calls are answered now; it forwards the answers
	// once it can reach the leader, which refuses them as stale.
	app.free()
	mesh.Heal()
	waitUntil(t, "the old leader to have forwarded its answers", func() bool {
		return len(old.srv.Exec.Held().Calls) == 0
	})
	converged(t, nodes)
	for _, n := range nodes {
		if r := acceptedOnce(t, n, runs); r == 0 {
			t.Fatalf("%s: no claim revoked another", n.cfg.NodeID)
		}
	}
	for _, run := range runs {
		if n := app.executions(run); n < 2 {
			t.Fatalf("run %s: step executed %d times; the cut-off leader's call was not re-sent", run, n)
		}
	}
}

package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// hangApp is an app whose every call waits until release is closed, then
// completes its run. It counts the calls it holds, per function and in
// all, and the most it ever held at once.
type hangApp struct {
	*httptest.Server
	release chan struct{}
	mu      sync.Mutex
	held    map[string]int
	most    map[string]int // per function, and "" for all
}

func newHangApp(t *testing.T) *hangApp {
	a := &hangApp{release: make(chan struct{}), held: map[string]int{}, most: map[string]int{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fn := r.URL.Query().Get("fnId")
		a.enter(fn, 1)
		<-a.release
		a.enter(fn, -1)
		w.Header().Set("X-Inngest-SDK", "cairn-test:v0")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `"done"`)
	}))
	t.Cleanup(a.Server.Close)
	return a
}

func (a *hangApp) enter(fn string, d int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.held[fn] += d
	a.held[""] += d
	a.most[fn] = max(a.most[fn], a.held[fn])
	a.most[""] = max(a.most[""], a.held[""])
}

func (a *hangApp) holding(fn string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.held[fn]
}

// registerApp registers appName's functions, each triggered by event.
func registerApp(t *testing.T, via *testNode, appName, appURL, event string, fnIDs ...string) {
	t.Helper()
	var fns []any
	for _, id := range fnIDs {
		fns = append(fns, map[string]any{
			"id": id, "name": id, "triggers": []any{map[string]any{"event": event}},
			"steps": map[string]any{"step": map[string]any{"id": "step", "name": "step",
				"runtime": map[string]any{"type": "http", "url": appURL + "?fnId=" + id + "&stepId=step"}}},
		})
	}
	body := map[string]any{"url": appURL, "appName": appName, "framework": "test", "sdk": "go:v0", "functions": fns}
	waitUntil(t, "registration of "+appName, func() bool {
		code, _ := post(via.srv.URL()+"/fn/register", body)
		return code == 200
	})
}

// eventRunStatuses lists the statuses of an event's runs.
func eventRunStatuses(via *testNode, eventID string) []string {
	var out struct {
		Data []struct {
			Status string `json:"status"`
		} `json:"data"`
	}
	get(via.srv.URL()+"/v1/events/"+eventID+"/runs", &out)
	var st []string
	for _, r := range out.Data {
		st = append(st, r.Status)
	}
	return st
}

// One app whose calls hang cannot take every call slot: it holds at most
// its share (and each of its functions theirs), and an unrelated app's run
// completes while the hanging calls are still held. Once they are
// answered, the calls that waited for the share all run.
func TestHangingAppLeavesSlotsToOthers(t *testing.T) {
	const maxInflight, perFn, perApp = 8, 4, 6
	hang := newHangApp(t)
	calm := protocolApp(t)
	n := startNode(t, "solo", "", func(c *Config) {
		c.MaxInflight, c.MaxInflightPerFunction, c.MaxInflightPerApp = maxInflight, perFn, perApp
	})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(hang.release) }) }
	t.Cleanup(releaseAll) // before the node stops: let it drain
	waitUntil(t, "leadership", n.srv.Node.IsLeader)
	registerApp(t, n, "hang", hang.URL, "h/go", "hang-a", "hang-b")
	register(t, n, calm.URL)

	// A flood in one request (its events lease their calls in one log
	// entry) and a few more one by one: 2 runs each, far more than the slots.
	var flood []any
	for range 20 {
		flood = append(flood, map[string]any{"name": "h/go", "data": map[string]any{}})
	}
	code, raw := post(n.srv.URL()+"/e/key", flood)
	var accepted struct {
		IDs []string `json:"ids"`
	}
	if json.Unmarshal(raw, &accepted); code != 200 || len(accepted.IDs) != 20 {
		t.Fatalf("flood: %d %s", code, raw)
	}
	hangEvents := accepted.IDs
	for range 5 {
		code, raw := post(n.srv.URL()+"/e/key", map[string]any{"name": "h/go", "data": map[string]any{}})
		if json.Unmarshal(raw, &accepted); code != 200 || len(accepted.IDs) != 1 {
			t.Fatalf("event: %d %s", code, raw)
		}
		hangEvents = append(hangEvents, accepted.IDs[0])
	}
	waitUntil(t, "the hanging app to hold its share", func() bool { return hang.holding("") == perApp })

	ev, code := sendEvent(t, n)
	if code != 200 {
		t.Fatalf("unrelated event: %d", code)
	}
	waitUntil(t, "the unrelated run to complete", func() bool { return runStatus(n, ev) == "completed" })
	if held := hang.holding(""); held != perApp {
		t.Fatalf("the hanging app holds %d calls when the unrelated run completes, want %d", held, perApp)
	}

	releaseAll()
	for _, ev := range hangEvents {
		waitUntil(t, "the runs of hanging event "+ev+" to complete", func() bool {
			st := eventRunStatuses(n, ev)
			return len(st) == 2 && st[0] == "completed" && st[1] == "completed"
		})
	}
	hang.mu.Lock()
	defer hang.mu.Unlock()
	if hang.most[""] > perApp || hang.most["hang-a"] > perFn || hang.most["hang-b"] > perFn {
		t.Fatalf("most calls held at once: %v, want at most %d per function and %d for the app", hang.most, perFn, perApp)
	}
}

// A timer holds no call slot: a sleep ends on time while another app's
// hanging calls hold every slot, and the run's next call then waits for a
// slot like any other.
func TestTimerFiresWhileEverySlotIsHeld(t *testing.T) {
	const slots = 2
	hang := newHangApp(t)
	sleeper := oneStepApp(t, "nap", `{"op":"Sleep","name":"nap","displayName":"nap","opts":{"duration":"15s"}}`, `"rested"`, nil)
	n := startNode(t, "solo", "", func(c *Config) {
		c.MaxInflight, c.MaxInflightPerFunction, c.MaxInflightPerApp = slots, slots, slots
	})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(hang.release) }) }
	t.Cleanup(releaseAll)
	waitUntil(t, "leadership", n.srv.Node.IsLeader)
	registerApp(t, n, "hang", hang.URL, "h/go", "hang-a")
	registerApp(t, n, "sleepy", sleeper.URL, "s/go", "sleeper")

	code, raw := post(n.srv.URL()+"/e/key", map[string]any{"name": "s/go", "data": map[string]any{}})
	var accepted struct {
		IDs []string `json:"ids"`
	}
	if json.Unmarshal(raw, &accepted); code != 200 || len(accepted.IDs) != 1 {
		t.Fatalf("sleeper event: %d %s", code, raw)
	}
	var runID string
	history := func() map[string]bool {
		var runs struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if get(n.srv.URL()+"/v1/events/"+accepted.IDs[0]+"/runs", &runs); len(runs.Data) == 1 {
			runID = runs.Data[0].ID
		}
		var h struct {
			Data []struct {
				Type string `json:"type"`
			} `json:"data"`
		}
		get(n.srv.URL()+"/v1/runs/"+runID+"/history", &h)
		seen := map[string]bool{}
		for _, e := range h.Data {
			seen[e.Type] = true
		}
		return seen
	}
	waitUntil(t, "the run to sleep", func() bool { return history()[fsm.HistStepSleeping] })

	for range 2 * slots {
		if code, raw := post(n.srv.URL()+"/e/key", map[string]any{"name": "h/go", "data": map[string]any{}}); code != 200 {
			t.Fatalf("hang event: %d %s", code, raw)
		}
	}
	waitUntil(t, "the hanging app to hold every slot", func() bool { return hang.holding("") == slots })
	if history()[fsm.HistStepWoke] {
		t.Fatal("the sleep ended before the hanging app held every slot: the test proves nothing (15 s were not enough to flood two slots)")
	}
	waitUntil(t, "the sleep to end", func() bool { return history()[fsm.HistStepWoke] })
	if held := hang.holding(""); held != slots {
		t.Fatalf("the hanging app holds %d calls when the sleep ends, want all %d slots", held, slots)
	}
	releaseAll()
	waitUntil(t, "the sleeper to complete", func() bool {
		st := eventRunStatuses(n, accepted.IDs[0])
		return len(st) == 1 && st[0] == "completed"
	})
}

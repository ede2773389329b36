package e2e

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/sdk/jcs"
	"github.com/cairn-dev/cairn/server"
)

// runOf waits until the event has started a run and returns its id.
func (c client) runOf(eventID string) string {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var out struct {
			Data []run `json:"data"`
		}
		if code, _ := c.do("GET", "/v1/events/"+eventID+"/runs", nil, &out); code == 200 && len(out.Data) > 0 {
			return out.Data[0].ID
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("event %s started no run", eventID)
	return ""
}

// waitHistory waits until a run's history has an entry of the given type.
func (c client) waitHistory(runID, typ string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, h := range c.history(runID) {
			if h.Type == typ {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("run %s never recorded %s", runID, typ)
}

// runsOf lists the recent runs of a function.
func (c client) runsOf(fnID string) []run {
	c.t.Helper()
	var out struct {
		Data []run `json:"data"`
	}
	if code, err := c.do("GET", "/v1/runs?limit=1000", nil, &out); err != nil || code != 200 {
		c.t.Fatalf("runs: %d %v", code, err)
	}
	var mine []run
	for _, r := range out.Data {
		if r.FunctionID == fnID {
			mine = append(mine, r)
		}
	}
	return mine
}

// mustOutput compares JSON values, not bytes: in production mode calls
// carry canonical JSON (keys sorted, protocol §2.2), so objects an app
// echoes back come out in that order.
func mustOutput(t *testing.T, r run, want string) {
	t.Helper()
	got, err1 := jcs.Transform(r.Output)
	exp, err2 := jcs.Transform([]byte(want))
	if r.Status != "completed" || err1 != nil || err2 != nil || string(got) != string(exp) {
		t.Fatalf("status %s output %s error %s; want output %s", r.Status, r.Output, r.Error, want)
	}
}

func TestStepVocabulary(t *testing.T) { inModes(t, testStepVocabulary) }

func testStepVocabulary(t *testing.T, opts ...func(*server.Config)) {
	c, app := withApp(t, opts...)

	t.Run("WaitForEventMatches", func(t *testing.T) {
		c.t = t
		ev := c.send("test/wait", map[string]any{"key": "k1"})
		runID := c.runOf(ev)
		c.waitHistory(runID, "step.waiting.event")
		c.send("test/reply", map[string]any{"key": "other", "value": "not me"})
		c.send("test/reply", map[string]any{"key": "k1", "value": "hello"})
		mustOutput(t, c.waitRun(ev, 30*time.Second), `{"got":"hello"}`)
	})

	t.Run("WaitForEventTimesOut", func(t *testing.T) {
		c.t = t
		ev := c.send("test/wait", map[string]any{"key": "k2", "timeout": "1s"})
		mustOutput(t, c.waitRun(ev, 30*time.Second), `{"got":null}`)
	})

	t.Run("WaitRegisteredBeforeOwnReply", func(t *testing.T) {
		c.t = t
		ev := c.send("test/race", map[string]any{"key": "race-1"})
		mustOutput(t, c.waitRun(ev, 30*time.Second), `{"got":"race-1"}`)
	})

	t.Run("SleepUntilADate", func(t *testing.T) {
		c.t = t
		until := time.Now().Add(1500 * time.Millisecond).UTC()
		r := c.waitRun(c.send("test/sleepuntil", map[string]any{"until": until.Format(time.RFC3339Nano)}), 30*time.Second)
		if r.Status != "completed" {
			t.Fatalf("status %s error %s", r.Status, r.Error)
		}
		for _, h := range c.history(r.ID) {
			if h.Type == "step.woke" && h.At < until.UnixMilli() {
				t.Fatalf("woke at %d, before %d", h.At, until.UnixMilli())
			}
		}
		var woke int64
		if json.Unmarshal(r.Output, &woke); woke < until.UnixMilli() {
			t.Fatalf("the step after the sleep ran at %d, before %d", woke, until.UnixMilli())
		}
	})

	t.Run("WaitForSignal", func(t *testing.T) {
		c.t = t
		ev := c.send("test/signal", map[string]any{"key": "s1"})
		runID := c.runOf(ev)
		if code, _ := c.do("POST", "/v1/signals", map[string]any{"signal": "sig-nobody"}, nil); code != 404 {
			t.Fatalf("signal nobody waits for: %d, want 404", code)
		}
		c.waitHistory(runID, "step.waiting.signal")
		var out struct {
			Data struct {
				RunID string `json:"run_id"`
			} `json:"data"`
		}
		code, err := c.do("POST", "/v1/signals", map[string]any{"signal": "sig-s1", "data": map[string]any{"ok": true}}, &out)
		if err != nil || code != 200 || out.Data.RunID != runID {
			t.Fatalf("signal: %d %v %+v, want run %s", code, err, out, runID)
		}
		mustOutput(t, c.waitRun(ev, 30*time.Second), `{"sig":{"signal":"sig-s1","data":{"ok":true}}}`)
	})

	t.Run("WaitForSignalTimesOut", func(t *testing.T) {
		c.t = t
		ev := c.send("test/signal", map[string]any{"key": "s2", "timeout": "1s"})
		mustOutput(t, c.waitRun(ev, 30*time.Second), `{"sig":null}`)
	})

	t.Run("InvokeResult", func(t *testing.T) {
		c.t = t
		mustOutput(t, c.waitRun(c.send("test/invoke", map[string]any{"n": 21}), 30*time.Second), `{"ok":{"doubled":42}}`)
	})

	t.Run("InvokeError", func(t *testing.T) {
		c.t = t
		mustOutput(t, c.waitRun(c.send("test/invoke", map[string]any{"n": 1, "fail": true}), 30*time.Second),
			`{"error":"child failed"}`)
	})

	t.Run("InvokeTimeout", func(t *testing.T) {
		c.t = t
		r := c.waitRun(c.send("test/invoke", map[string]any{"n": 1, "sleep": "4s", "timeout": "1s"}), 30*time.Second)
		if r.Status != "completed" || !strings.Contains(string(r.Output), "Timed out waiting for invoked function") {
			t.Fatalf("status %s output %s", r.Status, r.Output)
		}
	})

	t.Run("SendEventFansOut", func(t *testing.T) {
		c.t = t
		mustOutput(t, c.waitRun(c.send("test/fanout", map[string]any{"batch": "fan-1"}), 30*time.Second), `{"count":2}`)
		deadline := time.Now().Add(30 * time.Second)
		for {
			done := 0
			for _, r := range c.runsOf("tsapp-fan-item") {
				if r.Status == "completed" {
					done++
				}
			}
			if done == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d fan-out items completed, want 2", done)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("CancelOnEvent", func(t *testing.T) {
		c.t = t
		ev := c.send("test/cancellable", map[string]any{"key": "c1"})
		runID := c.runOf(ev)
		c.waitHistory(runID, "step.sleeping")
		c.send("test/cancel.it", map[string]any{"key": "someone-else"})
		c.send("test/cancel.it", map[string]any{"key": "c1"})
		r := c.waitRun(ev, 30*time.Second)
		if r.Status != "cancelled" {
			t.Fatalf("status %s", r.Status)
		}
		time.Sleep(3500 * time.Millisecond) // past the sleep: nothing more may run
		if ex := app.executions(t, runID); ex["first"] != 1 || ex["second"] != 0 {
			t.Fatalf("executions %v", ex)
		}
	})

	t.Run("OnFailureHandlerRuns", func(t *testing.T) {
		c.t = t
		r := c.waitRun(c.send("test/fail.handled", nil), 30*time.Second)
		if r.Status != "failed" {
			t.Fatalf("status %s", r.Status)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			for _, h := range c.runsOf("tsapp-fails-with-handler-failure") {
				if h.Status != "completed" {
					continue
				}
				for _, e := range c.history(h.ID) {
					if e.Type == "step.completed" && string(e.Data) == `{"fn":"tsapp-fails-with-handler","msg":"doomed on purpose"}` {
						return
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the onFailure handler did not run with the failed function's id and error")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("FinishTimeoutCancels", func(t *testing.T) {
		c.t = t
		ev := c.send("test/timeout", nil)
		r := c.waitRun(ev, 30*time.Second)
		if r.Status != "cancelled" || !strings.Contains(string(r.Error), "timeouts.finish") {
			t.Fatalf("status %s error %s", r.Status, r.Error)
		}
		if ex := app.executions(t, r.ID); ex["never"] != 0 {
			t.Fatalf("executions %v", ex)
		}
	})

	t.Run("IdempotencyKey", func(t *testing.T) {
		c.t = t
		first := c.send("test/idem", map[string]any{"key": "once-1"})
		second := c.send("test/idem", map[string]any{"key": "once-1"})
		other := c.send("test/idem", map[string]any{"key": "once-2"})
		c.waitRun(first, 30*time.Second)
		c.waitRun(other, 30*time.Second)
		var out struct {
			Data []run `json:"data"`
		}
		c.do("GET", "/v1/events/"+second+"/runs", nil, &out)
		if len(out.Data) != 0 {
			t.Fatalf("a second event with the same idempotency key started %d runs", len(out.Data))
		}
	})

	t.Run("TriggerIf", func(t *testing.T) {
		c.t = t
		free := c.send("test/filtered", map[string]any{"plan": "free"})
		paid := c.send("test/filtered", map[string]any{"plan": "pro"})
		mustOutput(t, c.waitRun(paid, 30*time.Second), `"pro"`)
		var out struct {
			Data []run `json:"data"`
		}
		c.do("GET", "/v1/events/"+free+"/runs", nil, &out)
		if len(out.Data) != 0 {
			t.Fatalf("the trigger's if filter let a free plan through")
		}
	})

	t.Run("BulkCancel", func(t *testing.T) {
		c.t = t
		var ids []string
		for _, k := range []string{"b1", "b2"} {
			ids = append(ids, c.runOf(c.send("test/wait", map[string]any{"key": k})))
		}
		var out struct {
			Data struct {
				Cancelled []string `json:"cancelled"`
			} `json:"data"`
		}
		if code, err := c.do("POST", "/v1/functions/tsapp-waiter/cancel", map[string]any{"reason": "bulk"}, &out); err != nil || code != 200 {
			t.Fatalf("bulk cancel: %d %v", code, err)
		}
		got := strings.Join(out.Data.Cancelled, ",")
		for _, id := range ids {
			if !strings.Contains(got, id) {
				t.Fatalf("run %s not cancelled (cancelled: %s)", id, got)
			}
		}
	})
}

// TestCron drives a cron trigger with a controlled clock: nothing fires
// before the scheduled time, exactly one run fires at it.
func TestCron(t *testing.T) {
	var mu sync.Mutex
	paris, _ := time.LoadLocation("Europe/Paris")
	now := time.Date(2026, 3, 10, 2, 59, 0, 0, paris)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	c, _ := withApp(t, func(cfg *server.Config) {
		cfg.CronClock, cfg.CronTick = clock, 50*time.Millisecond
	})
	time.Sleep(500 * time.Millisecond) // several ticks at 02:59: nothing is due
	if runs := c.runsOf("tsapp-cron-fn"); len(runs) != 0 {
		t.Fatalf("cron fired early: %d runs", len(runs))
	}
	mu.Lock()
	now = time.Date(2026, 3, 10, 3, 0, 30, 0, paris)
	mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	var runs []run
	for time.Now().Before(deadline) {
		runs = c.runsOf("tsapp-cron-fn")
		if len(runs) == 1 && runs[0].Status == "completed" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(runs) != 1 || runs[0].Status != "completed" {
		t.Fatalf("cron runs: %+v", runs)
	}
	var scheduled string
	json.Unmarshal(runs[0].Output, &scheduled)
	if scheduled != "2026-03-10T02:00:00Z" { // 03:00 in Paris (CET) is 02:00 UTC
		t.Fatalf("scheduledAt %q", scheduled)
	}
	time.Sleep(300 * time.Millisecond) // more ticks at the same time: still one run
	if runs := c.runsOf("tsapp-cron-fn"); len(runs) != 1 {
		t.Fatalf("cron fired %d times for one scheduled time", len(runs))
	}
}

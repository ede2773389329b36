package e2e

import (
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/server"
)

type workOut struct {
	Start int64   `json:"start"`
	End   int64   `json:"end"`
	Key   *string `json:"key"`
}

func TestFlowControl(t *testing.T) { inModes(t, testFlowControl) }

func testFlowControl(t *testing.T, opts ...func(*server.Config)) {
	c, _ := withApp(t, opts...)

	t.Run("ConcurrencyOnePerKeyNeverOverlaps", func(t *testing.T) {
		c.t = t
		var evs []string
		for _, k := range []string{"a", "a", "a", "b", "b"} {
			evs = append(evs, c.send("test/conc", map[string]any{"key": k}))
		}
		byKey := map[string][]workOut{}
		for _, ev := range evs {
			r := c.waitRun(ev, 60*time.Second)
			var w workOut
			if r.Status != "completed" || json.Unmarshal(r.Output, &w) != nil || w.Key == nil {
				t.Fatalf("run %s: %s %s", r.ID, r.Status, r.Output)
			}
			byKey[*w.Key] = append(byKey[*w.Key], w)
		}
		for key, ws := range byKey {
			sort.Slice(ws, func(i, j int) bool { return ws[i].Start < ws[j].Start })
			for i := 1; i < len(ws); i++ {
				if ws[i].Start < ws[i-1].End {
					t.Fatalf("key %s: runs overlapped: %+v", key, ws)
				}
			}
		}
	})

	t.Run("ThrottleStartsLimitThenSpreads", func(t *testing.T) {
		c.t = t
		var evs []string
		for range 3 {
			evs = append(evs, c.send("test/throttle", nil))
		}
		var first run
		var starts []int64
		throttled := 0
		for i, ev := range evs {
			r := c.waitRun(ev, 60*time.Second)
			if r.Status != "completed" {
				t.Fatalf("status %s", r.Status)
			}
			if i == 0 {
				first = r
			}
			var at int64
			json.Unmarshal(r.Output, &at)
			starts = append(starts, at)
			for _, h := range c.history(r.ID) {
				if h.Type == "run.throttled" {
					throttled++
				}
			}
		}
		// 2 per 4 s, as Inngest admits: two start at once, the third 2 s later.
		if throttled != 1 {
			t.Fatalf("%d of 3 runs were throttled, want 1 (limit 2 starts 2 at once)", throttled)
		}
		sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
		if starts[2]-first.CreatedAt < 1900 {
			t.Fatalf("the third throttled run started %d ms after the first event, want 2 s", starts[2]-first.CreatedAt)
		}
	})

	t.Run("RateLimitSkips", func(t *testing.T) {
		c.t = t
		evs := []string{
			c.send("test/ratelimit", map[string]any{"key": "r1"}),
			c.send("test/ratelimit", map[string]any{"key": "r1"}),
			c.send("test/ratelimit", map[string]any{"key": "r2"}),
		}
		statuses := []string{}
		for _, ev := range evs {
			statuses = append(statuses, c.waitRun(ev, 60*time.Second).Status)
		}
		if statuses[0] != "completed" || statuses[1] != "skipped" || statuses[2] != "completed" {
			t.Fatalf("statuses %v, want completed, skipped, completed", statuses)
		}
		r := c.waitRun(evs[1], time.Second)
		found := false
		for _, h := range c.history(r.ID) {
			found = found || h.Type == "run.skipped"
		}
		if !found {
			t.Fatal("the skip is not in the run's history")
		}
	})

	t.Run("DebounceKeepsTheLastEvent", func(t *testing.T) {
		c.t = t
		var evs []string
		for n := 1; n <= 3; n++ {
			evs = append(evs, c.send("test/debounce", map[string]any{"key": "d1", "n": n}))
		}
		r := c.waitRun(evs[2], 60*time.Second)
		if r.Status != "completed" || string(r.Output) != "3" {
			t.Fatalf("status %s output %s", r.Status, r.Output)
		}
		for _, ev := range evs[:2] {
			if other := c.runOf(ev); other != r.ID {
				t.Fatalf("event %s has its own run %s; want the debounced run %s", ev, other, r.ID)
			}
		}
	})

	t.Run("BatchOfThreeIsOneRun", func(t *testing.T) {
		c.t = t
		var evs []string
		for n := 1; n <= 3; n++ {
			evs = append(evs, c.send("test/batch", map[string]any{"n": n}))
		}
		r := c.waitRun(evs[0], 60*time.Second)
		if r.Status != "completed" || string(r.Output) != "[1,2,3]" {
			t.Fatalf("status %s output %s", r.Status, r.Output)
		}
		if c.runOf(evs[2]) != r.ID {
			t.Fatal("the third event is not in the batch run")
		}
	})

	t.Run("SingletonSkipsWhileRunning", func(t *testing.T) {
		c.t = t
		first := c.send("test/singleton", map[string]any{"key": "s1"})
		c.waitHistory(c.runOf(first), "step.sleeping")
		second := c.send("test/singleton", map[string]any{"key": "s1"})
		if r := c.waitRun(second, 30*time.Second); r.Status != "skipped" {
			t.Fatalf("second singleton run: %s", r.Status)
		}
		if r := c.waitRun(first, 30*time.Second); r.Status != "completed" {
			t.Fatalf("first singleton run: %s", r.Status)
		}
	})

	t.Run("PriorityJumpsTheQueue", func(t *testing.T) {
		c.t = t
		blocker := c.send("test/priority", map[string]any{"vip": false})
		c.waitHistory(c.runOf(blocker), "call.claimed")
		normal := c.send("test/priority", map[string]any{"vip": false})
		c.waitHistory(c.runOf(normal), "call.waiting")
		vip := c.send("test/priority", map[string]any{"vip": true})
		c.waitHistory(c.runOf(vip), "call.waiting")
		var n, v workOut
		json.Unmarshal(c.waitRun(normal, 60*time.Second).Output, &n)
		json.Unmarshal(c.waitRun(vip, 60*time.Second).Output, &v)
		if v.Start == 0 || n.Start == 0 || v.Start > n.Start {
			t.Fatalf("vip started at %d, normal at %d: want vip first", v.Start, n.Start)
		}
	})
}

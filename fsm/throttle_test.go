package fsm_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// startTimes sends n events at t0 to a function with the given flow control
// and returns, per event in order, when its run's first call is due (-1 for
// a run that flow control skipped).
func startTimes(t *testing.T, n int, t0 int64, mod func(*fsm.FunctionDef)) []int64 {
	t.Helper()
	v := newVocab(t)
	v.apply(vApp(vFn("app-th", func(d *fsm.FunctionDef) {
		d.Triggers = []fsm.Trigger{{Event: "go"}}
		mod(d)
	})))
	var out []int64
	for i := range n {
		res := v.apply(vEvent(t0, fmt.Sprintf("e%d", i), "go", `{}`))
		if len(res[0].Runs) != 1 {
			t.Fatalf("event %d: runs %v", i, res[0].Runs)
		}
		run := res[0].Runs[0]
		if v.run(run).Status == fsm.StatusSkipped {
			out = append(out, -1)
			continue
		}
		c, err := v.f.Call(run, fsm.DiscoveryCall)
		if err != nil || c == nil {
			t.Fatalf("run %s has no discovery call: %v", run, err)
		}
		out = append(out, c.Due-t0)
	}
	return out
}

// TestThrottleAdmitsLimitAtOnce: Inngest's throttle starts `limit` runs at
// once (limit×burst with a burst), then one every period/limit.
func TestThrottleAdmitsLimitAtOnce(t *testing.T) {
	const t0 = 1_000_000
	cases := []struct {
		name         string
		limit, burst int
		n            int
		want         []int64
	}{
		{"limit 3 per minute", 3, 0, 5, []int64{0, 0, 0, 20000, 40000}},
		{"burst 1 is no burst", 3, 1, 5, []int64{0, 0, 0, 20000, 40000}},
		{"burst 2", 3, 2, 8, []int64{0, 0, 0, 0, 0, 0, 20000, 40000}},
		{"limit 1", 1, 0, 3, []int64{0, 60000, 120000}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := startTimes(t, c.n, t0, func(d *fsm.FunctionDef) {
				d.Throttle = fsm.Throttle(c.limit, 60000, "", c.burst)
			})
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("starts after t0 %v, want %v", got, c.want)
			}
		})
	}
}

// TestThrottleOldDefinitionsKeepTheirMath: a definition recorded before
// fsm.Throttle (Burst as the SDK gave it) must replay as it was applied:
// one at once, then one every period/limit.
func TestThrottleOldDefinitionsKeepTheirMath(t *testing.T) {
	got := startTimes(t, 4, 5000, func(d *fsm.FunctionDef) {
		d.Throttle = &fsm.RateSpec{Limit: 3, PeriodMs: 60000}
	})
	if want := []int64{0, 20000, 40000, 60000}; !reflect.DeepEqual(got, want) {
		t.Fatalf("starts after t0 %v, want %v", got, want)
	}
}

// TestRateLimitAdmitsLimitAtOnce: a rate limit already lets `limit` runs
// through at once and skips the rest.
func TestRateLimitAdmitsLimitAtOnce(t *testing.T) {
	got := startTimes(t, 5, 5000, func(d *fsm.FunctionDef) {
		d.RateLimit = &fsm.RateSpec{Limit: 3, PeriodMs: 60000}
	})
	if want := []int64{0, 0, 0, -1, -1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("starts after t0 %v, want %v", got, want)
	}
}

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/server"
)

func TestLimits(t *testing.T) { inModes(t, testLimits) }

// The SDK sees a step over the output limit as a failed step it can catch;
// runs past the state or step limit fail with Inngest's error names.
func testLimits(t *testing.T, opts ...func(*server.Config)) {
	limits := fsm.Limits{StepOutputBytes: 64 << 10, RunStateBytes: 256 << 10, StepsPerRun: 10}
	c, _ := withApp(t, append(opts, func(cfg *server.Config) { cfg.Limits = &limits })...)

	for _, tc := range []struct {
		name, event string
		data        map[string]any
		status      string
		want        string // in the output (completed) or the error (failed)
	}{
		{"a step within the limit", "test/big-step", map[string]any{"bytes": 1000}, "completed", `{"length":1000}`},
		{"a step over the limit fails", "test/big-step", map[string]any{"bytes": 100_000}, "completed",
			`{"caught":"OutputTooLarge","message":"the step's output is 100002 bytes; the limit is 64 KiB"}`},
		{"too many steps", "test/many-steps", map[string]any{"steps": 20, "bytes": 1}, "failed", fsm.ErrFunctionOverflowed},
		{"too much state", "test/many-steps", map[string]any{"steps": 8, "bytes": 60_000}, "failed", fsm.ErrStateOverflowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			r := c.waitRun(c.send(tc.event, tc.data), 60*time.Second)
			got := string(r.Output)
			if tc.status == "failed" {
				got = string(r.Error)
				var e struct{ Name string }
				if json.Unmarshal(r.Error, &e); e.Name != tc.want {
					t.Errorf("error name %q, want %q", e.Name, tc.want)
				}
			}
			if r.Status != tc.status || !strings.Contains(got, tc.want) {
				t.Fatalf("status %s output %s error %s; want %s with %s", r.Status, r.Output, r.Error, tc.status, tc.want)
			}
		})
	}
}

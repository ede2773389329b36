package fsm_test

import (
	"fmt"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// TestPriorityFromAnyFloatIsTheSameOnEveryCPU: Go leaves converting NaN,
// ±Inf or a float past int64 to the CPU (amd64 gives MinInt64, arm64
// saturates); a priority from such a float is -600 everywhere, as amd64
// always gave.
func TestPriorityFromAnyFloatIsTheSameOnEveryCPU(t *testing.T) {
	v := newVocab(t)
	v.apply(vApp(vFn("app-prio", func(d *fsm.FunctionDef) {
		d.Triggers = []fsm.Trigger{{Event: "go"}}
		d.Priority = "double(event.data.p)"
	})))
	cases := []struct {
		p    string
		want int64
	}{
		{"NaN", -600}, {"+Inf", -600}, {"-Inf", -600}, {"1e300", -600}, {"-1e300", -600},
		{"9.3e18", -600}, {"1e3", 600}, {"-1e3", -600}, {"599.9", 599}, {"-12.5", -12},
	}
	for i, c := range cases {
		res := v.apply(vEvent(1000, fmt.Sprintf("e%d", i), "go", fmt.Sprintf(`{"p":%q}`, c.p)))
		if len(res[0].Runs) != 1 {
			t.Fatalf("%s: runs %v", c.p, res[0].Runs)
		}
		if got := v.run(res[0].Runs[0]).Priority; got != c.want {
			t.Errorf("priority from %s = %d, want %d", c.p, got, c.want)
		}
	}
}

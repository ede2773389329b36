package api

import (
	"encoding/json"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// A run's history view names each entry's step, labels its data, and
// times steps and the run, from the entries alone.
func TestHistoryView(t *testing.T) {
	const t0 = 1_800_000_000_000
	hist := []fsm.HistoryEntry{
		{At: t0, Type: fsm.HistRunScheduled, Name: "shop/order", Detail: "event 01EV"},
		{At: t0 + 10, Type: fsm.HistCallClaimed, Call: fsm.DiscoveryCall},
		{At: t0 + 30, Type: fsm.HistStepCompleted, Call: fsm.DiscoveryCall, Name: "fetch", Detail: "s1", Data: []byte(`{"a":1}`)},
		{At: t0 + 40, Type: fsm.HistStepPlanned, Call: fsm.DiscoveryCall, Name: "charge", Detail: "s2"},
		{At: t0 + 50, Type: fsm.HistCallClaimed, Call: "s2"},
		{At: t0 + 80, Type: fsm.HistStepErrored, Call: "s2", Name: "charge", Detail: "s2", Data: []byte(`{"message":"declined"}`)},
		{At: t0 + 1000, Type: fsm.HistCallClaimed, Call: "s2", Attempt: 1},
		{At: t0 + 1005, Type: fsm.HistStepCompleted, Call: "s2", Attempt: 1, Name: "charge", Detail: "s2", Data: []byte(`"ok"`)},
		{At: t0 + 1010, Type: fsm.HistStepSleeping, Call: fsm.DiscoveryCall, Name: "nap", Detail: "s3 until 1800000003010"},
		{At: t0 + 3010, Type: fsm.HistStepWoke, Detail: "s3", Data: []byte(`null`)},
		{At: t0 + 3020, Type: fsm.HistRunEnded(fsm.StatusCompleted), Data: []byte(`{"done":true}`)},
	}
	v := ViewHistory(hist, []byte(`{"name":"shop/order","data":{"n":1}}`))
	type want struct {
		step, name      string
		output, errText string
		duration        int64 // -1: none
	}
	wants := []want{
		{"", "", "", "", -1},
		{"", "", "", "", -1},
		{"s1", "fetch", `{"a":1}`, "", 20},
		{"s2", "charge", "", "", -1},
		{"s2", "charge", "", "", -1},
		{"s2", "charge", "", `{"message":"declined"}`, 30},
		{"s2", "charge", "", "", -1},
		{"s2", "charge", `"ok"`, "", 5},
		{"s3", "nap", "", "", -1},
		{"s3", "nap", "null", "", 2000},
		{"", "", `{"done":true}`, "", 3020},
	}
	for i, w := range wants {
		got := v[i]
		d := int64(-1)
		if got.DurationMs != nil {
			d = *got.DurationMs
		}
		if got.Step != w.step || got.StepName != w.name || string(got.Output) != w.output || string(got.Error) != w.errText || d != w.duration {
			t.Errorf("entry %d (%s): step %q name %q output %s error %s duration %d; want %+v",
				i, got.Type, got.Step, got.StepName, got.Output, got.Error, d, w)
		}
	}
	if string(v[0].Input) != `{"name":"shop/order","data":{"n":1}}` || v[0].Time != "2027-01-15T08:00:00.000Z" {
		t.Errorf("first entry: input %s time %s", v[0].Input, v[0].Time)
	}
	// The stored fields keep their names: readers of "data", "at", "name"
	// and "detail" see what they saw before.
	b, _ := json.Marshal(v[2])
	var m map[string]any
	json.Unmarshal(b, &m)
	if m["name"] != "fetch" || m["detail"] != "s1" || m["at"] != float64(t0+30) || m["data"] == nil || m["type"] != "step.completed" {
		t.Errorf("stored fields: %s", b)
	}
}

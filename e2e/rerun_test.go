package e2e

import (
	"strings"
	"time"
)

// waitRunID waits until a run has finished.
func (c client) waitRunID(id string, timeout time.Duration) run {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var out struct {
		Data run `json:"data"`
	}
	for time.Now().Before(deadline) {
		if code, err := c.do("GET", "/v1/runs/"+id, nil, &out); err == nil && code == 200 && out.Data.Status != "running" {
			return out.Data
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("run %s not finished after %s (last: %+v)", id, timeout, out.Data)
	return run{}
}

// rerun asks for a rerun of a run and returns the new run's id.
func (c client) rerun(runID string, body any) string {
	c.t.Helper()
	var out struct {
		Data struct {
			RunID string `json:"run_id"`
		} `json:"data"`
	}
	if code, err := c.do("POST", "/v1/runs/"+runID+"/rerun", body, &out); err != nil || code != 201 {
		c.t.Fatalf("rerun %s: %d %v", runID, code, err)
	}
	return out.Data.RunID
}

// testRerunFromStep reruns the seed function from its second step: the
// first step's body must not run again, the later ones run once, and the
// result is the same; a rerun from the start runs every step.
func testRerunFromStep(c client, app *tsApp) {
	t := c.t
	old := c.waitRun(c.send("contacts/csv.uploaded", map[string]any{"csv": "email,name\nc@x.io,Cy"}), 60*time.Second)
	if old.Status != "completed" {
		t.Fatalf("seed run %s: %s", old.Status, old.Error)
	}
	for _, tc := range []struct {
		body any
		want map[string]int
	}{
		{map[string]string{"from_step": "normalize-raw-csv"}, map[string]int{"normalize-raw-csv": 1, "input-contacts": 1}},
		{nil, map[string]int{"parse-csv": 1, "normalize-raw-csv": 1, "input-contacts": 1}},
	} {
		id := c.rerun(old.ID, tc.body)
		r := c.waitRunID(id, 60*time.Second)
		if r.Status != "completed" || string(r.Output) != string(old.Output) {
			t.Fatalf("rerun %v: %s output %s error %s, want output %s", tc.body, r.Status, r.Output, r.Error, old.Output)
		}
		got := app.executions(t, id)
		if len(got) != len(tc.want) {
			t.Errorf("rerun %v executed %v, want %v", tc.body, got, tc.want)
		}
		for step, n := range tc.want {
			if got[step] != n {
				t.Errorf("rerun %v executed %v, want %v", tc.body, got, tc.want)
			}
		}
		linked := false
		for _, h := range c.history(id) {
			linked = linked || (h.Type == "run.rerun_of" && strings.Contains(h.Detail, old.ID))
		}
		if !linked {
			t.Errorf("rerun %s's history does not name the run it reruns", id)
		}
	}
	if ex := app.executions(t, old.ID); ex["parse-csv"] != 1 || ex["input-contacts"] != 1 {
		t.Errorf("the old run's steps ran again: %v", ex)
	}
}

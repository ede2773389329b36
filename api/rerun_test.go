package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/server"
)

// flipApp registers function "flip" (no retries), whose app fails every
// call until ok is set, then answers "ok".
func flipApp(t *testing.T, s *server.Server) (ok *atomic.Bool) {
	t.Helper()
	ok = new(atomic.Bool)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Inngest-SDK", "go:test")
		if ok.Load() {
			w.Write([]byte(`"ok"`))
			return
		}
		w.Header().Set("X-Inngest-No-Retry", "true")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"name":"Error","message":"flip is off"}`))
	}))
	t.Cleanup(app.Close)
	fn := fmt.Sprintf(`{"id":"flip","name":"flip","triggers":[{"event":"app/flip"}],"steps":{"step":{"id":"step","name":"step","runtime":{"type":"http","url":"%s?fnId=flip&stepId=step"}}}}`, app.URL)
	if resp := post(t, s.URL()+"/fn/register", registerBody(app.URL, fn), nil); resp.status != 200 {
		t.Fatalf("register: %d %s", resp.status, resp.body)
	}
	return ok
}

// sendAndWait sends one app/flip event and waits for its run to end.
func sendAndWait(t *testing.T, s *server.Server) *fsm.Run {
	t.Helper()
	resp := post(t, s.URL()+"/e/key", `{"name":"app/flip","data":{}}`, nil)
	var sent struct{ IDs []string }
	if err := json.Unmarshal(resp.body, &sent); err != nil || len(sent.IDs) != 1 {
		t.Fatalf("send: %d %s", resp.status, resp.body)
	}
	var run string
	waitFor(t, "the run to end", func() bool {
		runs, _ := s.FSM.RunsForEvent(sent.IDs[0])
		if len(runs) == 1 {
			run = runs[0]
			r, _ := s.FSM.Run(run)
			return r != nil && r.Done()
		}
		return false
	})
	r, _ := s.FSM.Run(run)
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRerun(t *testing.T) {
	s := startNode(t)
	ok := flipApp(t, s)
	old := sendAndWait(t, s)
	if old.Status != fsm.StatusFailed {
		t.Fatalf("run is %s, want failed", old.Status)
	}
	for _, c := range []struct {
		path, body string
		status     int
	}{
		{"/v1/runs/01NOSUCHRUN/rerun", ``, 404},
		{"/v1/runs/" + old.ID + "/rerun", `{"from_step": "no-such-step"}`, 400},
		{"/v1/runs/" + old.ID + "/rerun", `{"from_step": `, 400},
	} {
		before := position(s)
		if resp := post(t, s.URL()+c.path, c.body, nil); resp.status != c.status {
			t.Errorf("POST %s %s: %d %s, want %d", c.path, c.body, resp.status, resp.body, c.status)
		}
		if after := position(s); after != before {
			t.Errorf("POST %s %s moved the log", c.path, c.body)
		}
	}
	ok.Store(true)
	resp := post(t, s.URL()+"/v1/runs/"+old.ID+"/rerun", ``, nil)
	var out struct {
		Data struct {
			RunID string `json:"run_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil || resp.status != http.StatusCreated || out.Data.RunID == "" {
		t.Fatalf("rerun: %d %s", resp.status, resp.body)
	}
	waitFor(t, "the rerun to complete", func() bool {
		r, _ := s.FSM.Run(out.Data.RunID)
		return r != nil && r.Status == fsm.StatusCompleted
	})
	r, _ := s.FSM.Run(out.Data.RunID)
	if r.RerunOf != old.ID || !slices.Equal(r.EventIDs, old.EventIDs) || string(r.Output) != `"ok"` {
		t.Fatalf("rerun %+v", r)
	}
	if again, _ := s.FSM.Run(old.ID); again.Status != fsm.StatusFailed {
		t.Fatalf("the old run is now %s", again.Status)
	}
	hist := get(t, s.URL()+"/v1/runs/"+old.ID+"/history")
	if !jsonContains(hist.body, fsm.HistRunRerun) {
		t.Errorf("old run's history does not name the rerun: %s", hist.body)
	}
}

func jsonContains(body []byte, s string) bool {
	return json.Valid(body) && slices.Contains(splitQuoted(body), s)
}

// splitQuoted lists the JSON strings in body.
func splitQuoted(body []byte) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var v any
	json.Unmarshal(body, &v)
	walk(v)
	return out
}

func TestBulkReplayReplaysExactlyTheWindow(t *testing.T) {
	s := startNode(t)
	ok := flipApp(t, s)
	before := sendAndWait(t, s) // failed, outside the window
	time.Sleep(5 * time.Millisecond)
	from := time.Now().UnixMilli()
	var inWindow []string
	for range 3 {
		inWindow = append(inWindow, sendAndWait(t, s).ID)
	}
	ok.Store(true)
	completed := sendAndWait(t, s) // in the window, but completed
	to := time.Now().UnixMilli()
	if before.Status != fsm.StatusFailed || completed.Status != fsm.StatusCompleted {
		t.Fatalf("setup: %s %s", before.Status, completed.Status)
	}

	for _, body := range []string{
		`{`,
		`{"from": 0}`,
		`{"function_id": "nope", "from": 0}`,
		`{"function_id": "flip"}`,
		`{"function_id": "flip", "from": "yesterday"}`,
		fmt.Sprintf(`{"function_id": "flip", "from": %d, "to": %d}`, to, from),
		`{"function_id": "flip", "from": 0, "statuses": ["broken"]}`,
	} {
		pos := position(s)
		if resp := post(t, s.URL()+"/v1/replays", body, nil); resp.status/100 != 4 {
			t.Errorf("POST /v1/replays %s: %d %s, want a 4xx", body, resp.status, resp.body)
		}
		if position(s) != pos {
			t.Errorf("POST /v1/replays %s moved the log", body)
		}
	}

	// "flip" as the app named it, RFC 3339 and unix ms mixed.
	body := fmt.Sprintf(`{"function_id": "flip", "from": %q, "to": %d, "statuses": ["failed"]}`,
		time.UnixMilli(from).UTC().Format(time.RFC3339Nano), to)
	resp := post(t, s.URL()+"/v1/replays", body, nil)
	var started struct {
		Data struct {
			ID   string `json:"replay_id"`
			Runs int    `json:"runs"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &started); err != nil || resp.status != http.StatusCreated || started.Data.Runs != 3 {
		t.Fatalf("replay: %d %s", resp.status, resp.body)
	}
	type progress struct {
		Data struct {
			Status  string          `json:"status"`
			Started int             `json:"started"`
			Reruns  map[string]int  `json:"reruns"`
			Places  []fsm.ReplayRun `json:"places"`
		} `json:"data"`
	}
	var p progress
	waitFor(t, "the replay's reruns to complete", func() bool {
		r := get(t, s.URL()+"/v1/replays/"+started.Data.ID+"?places=true")
		p = progress{}
		return json.Unmarshal(r.body, &p) == nil && p.Data.Status == fsm.ReplayStatusCompleted && p.Data.Reruns[fsm.StatusCompleted] == 3
	})
	var replayed []string
	for _, pl := range p.Data.Places {
		replayed = append(replayed, pl.Old)
		r, _ := s.FSM.Run(pl.New)
		if r == nil || r.RerunOf != pl.Old {
			t.Errorf("place %+v: rerun %+v", pl, r)
		}
	}
	if !slices.Equal(replayed, inWindow) {
		t.Fatalf("replayed %v, want the window's failed runs %v", replayed, inWindow)
	}
	if resp := post(t, s.URL()+"/v1/replays/"+started.Data.ID+"/cancel", ``, nil); resp.status != http.StatusConflict {
		t.Errorf("cancel of a finished replay: %d %s", resp.status, resp.body)
	}
	if resp := get(t, s.URL()+"/v1/replays/nope"); resp.status != http.StatusNotFound {
		t.Errorf("unknown replay: %d", resp.status)
	}
}

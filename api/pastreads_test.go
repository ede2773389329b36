package api_test

import (
	"encoding/json"
	"fmt"
	"github.com/cairn-dev/cairn/api"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/server"
)

// failingApp runs step "a", then fails its function (a non-retriable
// error) a little later, so that the failure's record has a later time.
func failingApp(t *testing.T) *httptest.Server {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Steps map[string]json.RawMessage `json:"steps"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("X-Inngest-SDK", "cairn-test:v0")
		w.Header().Set("Content-Type", "application/json")
		if len(body.Steps) == 0 {
			w.WriteHeader(206)
			io.WriteString(w, `[{"id":"a","op":"StepRun","name":"a","data":1}]`)
			return
		}
		time.Sleep(30 * time.Millisecond)
		w.Header().Set("X-Inngest-No-Retry", "true")
		w.WriteHeader(500)
		io.WriteString(w, `{"name":"Error","message":"boom"}`)
	}))
	t.Cleanup(app.Close)
	return app
}

type stateData = api.StateView

func getState(t *testing.T, base, query string) stateData {
	t.Helper()
	resp := get(t, base+"/v1/state"+query)
	var out struct {
		Data stateData `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil || resp.status != 200 {
		t.Fatalf("GET /v1/state%s: %d %s", query, resp.status, resp.body)
	}
	return out.Data
}

func runStatusAt(t *testing.T, base, runID, query string) string {
	t.Helper()
	resp := get(t, base+"/v1/runs/"+runID+query)
	var out struct {
		Data struct {
			Status string `json:"status"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil || resp.status != 200 {
		t.Fatalf("GET run%s: %d %s", query, resp.status, resp.body)
	}
	return out.Data.Status
}

func rfc3339ms(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// A run reads as it was at a past log index or time: running before the
// record that failed it, failed from there on; the whole state at the
// applied index has the live digest; bad parameters are refused; and none
// of it moves the live projection.
func TestRunAndStateAtPastIndex(t *testing.T) {
	s := startNode(t, func(c *server.Config) { c.TrailingLogs, c.Archive.Off = 2, true })
	base := s.URL()
	app := failingApp(t)
	fn := fmt.Sprintf(`{"id":"fails","name":"fails","triggers":[{"event":"app/x"}],"steps":{"step":{"id":"step","name":"step","runtime":{"type":"http","url":"%s?fnId=fails&stepId=step"}}}}`, app.URL)
	if resp := post(t, base+"/fn/register", registerBody(app.URL, fn), nil); resp.status != 200 {
		t.Fatalf("register: %d %s", resp.status, resp.body)
	}
	resp := post(t, base+"/e/key", `{"name":"app/x","data":{}}`, nil)
	var sent struct{ IDs []string }
	if err := json.Unmarshal(resp.body, &sent); err != nil || len(sent.IDs) != 1 {
		t.Fatalf("send: %d %s", resp.status, resp.body)
	}
	var runID string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if runs, _ := s.FSM.RunsForEvent(sent.IDs[0]); len(runs) == 1 {
			if r, _ := s.FSM.Run(runs[0]); r != nil && r.Status == fsm.StatusFailed {
				runID = r.ID
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the run did not fail")
		}
	}
	hist, err := s.FSM.History(runID)
	if err != nil {
		t.Fatal(err)
	}
	var failed, before fsm.HistoryEntry
	for _, h := range hist {
		if h.Type == fsm.HistRunEnded(fsm.StatusFailed) {
			failed = h
			break
		}
		before = h
	}
	if failed.Index == 0 || before.Index == 0 || before.Index >= failed.Index || before.At >= failed.At {
		t.Fatalf("history: the failure %+v and the entry before it %+v", failed, before)
	}
	live := position(s)
	liveDigest, _ := s.FSM.StateDigest()

	// By index.
	if st := runStatusAt(t, base, runID, fmt.Sprintf("?at_index=%d", before.Index)); st != fsm.StatusRunning {
		t.Fatalf("at index %d (before the failure) the run is %q", before.Index, st)
	}
	if st := runStatusAt(t, base, runID, fmt.Sprintf("?at_index=%d", live.applied)); st != fsm.StatusFailed {
		t.Fatalf("at the applied index the run is %q", st)
	}
	if resp := get(t, base+fmt.Sprintf("/v1/runs/%s?at_index=%d", runID, hist[0].Index-1)); resp.status != 404 {
		t.Fatalf("before the run existed: %d %s", resp.status, resp.body)
	}
	// By time: the last index whose records are at or before it.
	if st := runStatusAt(t, base, runID, "?at="+url.QueryEscape(rfc3339ms(before.At))); st != fsm.StatusRunning {
		t.Fatalf("at %s (before the failure) the run is %q", rfc3339ms(before.At), st)
	}
	if st := runStatusAt(t, base, runID, "?at="+url.QueryEscape(rfc3339ms(failed.At))); st != fsm.StatusFailed {
		t.Fatalf("at %s (the failure's time) the run is %q", rfc3339ms(failed.At), st)
	}
	// The history as it was: a prefix of today's.
	resp = get(t, base+fmt.Sprintf("/v1/runs/%s/history?at_index=%d", runID, before.Index))
	var past struct {
		Data []fsm.HistoryEntry `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &past); err != nil || resp.status != 200 || len(past.Data) == 0 || len(past.Data) >= len(hist) {
		t.Fatalf("history at %d: %d %s", before.Index, resp.status, resp.body)
	}
	for i, h := range past.Data {
		if h.Index > before.Index || h.Seq != hist[i].Seq {
			t.Fatalf("history at %d holds %+v", before.Index, h)
		}
	}

	// The whole state: live, at the applied index, before the failure.
	now := getState(t, base, "")
	if now.Index != live.applied || now.Digest != liveDigest || now.Runs[fsm.StatusFailed] != 1 {
		t.Fatalf("live state %+v, want index %d digest %s", now, live.applied, liveDigest)
	}
	then := getState(t, base, fmt.Sprintf("?at_index=%d", live.applied))
	if then.Index != live.applied || then.Digest != liveDigest || then.Runs[fsm.StatusFailed] != 1 {
		t.Fatalf("state at the applied index %+v, live digest %s", then, liveDigest)
	}
	earlier := getState(t, base, fmt.Sprintf("?at_index=%d", before.Index))
	if earlier.Digest == liveDigest || earlier.Runs[fsm.StatusRunning] != 1 || earlier.Runs[fsm.StatusFailed] != 0 {
		t.Fatalf("state before the failure %+v", earlier)
	}

	// Refusals.
	for _, c := range []struct {
		query string
		code  int
	}{
		{"?at_index=abc", 400},
		{"?at_index=-1", 400},
		{"?at=yesterday", 400},
		{"?at=2026-01-01", 400},
		{"?at_index=1&at=2026-01-01T00:00:00Z", 400},
		{fmt.Sprintf("?at_index=%d", live.applied+1000), 400},
	} {
		if resp := get(t, base+"/v1/state"+c.query); resp.status != c.code {
			t.Errorf("GET /v1/state%s: %d %s, want %d", c.query, resp.status, resp.body, c.code)
		}
		if resp := get(t, base+"/v1/runs/"+runID+c.query); resp.status != c.code {
			t.Errorf("GET run%s: %d %s, want %d", c.query, resp.status, resp.body, c.code)
		}
	}
	if got := position(s); got != live {
		t.Fatalf("point-in-time reads moved the live projection: %+v, was %+v", got, live)
	}
	if d, _ := s.FSM.StateDigest(); d != liveDigest {
		t.Fatal("point-in-time reads changed the live digest")
	}

	// Compacted without the archive: the log before the snapshot is gone
	// (TrailingLogs 2), so an early index no state was kept for is refused
	// as gone.
	if err := s.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	resp = get(t, base+"/v1/state?at_index=2")
	if resp.status != http.StatusGone {
		t.Fatalf("an index behind the snapshot: %d %s, want 410", resp.status, resp.body)
	}
	t.Logf("410: %s", resp.body)
	if got := getState(t, base, fmt.Sprintf("?at_index=%d", live.applied)); got.Digest != liveDigest {
		t.Fatalf("after compaction, the state at the applied index %+v", got)
	}
}

// With the archive (the default), an index whose entries compaction moved
// out of Raft's log reads as the live state read then.
func TestPastStateReadsTheArchive(t *testing.T) {
	s := startNode(t, func(c *server.Config) { c.TrailingLogs = 2 })
	base := s.URL()
	live := map[uint64]string{} // index -> the live digest read there
	for i := range 5 {
		if resp := post(t, base+"/e/key", fmt.Sprintf(`{"name":"app/x","data":{"i":%d}}`, i), nil); resp.status != 200 {
			t.Fatalf("send: %d %s", resp.status, resp.body)
		}
		now := getState(t, base, "")
		live[now.Index] = now.Digest
	}
	if err := s.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if st := s.Node.ArchiveStatus(); st == nil || st.Segments == 0 {
		t.Fatalf("nothing archived: %+v", st)
	}
	for idx, d := range live {
		if got := getState(t, base, fmt.Sprintf("?at_index=%d", idx)); got.Digest != d {
			t.Fatalf("after compaction, index %d reads %+v, live then %s", idx, got, d)
		}
	}
}

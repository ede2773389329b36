package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// callGoApp posts a discovery call for the 3-step function to the raw app
// whose Cairn answers checkpoints with status, and returns the answer and
// the checkpoints it received.
func callGoApp(t *testing.T, status int, fnID string) (*http.Response, []byte, int64) {
	t.Helper()
	var got atomic.Int64
	cairn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/checkpoint/run1/async" {
			t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		}
		var b checkpointBodyForTest
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.QiID != "run1:1:1" || b.FnID != fnID || len(b.Steps) != 1 {
			t.Errorf("checkpoint body %+v (%v)", b, err)
		}
		got.Add(1)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{}`)
	}))
	defer cairn.Close()
	a := &rawApp{appMeters: newAppMeters(), cairnURL: cairn.URL}
	body := `{"event":{"id":"e1","data":{}},"steps":{},"ctx":{"run_id":"run1","fn_id":"` + fnID +
		`","qi_id":"run1:1:1","attempt":0,"stack":{"stack":[]}}}`
	req := httptest.NewRequest(http.MethodPost, "/api/inngest?fnId="+goFnID+"&stepId=step", strings.NewReader(body))
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	res := rec.Result()
	out, _ := io.ReadAll(res.Body)
	return res, out, got.Load()
}

type checkpointBodyForTest struct {
	RunID string            `json:"run_id"`
	FnID  string            `json:"fn_id"`
	QiID  string            `json:"qi_id"`
	Steps []json.RawMessage `json:"steps"`
}

func TestGoAppCheckpointing(t *testing.T) {
	res, out, n := callGoApp(t, http.StatusOK, "fn-uuid")
	if res.StatusCode != http.StatusPartialContent || n != 3 ||
		!strings.Contains(string(out), `"op":"RunComplete"`) || !strings.Contains(string(out), completeID) {
		t.Fatalf("all checkpointed: %d %s after %d checkpoints", res.StatusCode, out, n)
	}

	res, out, n = callGoApp(t, http.StatusConflict, "fn-uuid")
	if res.StatusCode != http.StatusBadRequest || res.Header.Get("X-Inngest-No-Retry") != "true" || n != 1 ||
		!strings.Contains(string(out), "StaleDispatchError") {
		t.Fatalf("409: %d %q %s after %d checkpoints", res.StatusCode, res.Header.Get("X-Inngest-No-Retry"), out, n)
	}

	res, out, n = callGoApp(t, http.StatusInternalServerError, "fn-uuid")
	var ops []struct{ ID, Op string }
	if err := json.Unmarshal(out, &ops); err != nil || res.StatusCode != http.StatusPartialContent || n != 5 ||
		len(ops) != 1 || ops[0].Op != "StepRun" || ops[0].ID != goSteps[0].id {
		t.Fatalf("500: %d %s after %d checkpoints (%v)", res.StatusCode, out, n, err)
	}

	// Without ctx.fn_id: classic, the first step alone, no checkpoint.
	res, out, n = callGoApp(t, http.StatusOK, "")
	if err := json.Unmarshal(out, &ops); err != nil || res.StatusCode != http.StatusPartialContent || n != 0 ||
		len(ops) != 1 || ops[0].ID != goSteps[0].id {
		t.Fatalf("classic: %d %s after %d checkpoints (%v)", res.StatusCode, out, n, err)
	}
}

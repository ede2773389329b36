package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	raftlog "github.com/cairn-dev/cairn/log"
	"github.com/hashicorp/raft"
)

// limitsApp answers like the SDK, per function:
//   - lim-output: one step of 100 KiB; when that step failed, the function
//     fails with the step's error, as an uncaught StepError does;
//   - lim-state: a new step of 60 KiB on every call;
//   - lim-steps: a new small step on every call.
func limitsApp(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Steps map[string]json.RawMessage `json:"steps"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("X-Inngest-SDK", "cairn-test:v0")
		w.Header().Set("Content-Type", "application/json")
		step := func(id string, size int) {
			w.WriteHeader(206)
			fmt.Fprintf(w, `[{"id":%q,"op":"StepRun","name":%q,"data":"%s"}]`, id, id, strings.Repeat("x", size))
		}
		switch r.URL.Query().Get("fnId") {
		case "lim-output":
			var memo struct{ Error json.RawMessage }
			if raw, ok := body.Steps["big"]; !ok {
				step("big", 100<<10)
			} else if json.Unmarshal(raw, &memo); memo.Error != nil {
				w.Header().Set("X-Inngest-No-Retry", "true")
				w.WriteHeader(500)
				w.Write(memo.Error)
			} else {
				t.Errorf("the step over the limit was memoized: %.100s", raw)
				w.WriteHeader(200)
			}
		case "lim-state":
			step(fmt.Sprintf("s%d", len(body.Steps)), 60<<10)
		case "lim-steps":
			step(fmt.Sprintf("s%d", len(body.Steps)), 1)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Runs that pass a limit fail with a named error, shown by the API, and an
// app's answer over the step output limit never reaches the log.
func TestRunsOverLimitsFailWithNamedErrors(t *testing.T) {
	limits := fsm.Limits{StepOutputBytes: 64 << 10, RunStateBytes: 256 << 10, StepsPerRun: 5}
	n := startNode(t, "n1", "", func(c *Config) { c.ServerKind, c.Limits = "dev", &limits })
	app := limitsApp(t)
	var fns []any
	for _, id := range []string{"lim-output", "lim-state", "lim-steps"} {
		fns = append(fns, map[string]any{"id": id, "name": id, "triggers": []any{map[string]any{"event": "lim/" + id}},
			"steps": map[string]any{"step": map[string]any{"id": "step", "name": "step",
				"runtime": map[string]any{"type": "http", "url": app.URL + "?fnId=" + id + "&stepId=step"}}}})
	}
	waitUntil(t, "registration", func() bool {
		code, _ := post(n.srv.URL()+"/fn/register", map[string]any{"url": app.URL, "appName": "lim", "sdk": "go:v0", "functions": fns})
		return code == 200
	})
	waitUntil(t, "the leader to record its limits", func() bool { l, _ := n.srv.FSM.Limits(); return l == limits })

	for fn, want := range map[string]string{
		"lim-output": fsm.ErrOutputTooLarge,
		"lim-state":  fsm.ErrStateOverflowed,
		"lim-steps":  fsm.ErrFunctionOverflowed,
	} {
		var sent struct{ IDs []string }
		if code, raw := post(n.srv.URL()+"/e/key", map[string]any{"name": "lim/" + fn, "data": map[string]any{}}); code != 200 {
			t.Fatalf("send: %d %s", code, raw)
		} else {
			json.Unmarshal(raw, &sent)
		}
		var run string
		waitUntil(t, fn+" to fail", func() bool {
			var out struct{ Data []struct{ ID, Status string } }
			get(n.srv.URL()+"/v1/events/"+sent.IDs[0]+"/runs", &out)
			if len(out.Data) == 1 {
				run = out.Data[0].ID
			}
			return len(out.Data) == 1 && out.Data[0].Status == fsm.StatusFailed
		})
		var view struct {
			Data struct {
				Error struct{ Name, Message string }
			}
		}
		get(n.srv.URL()+"/v1/runs/"+run, &view)
		if view.Data.Error.Name != want {
			t.Errorf("%s failed with %+v, want %s", fn, view.Data.Error, want)
		}
		var hist struct {
			Data []struct {
				Type string
				Data json.RawMessage
			}
		}
		get(n.srv.URL()+"/v1/runs/"+run+"/history", &hist)
		last := hist.Data[len(hist.Data)-1]
		if last.Type != "run.failed" || !strings.Contains(string(last.Data), want) {
			t.Errorf("%s: history ends with %s %s", fn, last.Type, last.Data)
		}
	}

	n.stop()
	store, err := raftlog.Open(filepath.Join(n.cfg.DataDir, "raft"), raftlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Data) > int(limits.StepOutputBytes) {
			t.Errorf("log entry %d is %d bytes, over the step output limit of %d", i, len(l.Data), limits.StepOutputBytes)
		}
	}
}

// An answer that arrives after its run was cancelled is not written: it
// is refused, and could be as large as the step output limit.
func TestAnswerToACancelledRunIsNotRecorded(t *testing.T) {
	called, release := make(chan struct{}), make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(called)
		<-release
		w.Header().Set("X-Inngest-SDK", "cairn-test:v0")
		w.WriteHeader(206)
		fmt.Fprintf(w, `[{"id":"late","op":"StepRun","name":"late","data":"%s"}]`, strings.Repeat("x", 1<<20))
	}))
	defer app.Close()
	n := startNode(t, "n1", "", func(c *Config) { c.ServerKind = "dev" })
	register(t, n, app.URL)
	id, _ := sendEvent(t, n)
	<-called
	var out struct{ Data []struct{ ID string } }
	get(n.srv.URL()+"/v1/events/"+id+"/runs", &out)
	if code, raw := post(n.srv.URL()+"/v1/runs/"+out.Data[0].ID+"/cancel", map[string]any{}); code != 200 {
		t.Fatalf("cancel: %d %s", code, raw)
	}
	before, _ := n.srv.FSM.Applied()
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if left := n.srv.Exec.Drain(ctx); left != 0 {
		t.Fatalf("%d calls still out", left)
	}
	if after, _ := n.srv.FSM.Applied(); after != before {
		t.Fatalf("the refused answer was written: applied index %d -> %d", before, after)
	}
}

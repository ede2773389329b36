package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/server"
)

// hangingRun registers a function whose app never answers, sends it an
// event and returns the run, once its first call is claimed (generation 1)
// and out to the app.
func hangingRun(t *testing.T, s *server.Server) string {
	t.Helper()
	release := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); app.Close() })
	fn := fmt.Sprintf(`{"id":"hang","name":"hang","triggers":[{"event":"app/x"}],"steps":{"step":{"id":"step","name":"step","runtime":{"type":"http","url":"%s?fnId=hang&stepId=step"}}}}`, app.URL)
	if resp := post(t, s.URL()+"/fn/register", registerBody(app.URL, fn), nil); resp.status != 200 {
		t.Fatalf("register: %d %s", resp.status, resp.body)
	}
	resp := post(t, s.URL()+"/e/key", `{"name":"app/x","data":{}}`, nil)
	var sent struct{ IDs []string }
	if err := json.Unmarshal(resp.body, &sent); err != nil || len(sent.IDs) != 1 {
		t.Fatalf("send: %d %s", resp.status, resp.body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		runs, _ := s.FSM.RunsForEvent(sent.IDs[0])
		if len(runs) == 1 {
			if c, _ := s.FSM.Call(runs[0], fsm.DiscoveryCall); c != nil && c.Claimed && c.Gen == 1 {
				return runs[0]
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the run's first call was not claimed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// answer posts one forwarded answer, as a deposed node does.
func answer(t *testing.T, s *server.Server, cf *fsm.CallFinished) response {
	t.Helper()
	return post(t, s.URL()+"/v1/internal/answers", string(mustEntry(t, cf)), nil)
}

func bigStep(n int) []fsm.Op {
	return []fsm.Op{{ID: "big", Op: "StepRun", Data: []byte(`"` + strings.Repeat("x", n) + `"`)}}
}

// Answers the projection already refuses are answered without proposing
// anything: five refused 30 MB answers once added 104 MiB to the log.
func TestRefusedAnswersAppendNothing(t *testing.T) {
	s := startNode(t)
	run := hangingRun(t, s)
	// The leader records its addresses once it has caught up: wait for
	// both, so that the log only grows because of requests from here on.
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := s.FSM.Node("n1"); !s.Node.CaughtUp() || n == nil; n, _ = s.FSM.Node("n1") {
		if time.Now().After(deadline) {
			t.Fatal("the leader never caught up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	refused := func(name string, cf *fsm.CallFinished, code fsm.Code) {
		t.Helper()
		before := position(s)
		resp := answer(t, s, cf)
		var out []struct {
			Code fsm.Code `json:"code"`
			Msg  string   `json:"msg"`
		}
		if err := json.Unmarshal(resp.body, &out); err != nil || resp.status != 200 || len(out) != 1 || out[0].Code != code {
			t.Fatalf("%s: %d %s, want code %v", name, resp.status, resp.body, code)
		}
		if after := position(s); after != before {
			t.Fatalf("%s: the refused answer was written: %v -> %v", name, before, after)
		}
	}
	const mb = 1 << 20
	refused("an older claim", &fsm.CallFinished{At: 1, RunID: run, Call: fsm.DiscoveryCall, Gen: 0, Status: 206, SDK: true, Ops: bigStep(3 * mb)}, fsm.Stale)
	refused("no such run", &fsm.CallFinished{At: 1, RunID: "01NOSUCHRUN000000000000000", Call: fsm.DiscoveryCall, Gen: 1, Status: 200, SDK: true}, fsm.NotFound)
	refused("no such call", &fsm.CallFinished{At: 1, RunID: run, Call: "nope", Gen: 1, Status: 200, SDK: true}, fsm.Stale)

	before := position(s)
	if resp := post(t, s.URL()+"/v1/runs/"+run+"/cancel", `{}`, nil); resp.status != 200 {
		t.Fatalf("cancel: %d %s", resp.status, resp.body)
	}
	if position(s) == before {
		t.Fatal("the cancel was not written")
	}
	refused("a cancelled run", &fsm.CallFinished{At: 1, RunID: run, Call: fsm.DiscoveryCall, Gen: 1, Status: 206, SDK: true, Ops: bigStep(3 * mb)}, fsm.Rejected)

	// Larger than any answer the executor sends: refused as it is read.
	before = position(s)
	huge := mustEntry(t, &fsm.CallFinished{RunID: run, Call: fsm.DiscoveryCall, Gen: 1, Status: 200, SDK: true,
		Body: bytes.Repeat([]byte("1"), int(fsm.DefaultLimits.AppResponseBytes())+2*mb)})
	if resp := post(t, s.URL()+"/v1/internal/answers", string(huge), nil); resp.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("an answer of %d bytes: %d %s", len(huge), resp.status, resp.body)
	}
	if after := position(s); after != before {
		t.Fatalf("the oversized answer was written: %v -> %v", before, after)
	}
}

// An answer that is current is recorded, but never with a value over the
// step output limit: it is screened as the executor screens its own.
func TestForwardedAnswersAreScreened(t *testing.T) {
	s := startNode(t)
	run := hangingRun(t, s)
	resp := answer(t, s, &fsm.CallFinished{At: time.Now().UnixMilli(), RunID: run, Call: fsm.DiscoveryCall, Gen: 1,
		Status: 206, SDK: true, Ops: bigStep(fsm.DefaultStepOutputBytes)})
	if resp.status != 200 || !strings.Contains(string(resp.body), `"code":0`) {
		t.Fatalf("answer: %d %s", resp.status, resp.body)
	}
	memo, _ := s.FSM.Memo(run, "big")
	if len(memo) > 1024 || !strings.Contains(string(memo), fsm.ErrOutputTooLarge) {
		t.Fatalf("memo of %d bytes: %.200s", len(memo), memo)
	}
}

func TestSignalDataOverTheLimitAppendsNothing(t *testing.T) {
	s := startNode(t, func(c *server.Config) { c.Limits = &fsm.Limits{StepOutputBytes: 1024} })
	deadline := time.Now().Add(10 * time.Second)
	for l, _ := s.FSM.Limits(); l.StepOutputBytes != 1024; l, _ = s.FSM.Limits() {
		if time.Now().After(deadline) {
			t.Fatalf("the leader did not record its limits: %+v", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := position(s)
	resp := post(t, s.URL()+"/v1/signals", `{"signal":"s","data":"`+strings.Repeat("x", 1024)+`"}`, nil)
	if resp.status != http.StatusRequestEntityTooLarge || !strings.Contains(string(resp.body), "the limit (a step's output) is 1 KiB") {
		t.Fatalf("status %d %s", resp.status, resp.body)
	}
	if after := position(s); after != before {
		t.Fatalf("a refused signal appended to the log: %v -> %v", before, after)
	}
}

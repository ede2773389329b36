package api_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// checkpointBody is what the SDK posts to /v1/checkpoint/{runId}/async,
// with the bookkeeping fields it sends along (protocol §6.1).
func asyncCheckpointBody(run, fnID, qiID string, ops ...string) string {
	return fmt.Sprintf(`{"run_id":%q,"fn_id":%q,"qi_id":%q,"request_id":"01REQ","generation_id":1,"request_started_at":1,"steps":[%s],"ts":2}`,
		run, fnID, qiID, strings.Join(ops, ","))
}

func stepOp(id, data string) string {
	return fmt.Sprintf(`{"id":%q,"mode":"sync","op":"StepRun","name":"n-%s","displayName":"n-%s","opts":{},"rawArgs":["n",null],"promise":{},"fulfilled":true,"data":%s,"timing":{"a":1,"b":0}}`,
		id, id, id, data)
}

// A checkpoint of the current claim is committed before it is answered:
// the step is memoized and the call is still claimed (its answer ends it).
// Refused checkpoints are answered as the SDK expects (409 for a stale
// dispatch, 400 for async ops) and write nothing.
func TestCheckpointAsync(t *testing.T) {
	s := startNode(t)
	run := hangingRun(t, s)
	fnID := fsm.FunctionUUID("hang")
	url := s.URL() + "/v1/checkpoint/" + run + "/async"
	qi := fsm.QueueItemID(run, fsm.DiscoveryCall, 1)

	before := position(s)
	if resp := post(t, url, asyncCheckpointBody(run, fnID, qi, stepOp("s1", `{"a":1}`)), nil); resp.status != 200 {
		t.Fatalf("checkpoint: %d %s", resp.status, resp.body)
	}
	if m, _ := s.FSM.Memo(run, "s1"); string(m) != `{"data":{"a":1}}` {
		t.Fatalf("memo %s", m)
	}
	if k := appendedSince(t, s, before); !slices.Contains(k, fsm.KindStepsCheckpointed) {
		t.Fatalf("appended %v", k)
	}
	if c, _ := s.FSM.Call(run, fsm.DiscoveryCall); c == nil || !c.Claimed || c.Gen != 1 {
		t.Fatalf("call after checkpoint %+v", c)
	}
	var hist []fsm.HistoryEntry
	hist, _ = s.FSM.History(run)
	if last := hist[len(hist)-1]; last.Type != fsm.HistStepCompleted || last.Name != "n-s1" {
		t.Fatalf("last history entry %+v", last)
	}

	refused := func(name, body string, status int) {
		t.Helper()
		before := position(s)
		resp := post(t, url, body, nil)
		if resp.status != status {
			t.Fatalf("%s: %d %s, want %d", name, resp.status, resp.body, status)
		}
		if k := appendedSince(t, s, before); slices.Contains(k, fsm.KindStepsCheckpointed) {
			t.Fatalf("%s: the refused checkpoint was written", name)
		}
	}
	refused("an older claim", asyncCheckpointBody(run, fnID, fsm.QueueItemID(run, fsm.DiscoveryCall, 0), stepOp("s2", `2`)), 409)
	refused("another call", asyncCheckpointBody(run, fnID, fsm.QueueItemID(run, "abc", 1), stepOp("s2", `2`)), 409)
	refused("a sleep", asyncCheckpointBody(run, fnID, qi, `{"id":"z","op":"Sleep","name":"1s","opts":{}}`), 400)
	refused("a step and a wait", asyncCheckpointBody(run, fnID, qi, stepOp("s2", `2`), `{"id":"w","op":"WaitForEvent","name":"a/b","opts":{"timeout":"1h"}}`), 400)
	refused("no steps", asyncCheckpointBody(run, fnID, qi), 400)
	refused("another run's qi_id", asyncCheckpointBody(run, fnID, fsm.QueueItemID("01OTHER", fsm.DiscoveryCall, 1), stepOp("s2", `2`)), 400)
	refused("a bad qi_id", asyncCheckpointBody(run, fnID, "cXVldWUtc2hhcmQ6am9iLWlk", stepOp("s2", `2`)), 400)
	refused("another function", asyncCheckpointBody(run, fsm.FunctionUUID("other"), qi, stepOp("s2", `2`)), 400)
	refused("another run in the body", asyncCheckpointBody("01OTHER", fnID, qi, stepOp("s2", `2`)), 400)
	refused("bad JSON", `{"steps":`, 400)
	resp := post(t, s.URL()+"/v1/checkpoint/01NOSUCHRUN000000000000000/async", asyncCheckpointBody("01NOSUCHRUN000000000000000", fnID,
		fsm.QueueItemID("01NOSUCHRUN000000000000000", fsm.DiscoveryCall, 1), stepOp("s2", `2`)), nil)
	if resp.status != 404 {
		t.Fatalf("unknown run: %d %s", resp.status, resp.body)
	}

	// The run is over (cancelled): the dispatch is stale.
	if resp := post(t, s.URL()+"/v1/runs/"+run+"/cancel", `{}`, nil); resp.status != 200 {
		t.Fatalf("cancel: %d %s", resp.status, resp.body)
	}
	refused("a finished run", asyncCheckpointBody(run, fnID, qi, stepOp("s2", `2`)), 409)
	if hist, _ := s.FSM.History(run); hist[len(hist)-1].Type != fsm.HistRunEnded(fsm.StatusCancelled) {
		t.Fatalf("history after the refused checkpoints ends with %+v", hist[len(hist)-1])
	}
}

package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
)

const cpRun = "01M8G1M72VTW4HRGZ67MQYCNEP"

// checkpointBody is a POST /v1/checkpoint body as the SDK sends it, with
// the event data's fields replaced by repl (raw JSON values by name).
func checkpointBody(runID string, repl map[string]string, steps string) string {
	d := map[string]string{"content_type": `""`, "domain": `"http://127.0.0.1:13939"`, "ip": `""`, "method": `"GET"`,
		"path": `"/api/durable"`, "query_params": `"user=42"`, "body": `""`, "fn": `""`}
	for k, v := range repl {
		d[k] = v
	}
	var parts []string
	for _, k := range []string{"content_type", "domain", "ip", "method", "path", "query_params", "body", "fn"} {
		parts = append(parts, fmt.Sprintf("%q:%s", k, d[k]))
	}
	return fmt.Sprintf(`{"run_id":%q,"event":{"name":"inngest/http.request","data":{%s}},"steps":%s,"ts":1,"request_version":2,"retries":3}`,
		runID, strings.Join(parts, ","), steps)
}

const cpStep = `[{"id":"857c0b3e9253ce40ce09381575f27504abb803ea","mode":"sync","op":"StepRun","name":"fetch-user","displayName":"fetch-user","rawArgs":["fetch-user",null],"promise":{},"data":{"id":"42"},"timing":{"a":1,"b":0}}]`

// Bad checkpoints are refused before anything is written.
func TestBadCheckpointsAppendNothing(t *testing.T) {
	s := startNode(t)
	base := s.URL()
	cases := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"malformed JSON", "/v1/checkpoint", `{"run_id":`, 400, "invalid_json"},
		{"run id not a ULID", "/v1/checkpoint", checkpointBody("run-1", nil, cpStep), 400, "invalid_run_id"},
		{"no event", "/v1/checkpoint", `{"run_id":"` + cpRun + `","steps":[]}`, 400, "invalid_event"},
		{"another event", "/v1/checkpoint", `{"run_id":"` + cpRun + `","event":{"name":"app/x","data":{}}}`, 400, "invalid_event"},
		{"data not an object", "/v1/checkpoint", `{"run_id":"` + cpRun + `","event":{"name":"inngest/http.request","data":5}}`, 400, "invalid_event"},
		{"domain not http", "/v1/checkpoint", checkpointBody(cpRun, map[string]string{"domain": `"ftp://x"`}, cpStep), 400, "invalid_event"},
		{"domain with a path", "/v1/checkpoint", checkpointBody(cpRun, map[string]string{"domain": `"http://x/y"`}, cpStep), 400, "invalid_event"},
		{"relative path", "/v1/checkpoint", checkpointBody(cpRun, map[string]string{"path": `"api"`}, cpStep), 400, "invalid_event"},
		{"bad method", "/v1/checkpoint", checkpointBody(cpRun, map[string]string{"method": `"get it"`}, cpStep), 400, "invalid_event"},
		{"no method", "/v1/checkpoint", checkpointBody(cpRun, map[string]string{"method": `""`}, cpStep), 400, "invalid_event"},
		{"steps not ops", "/v1/checkpoint", checkpointBody(cpRun, nil, `[1]`), 400, "invalid_steps"},
		{"op without opcode", "/v1/checkpoint", checkpointBody(cpRun, nil, `[{"id":"a"}]`), 400, "invalid_steps"},
		{"op without id", "/v1/checkpoint", checkpointBody(cpRun, nil, `[{"op":"StepRun"}]`), 400, "invalid_steps"},
		{"RunComplete not last", "/v1/checkpoint", checkpointBody(cpRun, nil, `[{"op":"RunComplete","id":"c"},{"op":"StepRun","id":"a"}]`), 400, "invalid_steps"},
		{"negative retries", "/v1/checkpoint", strings.Replace(checkpointBody(cpRun, nil, cpStep), `"retries":3`, `"retries":-1`, 1), 400, "invalid_retries"},
		{"steps: malformed JSON", "/v1/checkpoint/" + cpRun + "/steps", `{"steps":[`, 400, "invalid_json"},
		{"steps: run id of another run", "/v1/checkpoint/" + cpRun + "/steps", `{"run_id":"x","steps":[]}`, 400, "invalid_run_id"},
		{"steps: unknown run", "/v1/checkpoint/" + cpRun + "/steps", `{"steps":` + cpStep + `}`, 404, "run_not_found"},
		{"steps: bad ops", "/v1/checkpoint/" + cpRun + "/steps", `{"steps":{"id":1}}`, 400, "invalid_steps"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := position(s)
			resp := post(t, base+tc.path, tc.body, nil)
			if resp.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.status, tc.status, resp.body)
			}
			if code, _ := resp.json(t)["code"].(string); code != tc.code {
				t.Errorf("code %q, want %q (%s)", code, tc.code, resp.body)
			}
			if after := position(s); after != before {
				t.Errorf("the log grew: %+v -> %+v", before, after)
			}
		})
	}
	if runs, _ := s.FSM.RecentRuns(10); len(runs) != 0 {
		t.Fatalf("bad checkpoints started runs: %v", runs)
	}
	for _, p := range []string{"/v0/runs/" + cpRun + "/batch", "/v0/runs/" + cpRun + "/actions"} {
		if r := get(t, base+p); r.status != 404 {
			t.Errorf("GET %s = %d %s", p, r.status, r.body)
		}
	}
}

// The sync shape over the API: the run, the state the SDK fetches on
// re-entry, the end, the output by token; a checkpoint after the end, a
// retried first checkpoint and a bad token write nothing.
func TestCheckpointAPI(t *testing.T) {
	s := startNode(t)
	base := s.URL()
	resp := post(t, base+"/v1/checkpoint", checkpointBody(cpRun, map[string]string{"method": `"POST"`,
		"body": `"{\"hello\":\"world\"}"`, "content_type": `"application/json"`}, cpStep), nil)
	if resp.status != 200 {
		t.Fatalf("checkpoint: %d %s", resp.status, resp.body)
	}
	data, _ := resp.json(t)["data"].(map[string]any)
	tok, _ := data["token"].(string)
	if data["fn_id"] != "POST /api/durable" || data["app_id"] != "http://127.0.0.1:13939" || data["run_id"] != cpRun ||
		tok == "" || data["realtime_token"] == "" {
		t.Fatalf("checkpoint answer: %s", resp.body)
	}
	before := position(s)
	again := post(t, base+"/v1/checkpoint", checkpointBody(cpRun, map[string]string{"method": `"POST"`}, cpStep), nil)
	if again.status != 200 || position(s) != before {
		t.Fatalf("retried checkpoint: %d %s (log grew: %v)", again.status, again.body, position(s) != before)
	}
	if r := get(t, base+"/v0/runs/"+cpRun+"/batch"); r.status != 200 || !strings.Contains(string(r.body), `"body":"{\"hello\":\"world\"}"`) {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	if r := get(t, base+"/v0/runs/"+cpRun+"/actions"); r.status != 200 ||
		string(r.body) != `{"857c0b3e9253ce40ce09381575f27504abb803ea":{"data":{"id":"42"}}}`+"\n" {
		t.Fatalf("actions: %d %q", r.status, r.body)
	}
	if r := get(t, base+"/v1/http/runs/"+cpRun+"/output?token=nope"); r.status != 401 {
		t.Fatalf("bad token: %d %s", r.status, r.body)
	}
	// The output waits for the end.
	got := make(chan response, 1)
	go func() { got <- get(t, base+"/v1/http/runs/"+cpRun+"/output?token="+tok) }()
	time.Sleep(200 * time.Millisecond)
	done := `{"steps":[{"op":"RunComplete","id":"0737c22d3bfae812339732d14d8c7dbd6dc4e09c","data":{"headers":{"content-type":"application/json","x-probe":"1"},"status":201,"body":"\"{\\\"ok\\\":true}\"","version":2}}]}`
	if r := post(t, base+"/v1/checkpoint/"+cpRun+"/steps", done, nil); r.status != 200 {
		t.Fatalf("RunComplete: %d %s", r.status, r.body)
	}
	out := <-got
	if out.status != 201 || string(out.body) != `{"ok":true}` || out.header.Get("X-Probe") != "1" ||
		out.header.Get("Content-Type") != "application/json" {
		t.Fatalf("output: %d %v %q", out.status, out.header, out.body)
	}
	before = position(s)
	if r := post(t, base+"/v1/checkpoint/"+cpRun+"/steps", `{"steps":`+cpStep+`}`, nil); r.status != http.StatusConflict {
		t.Fatalf("checkpoint after the end: %d %s", r.status, r.body)
	}
	if position(s) != before {
		t.Fatal("a refused checkpoint was written")
	}
	// The run is a run like any other for every reader, the UI's pages too.
	for _, p := range []string{"/v1/runs/" + cpRun, "/v1/runs/" + cpRun + "/history", "/v1/runs", "/v1/functions",
		"/v1/apps", "/v1/events", "/", "/runs", "/runs/" + cpRun, "/functions", "/apps", "/events"} {
		if r := get(t, base+p); r.status != 200 {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
	if r := get(t, base+"/v1/runs/"+cpRun+"/history"); !strings.Contains(string(r.body), `"step.completed"`) ||
		!strings.Contains(string(r.body), `"run.completed"`) {
		t.Errorf("history: %s", r.body)
	}
	if kinds := appendedSince(t, s, logPosition{}); !containsKind(kinds, fsm.KindEndpointStarted) ||
		!containsKind(kinds, fsm.KindEndpointCheckpointed) {
		t.Fatalf("log kinds: %v", kinds)
	}
}

func containsKind(ks []fsm.Kind, k fsm.Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// When the run ends on the engine, the SDK tees the handler's exact
// response; the output serves it rather than the RunComplete's re-encoded
// body under the SDK's own status and headers.
func TestTeedResponseIsTheOutput(t *testing.T) {
	s := startNode(t)
	base := s.URL()
	resp := post(t, base+"/v1/checkpoint", checkpointBody(cpRun, nil, cpStep), nil)
	if resp.status != 200 {
		t.Fatalf("checkpoint: %d %s", resp.status, resp.body)
	}
	tok := resp.json(t)["data"].(map[string]any)["token"].(string)
	before := position(s)
	if r := post(t, base+"/v1/realtime/publish/tee?channel="+cpRun, "event: inngest.metadata\ndata: {}\n\n", nil); r.status != 200 ||
		position(s) != before {
		t.Fatalf("a tee without a response: %d, log grew %v", r.status, position(s) != before)
	}
	tee := "event: inngest.metadata\ndata: {\"runId\":\"" + cpRun + "\"}\n\nevent: inngest.response\n" +
		`data: {"status":"succeeded","response":{"body":"{\"user\":{\"id\":\"43\"}}","statusCode":202,"headers":{"content-type":"application/json","x-probe":"1"}}}` + "\n\n"
	if r := post(t, base+"/v1/realtime/publish/tee?channel="+cpRun, tee, nil); r.status != 200 {
		t.Fatalf("tee: %d %s", r.status, r.body)
	}
	done := `{"steps":[{"op":"RunComplete","id":"0737c22d3bfae812339732d14d8c7dbd6dc4e09c","data":{"headers":{"content-type":"application/json"},"status":200,"body":"\"{\\\"user\\\":{\\\"id\\\":\\\"43\\\"}}\"","version":2}}]}`
	if r := post(t, base+"/v1/checkpoint/"+cpRun+"/steps", done, nil); r.status != 200 {
		t.Fatalf("RunComplete: %d %s", r.status, r.body)
	}
	out := get(t, base+"/v1/http/runs/"+cpRun+"/output?token="+tok)
	if out.status != 202 || string(out.body) != `{"user":{"id":"43"}}` || out.header.Get("X-Probe") != "1" {
		t.Fatalf("output: %d %v %q", out.status, out.header, out.body)
	}
}

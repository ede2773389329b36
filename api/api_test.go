package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/hashicorp/raft"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/internal/testnet"
	"github.com/cairn-dev/cairn/server"
)

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	return testnet.FreeAddr(t, "127.0.0.1")
}

// startNode starts a single-node cluster and waits until it leads. Options
// adjust the config (e.g. production keys).
func startNode(t *testing.T, opts ...func(*server.Config)) *server.Server {
	t.Helper()
	cfg := server.Config{
		NodeID: "n1", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: freeAddr(t),
		Bootstrap: true, ServerKind: "dev", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := server.Start(cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatalf("wait ready: %v", err)
	}
	// Wait for the leader's first entries (configuration, no-op, then the
	// record of its addresses and, once that is applied, of its run
	// limits, proposed after a barrier) to settle, so that the log only
	// grows because of requests from here on.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Node.Stats()
		seen, _ := s.FSM.Node("n1")
		limits, _ := s.FSM.Limits()
		if st.State == "Leader" && st.CommitIndex == st.LastLogIndex && seen != nil && limits != (fsm.Limits{}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not settled: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

type response struct {
	status int
	body   []byte
	header http.Header
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %q", err, r.body)
	}
	return m
}

func do(t *testing.T, method, url string, body io.Reader, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, body: b, header: resp.Header}
}

func post(t *testing.T, url, body string, header map[string]string) response {
	t.Helper()
	return do(t, http.MethodPost, url, strings.NewReader(body), header)
}

func get(t *testing.T, url string) response {
	t.Helper()
	return do(t, http.MethodGet, url, nil, nil)
}

// logPosition is everything that grows when something is appended.
type logPosition struct {
	applied uint64
	chain   uint64
	last    string
}

func position(s *server.Server) logPosition {
	i, c := s.FSM.Applied()
	return logPosition{applied: i, chain: c, last: s.Node.Stats().LastLogIndex}
}

// notSeekable hides a body's length, so it is sent chunked.
type notSeekable struct{ io.Reader }

// registerBody builds a /fn/register body; fns are raw function configs.
func registerBody(appURL string, fns ...string) string {
	return fmt.Sprintf(`{"url":%q,"deployType":"ping","framework":"nodejs","appName":"probe-app","sdk":"js:v4.24.0","v":"0.1","functions":[%s]}`,
		appURL, strings.Join(fns, ","))
}

func fnConfig(id, extra string) string {
	return fmt.Sprintf(`{"id":%q,"name":%q,"triggers":[{"event":"app/x"}],"steps":{"step":{"id":"step","name":"step","runtime":{"type":"http","url":"http://127.0.0.1:3000/api/inngest?fnId=%s&stepId=step"}}}%s}`,
		id, id, id, extra)
}

func TestBadRequestsAppendNothing(t *testing.T) {
	s := startNode(t)
	base := s.URL()
	appURL := "http://127.0.0.1:3000/api/inngest"
	bigData := strings.Repeat("x", 1<<20)

	cases := []struct {
		name   string
		method string
		path   string
		body   io.Reader
		header map[string]string
		status int
		code   string // "" = any
	}{
		// Events.
		{"event: malformed JSON", "POST", "/e/k", strings.NewReader(`{"name":`), nil, 400, "invalid_json"},
		{"event: empty body", "POST", "/e/k", strings.NewReader(``), nil, 400, "invalid_json"},
		{"event: blank body", "POST", "/e/k", strings.NewReader(" \n\t "), nil, 400, "invalid_json"},
		{"event: empty array", "POST", "/e/k", strings.NewReader(`[]`), nil, 400, "invalid_event"},
		{"event: null", "POST", "/e/k", strings.NewReader(`null`), nil, 400, "invalid_event"},
		{"event: a string", "POST", "/e/k", strings.NewReader(`"app/x"`), nil, 400, "invalid_event"},
		{"event: array of numbers", "POST", "/e/k", strings.NewReader(`[1]`), nil, 400, "invalid_event"},
		{"event: no name", "POST", "/e/k", strings.NewReader(`{"data":{}}`), nil, 400, "invalid_event"},
		{"event: blank name", "POST", "/e/k", strings.NewReader(`{"name":"  "}`), nil, 400, "invalid_event"},
		{"event: name not a string", "POST", "/e/k", strings.NewReader(`{"name":5}`), nil, 400, "invalid_event"},
		{"event: data an array", "POST", "/e/k", strings.NewReader(`{"name":"a","data":[1]}`), nil, 400, "invalid_event"},
		{"event: data a string", "POST", "/e/k", strings.NewReader(`{"name":"a","data":"x"}`), nil, 400, "invalid_event"},
		{"event: id a number", "POST", "/e/k", strings.NewReader(`{"name":"a","id":5}`), nil, 400, "invalid_event"},
		{"event: id an object", "POST", "/e/k", strings.NewReader(`{"name":"a","id":{}}`), nil, 400, "invalid_event"},
		{"event: ts a string", "POST", "/e/k", strings.NewReader(`{"name":"a","ts":"yesterday"}`), nil, 400, "invalid_event"},
		{"event: ts a numeric string", "POST", "/e/k", strings.NewReader(`{"name":"a","ts":"1700000000000"}`), nil, 400, "invalid_event"},
		{"event: one bad event in a batch", "POST", "/e/k", strings.NewReader(`[{"name":"ok"},{"data":{}}]`), nil, 400, "invalid_event"},
		{"event: body over 10 MiB", "POST", "/e/k", bytes.NewReader(make([]byte, 10<<20+1)), nil, 413, "payload_too_large"},
		{"event: chunked body over 10 MiB", "POST", "/e/k",
			notSeekable{io.MultiReader(strings.NewReader(`[{"name":"a","data":{"x":"`), strings.NewReader(strings.Repeat("x", 10<<20)), strings.NewReader(`"}}]`))},
			nil, 413, "payload_too_large"},
		{"event: one event over 1 MiB", "POST", "/e/k", strings.NewReader(`{"name":"a","data":{"x":"` + bigData + `"}}`), nil, 413, "payload_too_large"},
		{"event: second event over 1 MiB", "POST", "/e/k", strings.NewReader(`[{"name":"a"},{"name":"b","data":{"x":"` + bigData + `"}}]`), nil, 413, "payload_too_large"},
		{"event: /v1/events too", "POST", "/v1/events", strings.NewReader(`{"data":{}}`), nil, 400, "invalid_event"},
		{"event: GET is not allowed", "GET", "/e/k", nil, nil, 405, "method_not_allowed"},

		// Registration.
		{"register: malformed JSON", "POST", "/fn/register", strings.NewReader(`{"appName":`), nil, 400, "invalid_json"},
		{"register: not an object", "POST", "/fn/register", strings.NewReader(`[]`), nil, 400, "invalid_json"},
		{"register: missing appName", "POST", "/fn/register",
			strings.NewReader(`{"url":"http://127.0.0.1:3000/api/inngest","functions":[]}`), nil, 400, "invalid_app"},
		{"register: bad url", "POST", "/fn/register",
			strings.NewReader(`{"url":"not a url","appName":"a","functions":[]}`), nil, 400, ""},
		{"register: relative url", "POST", "/fn/register",
			strings.NewReader(`{"url":"/api/inngest","appName":"a","functions":[]}`), nil, 400, ""},
		{"register: ftp url", "POST", "/fn/register",
			strings.NewReader(`{"url":"ftp://127.0.0.1/x","appName":"a","functions":[]}`), nil, 400, ""},
		{"register: function without id", "POST", "/fn/register",
			strings.NewReader(registerBody(appURL, fnConfig("", ""))), nil, 400, "invalid_function"},
		{"register: duplicate function ids", "POST", "/fn/register",
			strings.NewReader(registerBody(appURL, fnConfig("probe-app-a", ""), fnConfig("probe-app-a", ""))), nil, 400, "invalid_function"},
		{"register: missing steps.step", "POST", "/fn/register",
			strings.NewReader(registerBody(appURL, `{"id":"probe-app-a","triggers":[{"event":"app/x"}],"steps":{}}`)), nil, 400, "invalid_function"},
		{"register: retries 99", "POST", "/fn/register",
			strings.NewReader(registerBody(appURL, strings.Replace(fnConfig("probe-app-a", ""), `"name":"step",`, `"name":"step","retries":{"attempts":99},`, 1))), nil, 400, "invalid_function"},
		{"register: retries -1", "POST", "/fn/register",
			strings.NewReader(registerBody(appURL, strings.Replace(fnConfig("probe-app-a", ""), `"name":"step",`, `"name":"step","retries":{"attempts":-1},`, 1))), nil, 400, "invalid_function"},
		{"register: bad step url", "POST", "/fn/register",
			strings.NewReader(registerBody(appURL, strings.Replace(fnConfig("probe-app-a", ""), `http://127.0.0.1:3000/api/inngest?fnId`, `nope?fnId`, 1))), nil, 400, "invalid_function"},
		{"register: connect runtime", "POST", "/fn/register",
			strings.NewReader(registerBody(appURL, strings.Replace(fnConfig("probe-app-a", ""), `"type":"http"`, `"type":"ws"`, 1))), nil, 400, "invalid_function"},
		{"register: empty trigger", "POST", "/fn/register",
			strings.NewReader(registerBody(appURL, strings.Replace(fnConfig("probe-app-a", ""), `{"event":"app/x"}`, `{}`, 1))), nil, 400, "invalid_function"},
		{"register: bad cron", "POST", "/fn/register",
			strings.NewReader(registerBody(appURL, strings.Replace(fnConfig("probe-app-a", ""), `{"event":"app/x"}`, `{"cron":"61 * * * *"}`, 1))), nil, 400, "invalid_function"},
		{"register: bad trigger expression", "POST", "/fn/register",
			strings.NewReader(registerBody(appURL, strings.Replace(fnConfig("probe-app-a", ""), `{"event":"app/x"}`, `{"event":"app/x","expression":"event.data.x =="}`, 1))), nil, 400, "invalid_function"},
		{"register: function not an object", "POST", "/fn/register",
			strings.NewReader(registerBody(appURL, `"probe-app-a"`)), nil, 400, "invalid_function"},
		{"register: expected server kind cloud", "POST", "/fn/register",
			strings.NewReader(registerBody(appURL, fnConfig("probe-app-a", ""))),
			map[string]string{"X-Inngest-Expected-Server-Kind": "cloud"}, 400, "server_kind_mismatch"},
		{"register: body over 10 MiB", "POST", "/fn/register", bytes.NewReader(make([]byte, 10<<20+1)), nil, 413, "payload_too_large"},

		// Runs, events, functions.
		{"run not found", "GET", "/v1/runs/nope", nil, nil, 404, "run_not_found"},
		{"run history not found", "GET", "/v1/runs/nope/history", nil, nil, 404, "run_not_found"},
		{"event runs not found", "GET", "/v1/events/nope/runs", nil, nil, 404, "event_not_found"},
		{"cancel unknown run", "POST", "/v1/runs/nope/cancel", strings.NewReader(`{}`), nil, 404, "run_not_found"},
		{"cancel runs of unknown function", "POST", "/v1/functions/nope/cancel", strings.NewReader(`{}`), nil, 404, "function_not_found"},
		{"runs: limit not a number", "GET", "/v1/runs?limit=abc", nil, nil, 400, "invalid_limit"},
		{"runs: limit 0", "GET", "/v1/runs?limit=0", nil, nil, 400, "invalid_limit"},
		{"runs: limit too big", "GET", "/v1/runs?limit=1001", nil, nil, 400, "invalid_limit"},
		{"signal: malformed JSON", "POST", "/v1/signals", strings.NewReader(`{`), nil, 400, "invalid_json"},
		{"signal: missing name", "POST", "/v1/signals", strings.NewReader(`{"data":{}}`), nil, 400, "invalid_signal"},
		{"resync: malformed JSON", "POST", "/v1/apps/sync", strings.NewReader(`{`), nil, 400, "invalid_json"},
		{"resync: bad url", "POST", "/v1/apps/sync", strings.NewReader(`{"url":"nope"}`), nil, 400, ""},
		{"answers: not an entry", "POST", "/v1/internal/answers", strings.NewReader(`{"run":"x"}`), nil, 400, "invalid_entry"},
		{"answers: not a call answer", "POST", "/v1/internal/answers", bytes.NewReader(mustEntry(t, &fsm.CancelRequested{RunID: "x"})), nil, 400, "invalid_entry"},
		{"unknown route", "GET", "/nope", nil, nil, 404, "not_found"},
		{"unknown route, POST", "POST", "/v2/whatever", strings.NewReader(`{}`), nil, 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := position(s)
			resp := do(t, tc.method, base+tc.path, tc.body, tc.header)
			if resp.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.status, tc.status, resp.body)
			}
			if ct := resp.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			m := resp.json(t)
			if msg, ok := m["error"].(string); !ok || msg == "" {
				t.Errorf("no error message: %s", resp.body)
			}
			code, ok := m["code"].(string)
			if !ok || code == "" {
				t.Errorf("no error code: %s", resp.body)
			}
			if tc.code != "" && code != tc.code {
				t.Errorf("code %q, want %q (%s)", code, tc.code, resp.body)
			}
			if st, ok := m["status"].(float64); !ok || int(st) != resp.status {
				t.Errorf("body status %v, HTTP status %d", m["status"], resp.status)
			}
			if len(m) != 3 {
				t.Errorf("error body has extra fields: %s", resp.body)
			}
			if after := position(s); after != before {
				t.Errorf("the log grew: %+v -> %+v", before, after)
			}
		})
	}
	if runs, _ := s.FSM.RecentRuns(10); len(runs) != 0 {
		t.Fatalf("bad requests started runs: %v", runs)
	}
	if apps, _ := s.FSM.Apps(); len(apps) != 0 {
		t.Fatalf("bad requests synced apps: %v", apps)
	}
}

// A signal nobody waits for gets a 404, which the api package promises
// means nothing was written.
func TestUnawaitedSignalAppendsNothing(t *testing.T) {
	s := startNode(t)
	before := position(s)
	resp := post(t, s.URL()+"/v1/signals", `{"signal":"nobody-waits","data":{}}`, nil)
	if resp.status != 404 || resp.json(t)["code"] != "signal_not_found" {
		t.Fatalf("status %d %s", resp.status, resp.body)
	}
	if after := position(s); after != before {
		t.Fatalf("a 404 signal appended to the log: %v -> %v", before, after)
	}
}

// fixtureRegister is the body inngest-js 4.24.0 POSTs to /fn/register
// (fixture 002-dev-sync-put-out-of-band, trimmed to four functions), with
// the app URL replaced by %[1]s.
const fixtureRegister = `{
  "url": "%[1]s?deployId=01JPROBEDEPLOY000000000000",
  "deployType": "ping",
  "framework": "nodejs",
  "appName": "probe-app",
  "functions": [
    {"id": "probe-app-import-contacts", "name": "import-contacts",
     "triggers": [{"event": "contacts/csv.uploaded"}],
     "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http",
       "url": "%[1]s?deployId=01JPROBEDEPLOY000000000000&fnId=probe-app-import-contacts&stepId=step"}}}},
    {"id": "probe-app-send-welcome-email", "name": "send-welcome-email", "triggers": [],
     "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http",
       "url": "%[1]s?deployId=01JPROBEDEPLOY000000000000&fnId=probe-app-send-welcome-email&stepId=step"},
       "retries": {"attempts": 1}}}},
    {"id": "probe-app-user-onboarding", "name": "User onboarding",
     "triggers": [{"event": "app/user.signup", "expression": "event.data.plan != 'free'"}, {"event": "app/user.reactivated"}],
     "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http",
       "url": "%[1]s?deployId=01JPROBEDEPLOY000000000000&fnId=probe-app-user-onboarding&stepId=step"},
       "retries": {"attempts": 2}}},
     "rateLimit": {"limit": 100, "period": "1h", "key": "event.data.user_id"},
     "concurrency": [{"limit": 5, "key": "event.data.account_id"}, {"limit": 100, "key": "\"onboarding\"", "scope": "account"}],
     "timeouts": {"start": "10m", "finish": "7d"},
     "cancel": [{"event": "app/user.deleted", "timeout": "1w", "if": "async.data.user_id == event.data.user_id"},
                {"event": "app/user.banned", "if": "event.data.user_id == async.data.user_id"}]},
    {"id": "probe-app-loop-steps", "name": "loop-steps", "triggers": [{"event": "app/loop.requested"}],
     "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http",
       "url": "%[1]s?deployId=01JPROBEDEPLOY000000000000&fnId=probe-app-loop-steps&stepId=step"}}}}
  ],
  "sdk": "js:v4.24.0",
  "v": "0.1",
  "deployId": "01JPROBEDEPLOY000000000000",
  "capabilities": {"trust_probe": "v1", "connect": "v1"},
  "featureObservations": {"x": 1}
}`

var sdkHeaders = map[string]string{
	"X-Inngest-Sdk": "inngest-js:v4.24.0", "User-Agent": "inngest-js:v4.24.0", "X-Inngest-Framework": "nodejs",
	"X-Inngest-Expected-Server-Kind": "dev", "X-Inngest-Sync-Kind": "out_of_band", "Authorization": "Bearer undefined",
}

func TestRegisterAndSendEvents(t *testing.T) {
	s := startNode(t)
	base := s.URL()
	// The app is not running: the executor's calls fail and are retried,
	// which does not matter here.
	appURL := "http://" + freeAddr(t) + "/api/inngest"

	// Register, as the SDK does after a PUT.
	body := fmt.Sprintf(fixtureRegister, appURL)
	resp := post(t, base+"/fn/register?deployId=01JPROBEDEPLOY000000000000", body, sdkHeaders)
	if resp.status != 200 {
		t.Fatalf("register: %d %s", resp.status, resp.body)
	}
	m := resp.json(t)
	if m["ok"] != true || m["modified"] != true {
		t.Fatalf("register: %s", resp.body)
	}
	// The same body again: not modified.
	resp = post(t, base+"/fn/register", body, sdkHeaders)
	if m := resp.json(t); resp.status != 200 || m["ok"] != true || m["modified"] != false {
		t.Fatalf("second register: %d %s", resp.status, resp.body)
	}

	var apps struct {
		Data []struct {
			ID        string   `json:"id"`
			URL       string   `json:"url"`
			Functions []string `json:"functions"`
		} `json:"data"`
	}
	resp = get(t, base+"/v1/apps")
	if err := json.Unmarshal(resp.body, &apps); err != nil || resp.status != 200 || len(apps.Data) != 1 {
		t.Fatalf("apps: %d %s %v", resp.status, resp.body, err)
	}
	app := apps.Data[0]
	if app.ID != "probe-app" || app.URL != appURL || len(app.Functions) != 4 {
		t.Fatalf("app %+v: want id probe-app, url %s without deployId, 4 functions", app, appURL)
	}
	for _, id := range app.Functions {
		fn, err := s.FSM.Function(id)
		if err != nil || fn == nil {
			t.Fatalf("function %s: %v", id, err)
		}
		if want := appURL + "?fnId=" + id + "&stepId=step"; fn.URL != want {
			t.Errorf("function %s URL %s, want %s", id, fn.URL, want)
		}
	}
	if fn, _ := s.FSM.Function("probe-app-send-welcome-email"); fn == nil || fn.MaxAttempts() != 2 {
		t.Errorf("retries.attempts 1 must give 2 attempts: %+v", fn)
	}
	if fn, _ := s.FSM.Function("probe-app-user-onboarding"); fn == nil || len(fn.Cancel) != 2 ||
		fn.StartTimeoutMs != 10*60*1000 || fn.FinishTimeoutMs != 7*24*3600*1000 {
		t.Errorf("user-onboarding flow control: %+v", fn)
	}

	type sendResult struct {
		IDs    []string `json:"ids"`
		Status int      `json:"status"`
	}
	send := func(body string, header map[string]string) sendResult {
		t.Helper()
		resp := post(t, base+"/e/test-key", body, header)
		var out sendResult
		if err := json.Unmarshal(resp.body, &out); err != nil || resp.status != 200 || out.Status != 200 {
			t.Fatalf("send %s: %d %s", body, resp.status, resp.body)
		}
		return out
	}
	eventRuns := func(id string) []string {
		t.Helper()
		resp := get(t, base+"/v1/events/"+id+"/runs")
		var out struct {
			Data []struct {
				ID         string   `json:"id"`
				FunctionID string   `json:"function_id"`
				EventIDs   []string `json:"event_ids"`
			} `json:"data"`
		}
		if err := json.Unmarshal(resp.body, &out); err != nil || resp.status != 200 {
			t.Fatalf("event runs: %d %s", resp.status, resp.body)
		}
		var ids []string
		for _, r := range out.Data {
			ids = append(ids, r.ID)
		}
		return ids
	}

	// One object.
	one := send(`{"name":"app/loop.requested","data":{"n":1}}`, nil)
	if len(one.IDs) != 1 || one.IDs[0] == "" {
		t.Fatalf("ids %v", one.IDs)
	}
	if runs := eventRuns(one.IDs[0]); len(runs) != 1 {
		t.Fatalf("runs for the event: %v", runs)
	}
	stored, _ := s.FSM.Event(one.IDs[0])
	var ev map[string]any
	if err := json.Unmarshal(stored, &ev); err != nil || ev["name"] != "app/loop.requested" || ev["id"] != one.IDs[0] {
		t.Fatalf("stored event %s", stored)
	}
	if _, ok := ev["ts"].(float64); !ok {
		t.Fatalf("stored event has no ts: %s", stored)
	}
	if u, ok := ev["user"].(map[string]any); !ok || len(u) != 0 {
		t.Fatalf("stored event user: %s", stored)
	}

	// An array; the trigger "if" filters the first one out.
	many := send(`[{"name":"app/user.signup","data":{"plan":"free"}},{"name":"app/user.signup","data":{"plan":"pro"}},{"name":"nobody/listens"}]`, nil)
	if len(many.IDs) != 3 {
		t.Fatalf("ids %v", many.IDs)
	}
	for i, want := range []int{0, 1, 0} {
		if runs := eventRuns(many.IDs[i]); len(runs) != want {
			t.Errorf("event %d started %v, want %d runs", i, runs, want)
		}
	}

	// The SDK's seed header: a retried send gets the same ids and starts
	// nothing new.
	seed := map[string]string{"X-Inngest-Event-Id-Seed": fmt.Sprintf("%d,AAECAwQFBgcICQ==", time.Now().UnixMilli())}
	batch := `[{"name":"app/loop.requested","data":{"n":2}},{"name":"app/loop.requested","data":{"n":3}}]`
	first := send(batch, seed)
	runsBefore := len(recentRuns(t, base))
	second := send(batch, seed)
	if fmt.Sprint(first.IDs) != fmt.Sprint(second.IDs) || first.IDs[0] == first.IDs[1] {
		t.Fatalf("seeded ids %v then %v", first.IDs, second.IDs)
	}
	for _, id := range first.IDs {
		if runs := eventRuns(id); len(runs) != 1 {
			t.Errorf("event %s has runs %v after the resend", id, runs)
		}
	}
	if n := len(recentRuns(t, base)); n != runsBefore {
		t.Errorf("the resend started runs: %d -> %d", runsBefore, n)
	}

	// A user-supplied id dedups for 24 h: the first event's id comes back.
	a := send(`{"name":"app/loop.requested","id":"order-42","data":{}}`, nil)
	runsBefore = len(recentRuns(t, base))
	b := send(`{"name":"app/loop.requested","id":"order-42","data":{"other":true}}`, nil)
	if a.IDs[0] != b.IDs[0] {
		t.Fatalf("user id dedup: %s then %s", a.IDs[0], b.IDs[0])
	}
	if n := len(recentRuns(t, base)); n != runsBefore {
		t.Errorf("the duplicate started runs: %d -> %d", runsBefore, n)
	}
	if c := send(`{"name":"app/loop.requested","id":"order-43"}`, nil); c.IDs[0] == a.IDs[0] {
		t.Fatal("another user id was deduplicated")
	}

	// The run API sees them.
	resp = get(t, base+"/v1/runs/"+eventRuns(one.IDs[0])[0])
	var run struct {
		Data struct {
			ID, FunctionID, Status string
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &run); err != nil || resp.status != 200 {
		t.Fatalf("run: %d %s", resp.status, resp.body)
	}
	if !strings.Contains(string(resp.body), `"function_id":"probe-app-loop-steps"`) {
		t.Fatalf("run: %s", resp.body)
	}
	resp = get(t, base+"/v1/runs/"+eventRuns(one.IDs[0])[0]+"/history")
	if resp.status != 200 || !strings.Contains(string(resp.body), "run.scheduled") {
		t.Fatalf("history: %d %s", resp.status, resp.body)
	}

	// Cancel one (of a function with default retries: it cannot have
	// failed yet); a bad body is refused; a second cancel is a conflict.
	// (The log position cannot be compared here: the executor is retrying
	// calls to the absent app in the background.)
	target := eventRuns(one.IDs[0])[0]
	resp = post(t, base+"/v1/runs/"+target+"/cancel", `{"reason":`, nil)
	if resp.status != 400 {
		t.Fatalf("cancel with bad JSON: %d %s", resp.status, resp.body)
	}
	if r, _ := s.FSM.Run(target); r == nil || r.Status != "running" {
		t.Fatalf("after a refused cancel: %+v", r)
	}
	resp = post(t, base+"/v1/runs/"+target+"/cancel", `{"reason":"test"}`, nil)
	if resp.status != 200 || !strings.Contains(string(resp.body), `"status":"cancelled"`) {
		t.Fatalf("cancel: %d %s", resp.status, resp.body)
	}
	resp = post(t, base+"/v1/runs/"+target+"/cancel", ``, nil)
	if m := resp.json(t); resp.status != 409 || m["status"] != float64(409) {
		t.Fatalf("second cancel: %d %s", resp.status, resp.body)
	}
}

func recentRuns(t *testing.T, base string) []any {
	t.Helper()
	resp := get(t, base+"/v1/runs?limit=1000")
	var out struct {
		Data []any `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil || resp.status != 200 {
		t.Fatalf("runs: %d %s", resp.status, resp.body)
	}
	return out.Data
}

func TestHealthAndMetrics(t *testing.T) {
	s := startNode(t)
	resp := get(t, s.URL()+"/health")
	if resp.status != 200 {
		t.Fatalf("health: %d %s", resp.status, resp.body)
	}
	if m := resp.json(t); m["ok"] != true || m["state"] != "Leader" || m["leader"] == "" {
		t.Fatalf("health: %s", resp.body)
	}
	resp = get(t, s.URL()+"/metrics")
	if resp.status != 200 {
		t.Fatalf("metrics: %d", resp.status)
	}
	for _, want := range []string{"go_goroutines", "cairn_executor_inflight_calls", "cairn_raft_records_proposed_total"} {
		if !strings.Contains(string(resp.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	resp = get(t, s.URL()+"/v1/status?digest=true")
	if m := resp.json(t); resp.status != 200 || m["state_digest"] == nil || m["log_digest"] == nil {
		t.Fatalf("status: %d %s", resp.status, resp.body)
	}
}

func mustEntry(t *testing.T, recs ...fsm.Record) []byte {
	t.Helper()
	b, err := fsm.EncodeEntry(recs...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// appendedSince lists the kinds of the records committed after p. A test
// of refused requests checks that none is what the request would have
// written, while the executor goes on with runs started before it.
func appendedSince(t *testing.T, s *server.Server, p logPosition) []fsm.Kind {
	t.Helper()
	now, _ := s.FSM.Applied()
	var kinds []fsm.Kind
	err := s.Node.LogSource().Entries(p.applied+1, now, func(l *raft.Log) error {
		if l.Type != raft.LogCommand {
			return nil
		}
		recs, err := fsm.DecodeEntry(l.Data)
		for _, r := range recs {
			kinds = append(kinds, r.Kind())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return kinds
}

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/server"
)

// Durable endpoints (protocol §9.2): e2e/tsapp serves /api/durable with the
// SDK's node endpoint adapter. The end user calls it directly; the SDK
// checkpoints each step to Cairn, and when the handler sleeps or a step
// fails it hands the run to Cairn and redirects the caller to the run's
// output, which Cairn serves once the run, re-entered, has ended.

func TestDurableEndpoints(t *testing.T) { inModes(t, testDurableEndpoints) }

// endpointCall is what the end user got.
type endpointCall struct {
	status     int
	header     http.Header
	body       string
	redirected string // the Location of a redirect followed, "" if none
}

func callEndpoint(t *testing.T, method, u, body string) endpointCall {
	t.Helper()
	var out endpointCall
	cl := &http.Client{Timeout: 90 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		out.redirected = req.URL.String()
		return nil
	}}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out.status, out.header, out.body = resp.StatusCode, resp.Header, string(raw)
	return out
}

// endpointRun finds the run of the endpoint call with journal key k.
func (c client) endpointRun(fnID, k string) run {
	c.t.Helper()
	var runs struct {
		Data []run `json:"data"`
	}
	if code, err := c.do("GET", "/v1/runs?function_id="+url.QueryEscape(fnID), nil, &runs); err != nil || code != 200 {
		c.t.Fatalf("runs of %s: %d %v", fnID, code, err)
	}
	for _, r := range runs.Data {
		var full struct {
			Data struct {
				EventIDs []string `json:"event_ids"`
			} `json:"data"`
		}
		c.do("GET", "/v1/runs/"+r.ID, nil, &full)
		for _, ev := range full.Data.EventIDs {
			var e json.RawMessage
			c.do("GET", "/v1/events/"+ev, nil, &e)
			if strings.Contains(string(e), "k="+k+`"`) {
				return r
			}
		}
	}
	c.t.Fatalf("no run of %s for key %s among %d", fnID, k, len(runs.Data))
	return run{}
}

func testDurableEndpoints(t *testing.T, opts ...func(*server.Config)) {
	c, app := withApp(t, opts...)
	base := strings.Replace(app.URL, "/api/inngest", "/api/durable", 1)
	want := func(t *testing.T, got endpointCall, user, method, body string, status int) {
		t.Helper()
		exp := fmt.Sprintf(`{"user":{"id":"%s"},"greeting":"hello %s","body":%s,"method":"%s"}`, user, user, body, method)
		if got.status != status || got.body != exp || got.header.Get("X-Probe") != "1" ||
			!strings.HasPrefix(got.header.Get("Content-Type"), "application/json") {
			t.Fatalf("caller got %d %v %q, want %d %s", got.status, got.header, got.body, status, exp)
		}
	}
	once := func(t *testing.T, k string, steps ...string) {
		t.Helper()
		got := app.executions(t, k)
		for _, s := range steps {
			if got[s] != 1 {
				t.Fatalf("step %s ran %d times (journal %v), want once", s, got[s], got)
			}
		}
	}
	for _, tc := range []struct {
		name, method, body, sleep string
		status                    int
	}{
		{"GETSync", "GET", "", "", 200},
		{"POSTSync", "POST", `{"hello":"world","n":[1,2]}`, "", 201},
		{"GETAsyncSleep", "GET", "", "2s", 200},
		{"POSTAsyncSleep", "POST", `{"hello":"sleepy"}`, "2s", 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			k := fmt.Sprintf("%s-%d", strings.ToLower(tc.name), time.Now().UnixNano())
			u := base + fmt.Sprintf("?user=42&status=%d", tc.status)
			if tc.sleep != "" {
				u += "&sleep=" + tc.sleep
			}
			u += "&k=" + k // last: endpointRun looks for it before a quote
			got := callEndpoint(t, tc.method, u, tc.body)
			body := tc.body
			if body == "" {
				body = "null"
			}
			want(t, got, "42", tc.method, body, tc.status)
			if tc.sleep != "" && !strings.Contains(got.redirected, "/v1/http/runs/") {
				t.Fatalf("async call was not redirected to the run output (%q)", got.redirected)
			}
			if tc.sleep == "" && got.redirected != "" {
				t.Fatalf("sync call was redirected to %s", got.redirected)
			}
			once(t, k, "fetch-user", "compute-greeting")
			r := c.endpointRun(tc.method+" /api/durable", k)
			deadline := time.Now().Add(10 * time.Second)
			for r.Status == "running" && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				r = c.endpointRun(tc.method+" /api/durable", k)
			}
			if r.Status != "completed" {
				t.Fatalf("run %s: %s %s", r.ID, r.Status, r.Error)
			}
			wantSteps := 2
			if tc.sleep != "" {
				wantSteps = 3
			}
			if len(r.Steps) != wantSteps {
				t.Fatalf("run steps = %v", r.Steps)
			}
		})
	}

	// A handler that throws is retried on the engine (re-entries) with the
	// function's attempts, then fails; the caller gets the error.
	t.Run("HandlerThrows", func(t *testing.T) {
		c.t = t
		k := fmt.Sprintf("throw-%d", time.Now().UnixNano())
		got := callEndpoint(t, "GET", base+"?user=5&throw=1&k="+k, "")
		if got.status != 500 || !strings.Contains(got.body, "handler failed") || got.redirected == "" {
			t.Fatalf("caller got %d %q (redirected %q)", got.status, got.body, got.redirected)
		}
		r := c.endpointRun("GET /api/durable", k)
		if r.Status != "failed" || !strings.Contains(string(r.Error), "handler failed") {
			t.Fatalf("run %s %s %s", r.ID, r.Status, r.Error)
		}
		if n := app.executions(t, k); n["fetch-user"] != 1 {
			t.Fatalf("executions %v: fetch-user ran again", n)
		}
	})

	t.Run("StepErrorRetriesOnTheEngine", func(t *testing.T) {
		c.t = t
		k := fmt.Sprintf("fail-%d", time.Now().UnixNano())
		got := callEndpoint(t, "POST", base+"?user=7&fail=2&k="+k, `{"a":1}`)
		want(t, got, "7", "POST", `{"a":1}`, 200)
		if !strings.Contains(got.redirected, "/v1/http/runs/") {
			t.Fatalf("not redirected (%q)", got.redirected)
		}
		if n := app.executions(t, k); n["fetch-user"] != 1 || n["compute-greeting"] != 3 {
			t.Fatalf("executions %v: want fetch-user once, compute-greeting 3 times", n)
		}
		r := c.endpointRun("POST /api/durable", k)
		var errored int
		for _, h := range c.history(r.ID) {
			if h.Type == "step.errored" {
				errored++
			}
		}
		// The first error came by checkpoint, the second from a re-entry.
		if errored != 2 || r.Status != "completed" {
			t.Fatalf("run %s %s: %d step.errored entries, want 2", r.ID, r.Status, errored)
		}
	})

	// A caller that asks for an event stream gets the SDK's SSE envelope:
	// the run's id, a commit per step, and the handler's response.
	t.Run("SyncEventStream", func(t *testing.T) {
		c.t = t
		k := fmt.Sprintf("sse-%d", time.Now().UnixNano())
		resp, body := eventStream(t, base+"?user=44&k="+k)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") ||
			!strings.Contains(body, "event: inngest.metadata") || strings.Count(body, "event: inngest.commit") != 2 ||
			!strings.Contains(body, "event: inngest.response") || !strings.Contains(body, `"status":"succeeded"`) ||
			!strings.Contains(body, `hello 44`) {
			t.Fatalf("caller got %d %v %q", resp.StatusCode, resp.Header, body)
		}
		once(t, k, "fetch-user", "compute-greeting")
	})

	// When it goes async, the SDK's stream ends with redirect_info: Cairn's
	// stream at that URL goes on with the later steps and the response.
	t.Run("AsyncEventStream", func(t *testing.T) {
		c.t = t
		k := fmt.Sprintf("sse-async-%d", time.Now().UnixNano())
		_, first := eventStream(t, base+"?user=45&sleep=1s&k="+k)
		next := redirectInfoURL(first)
		if !strings.Contains(next, "/v1/realtime/sse?token=") {
			t.Fatalf("the SDK's stream has no redirect to Cairn: %q", first)
		}
		resp, rest := eventStream(t, next)
		if resp.StatusCode != 200 || !strings.Contains(rest, "event: inngest.commit") ||
			!strings.Contains(rest, "event: inngest.response") || !strings.Contains(rest, `"status":"succeeded"`) ||
			!strings.Contains(rest, `hello 45`) || !strings.Contains(rest, `"statusCode":200`) {
			t.Fatalf("Cairn's stream: %d %q", resp.StatusCode, rest)
		}
		if bad, err := http.Get(strings.Replace(next, "token=", "token=x", 1)); err != nil || bad.StatusCode != 401 {
			t.Fatalf("a wrong token was not refused: %v %v", bad, err)
		}
		once(t, k, "fetch-user", "compute-greeting")
	})
}

// redirectInfoURL is the URL of a stream's inngest.redirect_info event:
// where the run goes on once it left the app ("" if none).
func redirectInfoURL(stream string) string {
	var info struct {
		URL string `json:"url"`
	}
	for _, ev := range strings.Split(stream, "\n\n") {
		if data, ok := strings.CutPrefix(ev, "event: inngest.redirect_info\ndata: "); ok {
			json.Unmarshal([]byte(data), &info)
		}
	}
	return info.URL
}

// eventStream GETs u as a client that wants an event stream and reads it
// to its end.
func eventStream(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(raw)
}

// TestEndpointKillAndRestart kills Cairn with SIGKILL while a durable
// endpoint's run sleeps on the engine; after a restart on the same data the
// run wakes, re-enters the endpoint and the caller's redirect serves the
// handler's response; no finished step ran again.
func TestEndpointKillAndRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	httpPort, raftPort := freePort(t), freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	app := startApp(t, base)
	p := startCairnProc(t, dataDir, httpPort, raftPort, app.URL)
	c := client{base: base, t: t}
	c.waitSynced("tsapp", 60*time.Second)

	k := fmt.Sprintf("kill-%d", time.Now().UnixNano())
	u := strings.Replace(app.URL, "/api/inngest", "/api/durable", 1) + "?user=9&sleep=3s&k=" + k
	noFollow := &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Post(u, "application/json", strings.NewReader(`{"kill":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, base+"/v1/http/runs/") {
		t.Fatalf("endpoint answered %d %q, want a redirect to the run output", resp.StatusCode, loc)
	}
	// The sleep was checkpointed before the redirect: Cairn owns the run.
	p.kill()
	startCairnProc(t, dataDir, httpPort, raftPort, app.URL)

	got := callEndpoint(t, "GET", loc, "")
	exp := `{"user":{"id":"9"},"greeting":"hello 9","body":{"kill":true},"method":"POST"}`
	if got.status != 200 || got.body != exp || got.header.Get("X-Probe") != "1" {
		t.Fatalf("after restart the caller got %d %v %q, want %s", got.status, got.header, got.body, exp)
	}
	if n := app.executions(t, k); n["fetch-user"] != 1 || n["compute-greeting"] != 1 {
		t.Fatalf("executions %v, want each step once", n)
	}
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/sdk"
	"github.com/cairn-dev/cairn/sdk/step"
	"github.com/cairn-dev/cairn/server"
)

// A durable endpoint written with the Go SDK (sdk.Client.Endpoint) on a
// real Cairn: the same checks as the TS endpoint's, in dev mode and in
// production mode (checkpoints authenticated, re-entries signed).

func TestGoDurableEndpoint(t *testing.T) {
	t.Run("dev", func(t *testing.T) { testGoDurableEndpoint(t) })
	t.Run("production", func(t *testing.T) { testGoDurableEndpoint(t, production) })
}

// goEndpointApp serves /api/durable with the Go SDK and counts each step's
// executions per call key (the k query parameter).
type goEndpointApp struct {
	mu  sync.Mutex
	ran map[string]map[string]int
}

func (a *goEndpointApp) count(k, stepID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ran[k] == nil {
		a.ran[k] = map[string]int{}
	}
	a.ran[k][stepID]++
}

func (a *goEndpointApp) executions(k string) map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]int{}
	for s, n := range a.ran[k] {
		out[s] = n
	}
	return out
}

func (a *goEndpointApp) handler(w http.ResponseWriter, r *http.Request) {
	ctx, q := r.Context(), r.URL.Query()
	k := q.Get("k")
	type user struct {
		ID string `json:"id"`
	}
	u, err := step.Run(ctx, "fetch-user", func(context.Context) (user, error) {
		a.count(k, "fetch-user")
		return user{q.Get("user")}, nil
	})
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	if q.Get("panic") != "" {
		panic("handler failed")
	}
	if d, err := time.ParseDuration(q.Get("sleep")); err == nil {
		step.Sleep(ctx, "pause", d)
	}
	failures, _ := strconv.Atoi(q.Get("fail"))
	greeting, err := step.Run(ctx, "compute-greeting", func(context.Context) (string, error) {
		a.count(k, "compute-greeting")
		if a.executions(k)["compute-greeting"] <= failures {
			return "", errors.New("greeting service down")
		}
		return "hello " + u.ID, nil
	})
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if len(body) == 0 {
		body = []byte("null")
	}
	status, _ := strconv.Atoi(q.Get("status"))
	if status == 0 {
		status = 200
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Probe", "1")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"user":{"id":"%s"},"greeting":"%s","body":%s,"method":"%s"}`, u.ID, greeting, body, r.Method)
}

func testGoDurableEndpoint(t *testing.T, opts ...func(*server.Config)) {
	srv, c := startCairn(t, opts...)
	copts := sdk.ClientOpts{AppID: "go-endpoints", BaseURL: srv.URL()}
	dev := c.bearer == ""
	copts.Dev = &dev
	if !dev {
		copts.SigningKey, copts.EventKey = prodSigningKey, prodEventKey
	}
	client, err := sdk.NewClient(copts)
	if err != nil {
		t.Fatal(err)
	}
	app := &goEndpointApp{ran: map[string]map[string]int{}}
	mux := http.NewServeMux()
	mux.Handle("/api/durable", client.Endpoint(sdk.EndpointOpts{}, http.HandlerFunc(app.handler)))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	base := hs.URL + "/api/durable"

	finished := func(t *testing.T, method, k string) run {
		t.Helper()
		r := c.endpointRun(method+" /api/durable", k)
		for deadline := time.Now().Add(30 * time.Second); r.Status == "running" && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			r = c.endpointRun(method+" /api/durable", k)
		}
		return r
	}
	for _, tc := range []struct {
		name, method, body, sleep string
		status                    int
	}{
		{"GETSync", "GET", "", "", 200},
		{"POSTSync", "POST", `{"hello":"world","n":[1,2]}`, "", 201},
		{"GETAsyncSleep", "GET", "", "1s", 200},
		{"POSTAsyncSleep", "POST", `{"hello":"sleepy"}`, "1s", 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			k := fmt.Sprintf("%s-%d", strings.ToLower(tc.name), time.Now().UnixNano())
			u := fmt.Sprintf("%s?user=42&status=%d&sleep=%s&k=%s", base, tc.status, tc.sleep, k)
			got := callEndpoint(t, tc.method, u, tc.body)
			body := tc.body
			if body == "" {
				body = "null"
			}
			exp := fmt.Sprintf(`{"user":{"id":"42"},"greeting":"hello 42","body":%s,"method":"%s"}`, body, tc.method)
			if got.status != tc.status || got.body != exp || got.header.Get("X-Probe") != "1" {
				t.Fatalf("caller got %d %v %q, want %d %s", got.status, got.header, got.body, tc.status, exp)
			}
			if async := strings.Contains(got.redirected, "/v1/http/runs/"); async != (tc.sleep != "") {
				t.Fatalf("redirected to %q; the run sleeps: %v", got.redirected, tc.sleep != "")
			}
			if n := app.executions(k); n["fetch-user"] != 1 || n["compute-greeting"] != 1 {
				t.Fatalf("executions %v, want each step once", n)
			}
			r := finished(t, tc.method, k)
			wantSteps := 2
			if tc.sleep != "" {
				wantSteps = 3
			}
			if r.Status != "completed" || len(r.Steps) != wantSteps {
				t.Fatalf("run %s: %s, steps %v", r.ID, r.Status, r.Steps)
			}
		})
	}

	t.Run("StepErrorRetriesOnTheEngine", func(t *testing.T) {
		c.t = t
		k := fmt.Sprintf("fail-%d", time.Now().UnixNano())
		got := callEndpoint(t, "POST", base+"?user=7&fail=2&k="+k, `{"a":1}`)
		exp := `{"user":{"id":"7"},"greeting":"hello 7","body":{"a":1},"method":"POST"}`
		if got.status != 200 || got.body != exp || !strings.Contains(got.redirected, "/v1/http/runs/") {
			t.Fatalf("caller got %d %q (redirected %q)", got.status, got.body, got.redirected)
		}
		if n := app.executions(k); n["fetch-user"] != 1 || n["compute-greeting"] != 3 {
			t.Fatalf("executions %v: want fetch-user once, compute-greeting 3 times", n)
		}
		r := finished(t, "POST", k)
		errored := 0
		for _, h := range c.history(r.ID) {
			if h.Type == "step.errored" {
				errored++
			}
		}
		if r.Status != "completed" || errored != 2 {
			t.Fatalf("run %s %s: %d step.errored entries, want 2", r.ID, r.Status, errored)
		}
	})

	// A handler that panics is retried on the engine (re-entries), then
	// fails; the caller gets the error and no finished step runs again.
	t.Run("HandlerPanics", func(t *testing.T) {
		c.t = t
		k := fmt.Sprintf("panic-%d", time.Now().UnixNano())
		got := callEndpoint(t, "GET", base+"?user=5&panic=1&k="+k, "")
		if got.status != 500 || !strings.Contains(got.body, "handler failed") || got.redirected == "" {
			t.Fatalf("caller got %d %q (redirected %q)", got.status, got.body, got.redirected)
		}
		if r := finished(t, "GET", k); r.Status != "failed" || !strings.Contains(string(r.Error), "handler failed") {
			t.Fatalf("run %s %s %s", r.ID, r.Status, r.Error)
		}
		if n := app.executions(k); n["fetch-user"] != 1 {
			t.Fatalf("executions %v: fetch-user ran again", n)
		}
	})

	t.Run("EventStream", func(t *testing.T) {
		c.t = t
		k := fmt.Sprintf("sse-%d", time.Now().UnixNano())
		resp, body := eventStream(t, base+"?user=44&k="+k)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") ||
			!strings.Contains(body, "event: inngest.metadata") || strings.Count(body, "event: inngest.commit") != 2 ||
			!strings.Contains(body, "event: inngest.redirect_info") || !strings.Contains(body, `"status":"succeeded"`) ||
			!strings.Contains(body, `hello 44`) {
			t.Fatalf("caller got %d %v %q", resp.StatusCode, resp.Header, body)
		}
		// It went async: Cairn's stream at redirect_info's URL carries the rest.
		k = fmt.Sprintf("sse-async-%d", time.Now().UnixNano())
		_, first := eventStream(t, base+"?user=45&sleep=1s&k="+k)
		next := redirectInfoURL(first)
		if !strings.Contains(next, "/v1/realtime/sse?token=") {
			t.Fatalf("no redirect to Cairn in %q", first)
		}
		resp, rest := eventStream(t, next)
		if resp.StatusCode != 200 || !strings.Contains(rest, "event: inngest.response") || !strings.Contains(rest, `hello 45`) {
			t.Fatalf("Cairn's stream: %d %q", resp.StatusCode, rest)
		}
	})
}

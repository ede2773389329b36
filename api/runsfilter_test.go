package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// waitingApp (app probe-app, functions named as the SDK names them,
// "<app>-<fn>") answers every call with one op: function "nap" sleeps for an
// hour (step "nap-step"), function "hold" waits for event app/approved.
func waitingApp(t *testing.T) *httptest.Server {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Inngest-SDK", "go:test")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusPartialContent)
		if r.URL.Query().Get("fnId") == "probe-app-nap" {
			w.Write([]byte(`[{"op":"Sleep","id":"aa11","name":"1h","displayName":"nap-step"}]`))
			return
		}
		w.Write([]byte(`[{"op":"WaitForEvent","id":"bb22","name":"app/approved","displayName":"approval","opts":{"event":"app/approved","timeout":"1h"}}]`))
	}))
	t.Cleanup(app.Close)
	return app
}

func waitingFn(id, app, event string) string {
	return fmt.Sprintf(`{"id":"probe-app-%s","name":%q,"triggers":[{"event":%q}],"steps":{"step":{"id":"step","name":"step","runtime":{"type":"http","url":"%s?fnId=probe-app-%s&stepId=step"}}}}`,
		id, id, event, app, id)
}

type runsPage struct {
	Data []struct {
		ID            string            `json:"id"`
		FunctionID    string            `json:"function_id"`
		Status        string            `json:"status"`
		Waiting       string            `json:"waiting"`
		WaitingReason string            `json:"waiting_reason"`
		WaitingUntil  int64             `json:"waiting_until"`
		StepNames     map[string]string `json:"step_names"`
	} `json:"data"`
}

// GET /v1/runs filters by function (its short id too), status and
// creation time, and refuses an unknown status with a 400 instead of
// ignoring it; a sleeping or waiting run says what it waits for, with its
// time; a bulk cancel names a function by its short id.
func TestRunsFiltersAndWaiting(t *testing.T) {
	s := startNode(t)
	base := s.URL()
	app := waitingApp(t)
	if resp := post(t, base+"/fn/register", registerBody(app.URL, waitingFn("nap", app.URL, "app/nap"), waitingFn("hold", app.URL, "app/hold")), nil); resp.status != 200 {
		t.Fatalf("register: %d %s", resp.status, resp.body)
	}
	before := time.Now().Add(-time.Second)
	post(t, base+"/e/key", `{"name":"app/nap","data":{}}`, nil)
	post(t, base+"/e/key", `{"name":"app/hold","data":{}}`, nil)

	runs := func(query string) runsPage {
		t.Helper()
		resp := get(t, base+"/v1/runs"+query)
		if resp.status != 200 {
			t.Fatalf("GET /v1/runs%s: %d %s", query, resp.status, resp.body)
		}
		var p runsPage
		if err := json.Unmarshal(resp.body, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	waitFor(t, "both runs to wait", func() bool {
		p := runs("?status=running")
		waiting := 0
		for _, r := range p.Data {
			if r.Waiting != "" {
				waiting++
			}
		}
		return waiting == 2
	})

	for query, want := range map[string][]string{
		"?function_id=nap":                                            {"probe-app-nap"},
		"?function_id=probe-app-hold":                                 {"probe-app-hold"},
		"?function_id=nap&status=running":                             {"probe-app-nap"},
		"?function_id=nap&status=completed":                           nil,
		"?status=completed,failed":                                    nil,
		"?since=" + before.UTC().Format(time.RFC3339):                 {"probe-app-hold", "probe-app-nap"},
		"?since=" + fmt.Sprint(time.Now().Add(time.Hour).UnixMilli()): nil,
	} {
		p := runs(query)
		var got []string
		for _, r := range p.Data {
			got = append(got, r.FunctionID)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: functions %v, want %v", query, got, want)
		}
	}

	for _, r := range runs("").Data {
		until := time.UnixMilli(r.WaitingUntil)
		if d := time.Until(until); d < 50*time.Minute || d > 61*time.Minute {
			t.Errorf("%s waits until %v", r.FunctionID, until)
		}
		wantReason := map[string]string{"probe-app-nap": "sleeping", "probe-app-hold": "waiting for event app/approved"}[r.FunctionID]
		if r.WaitingReason != wantReason || r.Waiting != wantReason+" until "+until.UTC().Format(time.RFC3339) {
			t.Errorf("%s: waiting %q (reason %q)", r.FunctionID, r.Waiting, r.WaitingReason)
		}
		one := get(t, base+"/v1/runs/"+r.ID)
		if !strings.Contains(string(one.body), `"step_names"`) {
			t.Errorf("GET /v1/runs/%s names no steps: %s", r.ID, one.body)
		}
	}

	for _, q := range []string{"?status=sleeping", "?status=running,nope", "?since=yesterday"} {
		if resp := get(t, base+"/v1/runs"+q); resp.status != http.StatusBadRequest {
			t.Errorf("GET /v1/runs%s: %d %s, want 400", q, resp.status, resp.body)
		}
	}
	if resp := get(t, base+"/v1/runs?function_id=nope"); resp.status != http.StatusNotFound {
		t.Errorf("unknown function: %d %s", resp.status, resp.body)
	}

	fns := get(t, base+"/v1/functions")
	if fns.status != 200 || !strings.Contains(string(fns.body), `"short_id":"nap"`) || !strings.Contains(string(fns.body), `"event app/hold"`) {
		t.Fatalf("GET /v1/functions: %d %s", fns.status, fns.body)
	}

	// A bulk cancel by the function's short id.
	resp := post(t, base+"/v1/functions/hold/cancel", `{}`, nil)
	if resp.status != 200 || !strings.Contains(string(resp.body), `"cancelled":["`) {
		t.Fatalf("cancel --function hold: %d %s", resp.status, resp.body)
	}
	if p := runs("?function_id=hold&status=cancelled"); len(p.Data) != 1 {
		t.Fatalf("cancelled runs of hold: %+v", p.Data)
	}
}

// A debounced run says it is debounced and when it starts.
func TestDebouncedRunSaysWhenItStarts(t *testing.T) {
	s := startNode(t)
	base := s.URL()
	app := waitingApp(t)
	fn := strings.Replace(waitingFn("deb", app.URL, "app/deb"), `"triggers"`, `"debounce":{"period":"1m"},"triggers"`, 1)
	if resp := post(t, base+"/fn/register", registerBody(app.URL, fn), nil); resp.status != 200 {
		t.Fatalf("register: %d %s", resp.status, resp.body)
	}
	post(t, base+"/e/key", `{"name":"app/deb","data":{}}`, nil)
	var p runsPage
	waitFor(t, "the debounced run", func() bool {
		json.Unmarshal(get(t, base+"/v1/runs?function_id=deb").body, &p)
		return len(p.Data) == 1
	})
	r := p.Data[0]
	if d := time.Until(time.UnixMilli(r.WaitingUntil)); r.WaitingReason != "debounced" || d < 50*time.Second || d > 61*time.Second ||
		!strings.HasPrefix(r.Waiting, "debounced until ") {
		t.Fatalf("debounced run: waiting %q, reason %q, until in %v", r.Waiting, r.WaitingReason, d)
	}
}

package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/hostpolicy"
	"github.com/cairn-dev/cairn/sdk/signing"
	"github.com/cairn-dev/cairn/server"
)

const (
	testKey      = "signkey-prod-00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	testFallback = "signkey-prod-ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
	testEventKey = "event-key-for-tests"
)

func mustKey(t testing.TB, s string) signing.Key {
	k, err := signing.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// prod configures a node as cairn start does with keys.
func prod(t *testing.T) func(*server.Config) {
	return func(cfg *server.Config) {
		cfg.ServerKind = "cloud"
		cfg.Keys = signing.Keys{Primary: mustKey(t, testKey), Fallback: mustKey(t, testFallback)}
		cfg.EventKeys = []string{testEventKey}
	}
}

func bearer(t *testing.T, key string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + mustKey(t, key).Bearer()}
}

// Every door refuses a caller without credentials, or with wrong ones,
// and writes nothing; the right credentials open it.
func TestEveryDoorRefusesWithoutCredentials(t *testing.T) {
	s := startNode(t, prod(t))
	base := s.URL()
	reg := registerBody("http://127.0.0.1:3000/api/inngest", fnConfig("probe-app-a", ""))
	doors := []struct {
		method, path, body string
	}{
		{"POST", "/e/" + "wrong-key", `{"name":"a/b"}`},
		{"POST", "/fn/register", reg},
		{"GET", "/v1/apps", ""},
		{"DELETE", "/v1/apps?id=probe-app", ""},
		{"POST", "/v1/apps/sync", `{"url":"http://127.0.0.1:1/x"}`},
		{"POST", "/v1/events", `{"name":"a/b"}`},
		{"POST", "/v1/checkpoint/01NOSUCHRUN000000000000000/async", `{"qi_id":"step:1","steps":[]}`},
		{"GET", "/v1/events", ""},
		{"GET", "/v1/events/01HX", ""},
		{"POST", "/v1/events/01HX/replay", ""},
		{"GET", "/v1/events/01HX/runs", ""},
		{"GET", "/v1/runs", ""},
		{"GET", "/v1/runs/01HX", ""},
		{"GET", "/v1/runs/01HX/history", ""},
		{"POST", "/v1/runs/01HX/cancel", ""},
		{"POST", "/v1/signals", `{"signal":"s","data":{}}`},
		{"GET", "/v1/functions", ""},
		{"POST", "/v1/functions/probe-app-a/cancel", `{}`},
		{"GET", "/v1/status", ""},
		{"GET", "/v1/state", ""},
		{"GET", "/v1/state?at_index=1", ""},
		{"GET", "/v1/runs/01HX?at_index=1", ""},
		{"GET", "/v1/cluster", ""},
		{"POST", "/v1/cluster/join", `{"id":"ghost","raft_addr":"10.255.255.1:7000","http_addr":"10.255.255.1:8000"}`},
		{"POST", "/v1/cluster/remove", `{"id":"n1"}`},
		{"POST", "/v1/internal/answers", `[]`},
		{"GET", "/v1/no-such-route", ""},
	}
	creds := []struct {
		name   string
		header map[string]string
	}{
		{"none", nil},
		{"dev-mode garbage", map[string]string{"Authorization": "Bearer undefined"}},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}},
		{"another key", bearer(t, "signkey-prod-0123456789abcdef0123456789abcdef")},
		{"basic auth", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}},
		{"event key as bearer", map[string]string{"Authorization": "Bearer " + testEventKey}},
	}
	before := position(s)
	for _, d := range doors {
		for _, c := range creds {
			var body io.Reader
			if d.body != "" {
				body = strings.NewReader(d.body)
			}
			r := do(t, d.method, base+d.path, body, c.header)
			if r.status != http.StatusUnauthorized {
				t.Errorf("%s %s with %s: HTTP %d, want 401: %s", d.method, d.path, c.name, r.status, r.body)
				continue
			}
			m := r.json(t)
			if m["code"] != "unauthorized" || m["error"] == "" || m["status"] != float64(401) {
				t.Errorf("%s %s with %s: body %s", d.method, d.path, c.name, r.body)
			}
		}
	}
	if after := position(s); after != before {
		t.Fatalf("refused requests changed the log: %+v -> %+v", before, after)
	}

	// Probes stay open.
	for _, p := range []string{"/health", "/metrics"} {
		if r := get(t, base+p); r.status != 200 {
			t.Errorf("GET %s: %d", p, r.status)
		}
	}
	// The right keys open the doors: the hashed key, the raw key, the fallback.
	for _, h := range []map[string]string{
		bearer(t, testKey),
		{"Authorization": "Bearer " + testKey},
		bearer(t, testFallback),
	} {
		if r := do(t, "GET", base+"/v1/runs", nil, h); r.status != 200 {
			t.Errorf("GET /v1/runs with %v: %d %s", h, r.status, r.body)
		}
	}
	if r := post(t, base+"/e/"+testEventKey, `{"name":"a/b"}`, nil); r.status != 200 {
		t.Errorf("event with the event key: %d %s", r.status, r.body)
	}
	if r := post(t, base+"/fn/register", reg, bearer(t, testKey)); r.status != 200 {
		t.Errorf("register with the key: %d %s", r.status, r.body)
	}
}

// A dev node ignores Authorization, whatever the SDK puts there.
func TestDevIgnoresAuthorization(t *testing.T) {
	s := startNode(t)
	reg := registerBody("http://127.0.0.1:3000/api/inngest", fnConfig("probe-app-a", ""))
	if r := post(t, s.URL()+"/fn/register", reg, map[string]string{"Authorization": "Bearer undefined"}); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if r := post(t, s.URL()+"/e/NO_EVENT_KEY_SET", `{"name":"a/b"}`, map[string]string{"Authorization": "Bearer "}); r.status != 200 {
		t.Fatalf("event: %d %s", r.status, r.body)
	}
}

// The registration attacks of the issue fail with a 4xx and write nothing:
// taking over another app's function id, replacing an app owned by
// another key, and app URLs outside the allowed hosts.
func TestRegistrationAttacksAppendNothing(t *testing.T) {
	allow, err := hostpolicy.Parse([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	s := startNode(t, prod(t), func(cfg *server.Config) { cfg.AppHosts = allow })
	base, primary, fallback := s.URL(), bearer(t, testKey), bearer(t, testFallback)
	appURL := "http://127.0.0.1:3000/api/inngest"
	shop := strings.Replace(registerBody(appURL, fnConfig("shop-charge", "")), `"probe-app"`, `"shop"`, 1)
	// Registered with the fallback key; the primary may take it over (a rotation).
	if r := post(t, base+"/fn/register", shop, fallback); r.status != 200 {
		t.Fatalf("register shop: %d %s", r.status, r.body)
	}
	if r := post(t, base+"/fn/register", shop, primary); r.status != 200 {
		t.Fatalf("re-register shop with the new key: %d %s", r.status, r.body)
	}
	before := position(s)
	evil := strings.Replace(registerBody(appURL, fnConfig("evil-x", ""), fnConfig("shop-charge", "")), `"probe-app"`, `"evil"`, 1)
	cases := []struct {
		name, body string
		header     map[string]string
		status     int
		code       string
	}{
		{"another app's function id", evil, primary, 409, "app_conflict"},
		{"old key replaces the app", shop, fallback, 409, "app_conflict"},
		{"app url outside the allowed hosts", strings.Replace(shop, appURL, "http://169.254.169.254/latest", 1), primary, 400, "invalid_url"},
		{"step url outside the allowed hosts", strings.Replace(shop, "http://127.0.0.1:3000/api/inngest?fnId", "http://10.0.0.1/x?fnId", 1), primary, 400, "invalid_url"},
	}
	for _, c := range cases {
		r := post(t, base+"/fn/register", c.body, c.header)
		m := r.json(t)
		if r.status != c.status || m["code"] != c.code || m["status"] != float64(c.status) {
			t.Errorf("%s: HTTP %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
	}
	r := post(t, base+"/v1/apps/sync", `{"url":"http://127.0.0.2:8288/v1/cluster/remove"}`, primary)
	if r.status != 400 {
		t.Errorf("sync of a URL outside the allowed hosts: %d %s", r.status, r.body)
	}
	if after := position(s); after != before {
		t.Fatalf("refused registrations changed the log: %+v -> %+v", before, after)
	}
	// The owner keeps its function.
	var apps struct {
		Data []struct {
			ID        string   `json:"id"`
			Functions []string `json:"functions"`
		} `json:"data"`
	}
	r = do(t, "GET", base+"/v1/apps", nil, primary)
	json.Unmarshal(r.body, &apps)
	if len(apps.Data) != 1 || apps.Data[0].ID != "shop" {
		t.Fatalf("apps: %s", r.body)
	}
	// cairn apps rm: the app goes, its function id is free again.
	if r := do(t, "DELETE", base+"/v1/apps?id=shop", nil, primary); r.status != 200 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	if r := do(t, "DELETE", base+"/v1/apps?id=shop", nil, primary); r.status != 404 {
		t.Fatalf("remove twice: %d %s", r.status, r.body)
	}
	if r := post(t, base+"/fn/register", evil, primary); r.status != 200 {
		t.Fatalf("register after removal: %d %s", r.status, r.body)
	}
}

// A sync to something that is not an SDK reports a short reason, never the
// remote body.
func TestSyncErrorsAreShort(t *testing.T) {
	secret := "SECRET-INTERNAL-PAGE-" + strings.Repeat("x", 2000)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, secret)
	}))
	defer other.Close()
	s := startNode(t)
	r := post(t, s.URL()+"/v1/apps/sync", fmt.Sprintf(`{"url":%q}`, other.URL+"/admin"), nil)
	if r.status != 200 {
		t.Fatalf("sync: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "SECRET") {
		t.Fatalf("the sync answer echoes the remote body: %s", r.body)
	}
	var out struct {
		Data []struct {
			URL     string `json:"url"`
			OK      bool   `json:"ok"`
			Message string `json:"message"`
		} `json:"data"`
	}
	json.Unmarshal(r.body, &out)
	for _, d := range out.Data {
		if d.OK || d.Message == "" || len(d.Message) > 250 {
			t.Errorf("sync result %+v", d)
		}
	}
}

// Calls are signed over the canonical body, and an SDK answer whose
// signature is missing or wrong counts as a failed call. A redirect from
// the app is not followed.
func TestCallsSignedBothWays(t *testing.T) {
	keys := signing.Keys{Primary: mustKey(t, testKey)}
	var mode atomic.Value // how the fake SDK signs its answer
	mode.Store("good")
	var redirectedTo atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirectedTo.Add(1) }))
	defer target.Close()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if _, err := keys.Verify(r.Header.Get(signing.Header), body, time.Now()); err != nil || r.Header.Get("X-Inngest-Server-Kind") != "cloud" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"message":"Unauthorized"}`)
			return
		}
		answer := []byte(`{"done":true}`)
		w.Header().Set("X-Inngest-SDK", "inngest-js:v4.24.0")
		switch mode.Load() {
		case "good":
			w.Header().Set(signing.Header, keys.Primary.Sign(answer, time.Now()))
		case "wrong":
			w.Header().Set(signing.Header, mustKey(t, "signkey-prod-0123456789abcdef0123456789abcdef").Sign(answer, time.Now()))
		case "redirect":
			w.Header().Set("Location", target.URL+"/v1/cluster/remove")
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		w.Write(answer)
	}))
	defer app.Close()
	s := startNode(t, prod(t))
	base, h := s.URL(), bearer(t, testKey)
	reg := strings.NewReplacer("http://127.0.0.1:3000/api/inngest", app.URL+"/api/inngest").Replace(
		registerBody("http://127.0.0.1:3000/api/inngest", fnConfig("probe-app-a", `,"retries":{"attempts":0}`)))
	reg = strings.Replace(reg, `"name":"step",`, `"name":"step","retries":{"attempts":0},`, 1)
	if r := post(t, base+"/fn/register", reg, h); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	runFor := func() map[string]any {
		r := post(t, base+"/e/"+testEventKey, `{"name":"app/x"}`, nil)
		var ids struct{ IDs []string }
		json.Unmarshal(r.body, &ids)
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			var runs struct{ Data []map[string]any }
			json.Unmarshal(do(t, "GET", base+"/v1/events/"+ids.IDs[0]+"/runs", nil, h).body, &runs)
			if len(runs.Data) == 1 && runs.Data[0]["status"] != "running" {
				return runs.Data[0]
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("run did not finish")
		return nil
	}
	if run := runFor(); run["status"] != "completed" {
		t.Fatalf("signed both ways: %v", run)
	}
	mode.Store("wrong")
	if run := runFor(); run["status"] != "failed" || !strings.Contains(fmt.Sprint(run["error"]), "signature") {
		t.Fatalf("wrongly signed answer: %v", run)
	}
	mode.Store("redirect")
	if run := runFor(); run["status"] != "failed" {
		t.Fatalf("redirect: %v", run)
	}
	if n := redirectedTo.Load(); n != 0 {
		t.Fatalf("the redirect was followed %d times", n)
	}
}

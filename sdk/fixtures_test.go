package sdk_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/sdk"
	"github.com/cairn-dev/cairn/sdk/signing"
)

// The protocol fixtures are exchanges captured between the official
// inngest SDK 4.24.0 and a fake server (../shared/protocol). Each request
// the server sent the app is replayed here against the same app written
// with this SDK, and the answer, and every request the SDK made back to the
// server, must say what the official SDK's did.

var fixturesDir = filepath.Join("..", "..", "shared", "protocol", "fixtures")

type fixture struct {
	Scenario string `json:"scenario"`
	Request  struct {
		Method  string            `json:"method"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
		RawBody string            `json:"raw_body"`
	} `json:"request"`
	Response struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		RawBody string            `json:"raw_body"`
	} `json:"response"`
	Outbound []outbound `json:"sdk_outbound_requests"`
}

type outbound struct {
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Body     json.RawMessage `json:"body"`
	Response struct {
		Status int             `json:"status"`
		Body   json.RawMessage `json:"body"`
	} `json:"response"`
}

func loadFixtures(t *testing.T) []string {
	files, _ := filepath.Glob(filepath.Join(fixturesDir, "[0-9]*.json"))
	if len(files) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("protocol fixtures not found in %s", fixturesDir)
		}
		t.Skipf("protocol fixtures not found in %s", fixturesDir)
	}
	return files
}

// The apps of the capture, by port: dev, production ("cloud") and streaming.
const (
	probeKey      = "signkey-test-7468697320697320612074657374206b657920666f722070726f62696e672121"
	probeEventKey = "probe-event-key-123"
)

func TestFixtures(t *testing.T) {
	api := &fakeAPI{t: t}
	srv := httptest.NewServer(api)
	defer srv.Close()
	dev := true
	devApp, err := probeApp(sdk.ClientOpts{Dev: &dev, BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	cloud := false
	cloudApp, err := probeApp(sdk.ClientOpts{Dev: &cloud, BaseURL: srv.URL, SigningKey: probeKey, EventKey: probeEventKey, Env: "probe-branch"})
	if err != nil {
		t.Fatal(err)
	}
	durable := probeEndpoint(devApp)
	key, _ := signing.ParseKey(probeKey)
	files := loadFixtures(t)
	now := captureTime(t, files)
	sdk.SetClock(cloudApp, func() time.Time { return now })
	replayed := 0
	for _, file := range files {
		var fx fixture
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &fx); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		u, _ := url.Parse(fx.Request.URL)
		handler := devApp.Serve()
		switch {
		case u.Port() == "13940":
			handler = cloudApp.Serve()
		case u.Path == "/api/durable":
			handler = durable
			var first struct {
				RunID string `json:"run_id"`
			}
			if len(fx.Outbound) > 0 {
				json.Unmarshal(fx.Outbound[0].Body, &first)
			}
			sdk.SetRunIDs(devApp, func() string { return first.RunID })
		case u.Path != "/api/inngest":
			continue // plain sends: TestSend
		}
		t.Run(fx.Scenario, func(t *testing.T) {
			replayed++
			api.expect(fx.Outbound)
			req := httptest.NewRequest(fx.Request.Method, fx.Request.URL, strings.NewReader(fx.Request.RawBody))
			for k, v := range fx.Request.Headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			got := api.done()

			want := fx.Response
			wantHeaders, wantBody := want.Headers, want.RawBody
			if want.Status == 201 { // a streamed answer: compare what it wrapped
				var inner struct {
					Status  int               `json:"status"`
					Headers map[string]string `json:"headers"`
					Body    string            `json:"body"`
				}
				json.Unmarshal([]byte(want.RawBody), &inner)
				want.Status, wantBody, wantHeaders = inner.Status, inner.Body, map[string]string{}
				for k, v := range inner.Headers {
					wantHeaders[strings.ToLower(k)] = v
				}
			}
			if rec.Code != want.Status {
				t.Fatalf("status %d, want %d\nbody: %s\nwant: %s", rec.Code, want.Status, rec.Body, wantBody)
			}
			if loc := wantHeaders["location"]; loc != "" {
				if got, want := pathOf(rec.Header().Get("Location")), pathOf(loc); got != want {
					t.Errorf("Location %s, want %s", got, want)
				}
			}
			for _, h := range []string{"x-inngest-no-retry", "x-inngest-sync-kind", "x-probe"} {
				if rec.Header().Get(h) != wantHeaders[h] {
					t.Errorf("%s: %q, want %q", h, rec.Header().Get(h), wantHeaders[h])
				}
			}
			if (rec.Header().Get("Retry-After") != "") != (wantHeaders["retry-after"] != "") {
				t.Errorf("Retry-After %q, want %q", rec.Header().Get("Retry-After"), wantHeaders["retry-after"])
			}
			if wantHeaders["x-inngest-signature"] != "" {
				if _, err := (signing.Keys{Primary: key}).Verify(rec.Header().Get("X-Inngest-Signature"), rec.Body.Bytes(), now); err != nil {
					t.Errorf("answer signature: %v", err)
				}
			}
			compareBodies(t, fx.Request.Method, rec.Body.Bytes(), []byte(wantBody))
			compareOutbound(t, got, fx.Outbound)
		})
	}
	if replayed < 80 {
		t.Errorf("replayed %d exchanges; the fixtures hold more", replayed)
	}
}

func pathOf(s string) string {
	u, _ := url.Parse(s)
	return u.RequestURI()
}

// events reads an event stream as [name, data] pairs, URLs cut to their path.
func events(s string) any {
	var out []any
	for _, block := range strings.Split(strings.TrimSpace(s), "\n\n") {
		name, data, ok := strings.Cut(block, "\ndata: ")
		if !ok || !strings.HasPrefix(name, "event: ") {
			return nil
		}
		var d map[string]any
		json.Unmarshal([]byte(data), &d)
		if u, ok := d["url"].(string); ok {
			d["url"] = pathOf(u)
		}
		out = append(out, []any{strings.TrimPrefix(name, "event: "), d})
	}
	return out
}

// captureTime is when the fixtures were captured: the newest signature
// time in them. Signed requests are checked against it, so the one signed
// ten minutes earlier is still refused as expired.
func captureTime(t *testing.T, files []string) time.Time {
	var newest int64
	re := regexp.MustCompile(`"t=(\d+)&`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			if n, _ := strconv.ParseInt(string(m[1]), 10, 64); n > newest {
				newest = n
			}
		}
	}
	return time.Unix(newest, 0)
}

// compareBodies compares answers as the server reads them: ops by id, kind,
// names, data and options; errors by name and message; other JSON whole.
func compareBodies(t *testing.T, method string, got, want []byte) {
	t.Helper()
	var g, w any
	if len(want) == 0 {
		if len(got) != 0 {
			t.Errorf("body %s, want none", got)
		}
		return
	}
	if err := json.Unmarshal(got, &g); err != nil {
		g, w = events(string(got)), events(string(want))
		if g == nil {
			t.Fatalf("answer is neither JSON nor an event stream: %s", got)
		}
	} else {
		json.Unmarshal(want, &w)
	}
	g, w = normalize(g, method), normalize(w, method)
	if !reflect.DeepEqual(g, w) {
		gb, _ := json.MarshalIndent(g, "", " ")
		wb, _ := json.MarshalIndent(w, "", " ")
		t.Errorf("answer differs\n got: %s\nwant: %s", gb, wb)
	}
}

var durationRe = regexp.MustCompile(`^(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?$`)

// normalize keeps what a server reads of an answer.
func normalize(v any, method string) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e, method)
		}
		return out
	case map[string]any:
		if _, isOp := x["op"]; isOp {
			return normalizeOp(x)
		}
		if _, isErr := x["__serialized"]; isErr {
			return map[string]any{"name": x["name"], "message": x["message"]}
		}
		if _, ok := x["requestedStep"]; ok { // step not found
			delete(x, "error")
			return x
		}
		if _, ok := x["functions"]; ok { // in-band sync
			return map[string]any{"app_id": x["app_id"], "env": x["env"], "functions": normalizeConfigs(x["functions"])}
		}
		if _, ok := x["schema_version"]; ok { // introspection
			keep := map[string]any{}
			for _, k := range []string{"mode", "has_event_key", "has_signing_key", "function_count", "schema_version",
				"authentication_succeeded", "app_id", "env", "event_key_hash", "signing_key_hash", "signing_key_fallback_hash", "serve_origin", "serve_path"} {
				if val, ok := x[k]; ok {
					keep[k] = val
				}
			}
			return keep
		}
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalize(e, method)
		}
		return out
	case string:
		if x != "" && durationRe.MatchString(x) {
			return seconds(x)
		}
	}
	return v
}

func seconds(s string) float64 {
	units := map[byte]float64{'w': 604800, 'd': 86400, 'h': 3600, 'm': 60, 's': 1}
	var total, n float64
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			n = n*10 + float64(c-'0')
		} else {
			total += n * units[c]
			n = 0
		}
	}
	return total
}

func normalizeOp(x map[string]any) map[string]any {
	op := map[string]any{}
	for _, k := range []string{"id", "op", "name", "displayName", "userland"} {
		if v, ok := x[k]; ok {
			op[k] = v
		}
	}
	if o, ok := x["opts"].(map[string]any); ok && len(o) > 0 {
		op["opts"] = normalize(o, "")
	}
	switch x["op"] {
	case "StepError", "StepFailed":
		op["error"] = normalize(x["error"], "")
	case "RunComplete":
		op["data"] = x["data"]
		if d, ok := x["data"].(map[string]any); ok {
			// A durable endpoint's response: the TS SDK keeps only some headers.
			delete(d, "headers")
		}
	default:
		if d, ok := x["data"]; ok && d != nil {
			op["data"] = d
		}
	}
	return op
}

// normalizeConfigs keeps a register body's functions, with step URLs
// stripped of deployId (the server drops it; this SDK does not send it).
func normalizeConfigs(v any) any {
	fns, _ := v.([]any)
	for _, f := range fns {
		m := f.(map[string]any)
		if steps, ok := m["steps"].(map[string]any); ok {
			s := steps["step"].(map[string]any)
			rt := s["runtime"].(map[string]any)
			rt["url"] = stripDeployID(rt["url"].(string))
		}
	}
	return normalize(fns, "")
}

func stripDeployID(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	q := u.Query()
	q.Del("deployId")
	u.RawQuery = q.Encode()
	return u.String()
}

// compareOutbound checks the SDK's requests to the server: the same
// requests, in order, saying the same things.
func compareOutbound(t *testing.T, got []recorded, want []outbound) {
	t.Helper()
	if len(got) != len(want) {
		var g []string
		for _, r := range got {
			g = append(g, r.method+" "+r.path)
		}
		t.Fatalf("the SDK made %d requests to the server (%v), want %d", len(got), g, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.method != w.Method || g.path != w.Path {
			t.Errorf("request %d: %s %s, want %s %s", i, g.method, g.path, w.Method, w.Path)
			continue
		}
		var gb, wb any
		if len(g.body) > 0 && json.Unmarshal(g.body, &gb) != nil {
			gb = string(g.body) // the tee's SSE stream
		}
		json.Unmarshal(w.Body, &wb)
		gb, wb = outboundView(w.Path, gb), outboundView(w.Path, wb)
		if !reflect.DeepEqual(gb, wb) {
			gj, _ := json.Marshal(gb)
			wj, _ := json.Marshal(wb)
			t.Errorf("request %d (%s %s) body\n got: %s\nwant: %s", i, g.method, g.path, gj, wj)
		}
	}
}

// outboundView keeps what the server reads of a request from the SDK.
func outboundView(path string, v any) any {
	switch {
	case strings.HasPrefix(path, "/e/"):
		evts, _ := v.([]any)
		var out []any
		for _, e := range evts {
			m := e.(map[string]any)
			out = append(out, map[string]any{"name": m["name"], "data": m["data"]})
		}
		return out
	case strings.HasPrefix(path, "/v1/checkpoint"):
		m, _ := v.(map[string]any)
		out := map[string]any{}
		for _, k := range []string{"run_id", "fn_id", "app_id", "qi_id", "request_id", "generation_id", "request_version", "retries"} {
			out[k] = m[k]
		}
		if ev, ok := m["event"].(map[string]any); ok {
			delete(ev["data"].(map[string]any), "ip")
			out["event"] = ev
		}
		steps := normalize(m["steps"], "").([]any)
		for _, s := range steps {
			if op := s.(map[string]any); op["op"] == "RunComplete" {
				// On a run that completes in one go the TS SDK saves "null"
				// as the body (the caller gets the real one); this SDK saves
				// the real one.
				delete(op["data"].(map[string]any), "body")
			}
		}
		out["steps"] = steps
		return out
	case strings.HasPrefix(path, "/v1/realtime/publish/tee"):
		s, _ := v.(string)
		for _, block := range strings.Split(s, "\n\n") {
			if ev, data, _ := strings.Cut(block, "\n"); ev == "event: inngest.response" {
				var r struct {
					Status   string `json:"status"`
					Response struct {
						Body       string `json:"body"`
						StatusCode int    `json:"statusCode"`
					} `json:"response"`
				}
				json.Unmarshal([]byte(strings.TrimPrefix(data, "data: ")), &r)
				return r
			}
		}
		return s
	case strings.HasPrefix(path, "/fn/register"):
		m, _ := v.(map[string]any)
		return map[string]any{"appName": m["appName"], "url": stripDeployID(m["url"].(string)), "deployId": m["deployId"],
			"deployType": m["deployType"], "v": m["v"], "functions": normalizeConfigs(m["functions"])}
	}
	return v
}

type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

// fakeAPI is the server's API as the capture's fake server answered it:
// each expected request gets its recorded answer.
type fakeAPI struct {
	t       *testing.T
	mu      sync.Mutex
	pending []outbound
	got     []recorded
}

func (f *fakeAPI) expect(o []outbound) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending, f.got = append([]outbound(nil), o...), nil
}

func (f *fakeAPI) done() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, recorded{r.Method, r.URL.RequestURI(), r.Header, body})
	for i, o := range f.pending {
		if o.Method == r.Method && o.Path == r.URL.RequestURI() {
			f.pending = append(f.pending[:i], f.pending[i+1:]...)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(o.Response.Status)
			if len(o.Response.Body) > 0 && !bytes.Equal(o.Response.Body, []byte("null")) {
				w.Write(o.Response.Body)
			}
			return
		}
	}
	http.Error(w, `{"error":"unexpected request","status":500}`, 500)
}

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCairn takes /fn/register and checkpoint POSTs, keeping the register bodies.
type fakeCairn struct {
	*httptest.Server
	mu       sync.Mutex
	register [][]byte
}

func newFakeCairn(t *testing.T) *fakeCairn {
	f := &fakeCairn{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/fn/register":
			f.mu.Lock()
			f.register = append(f.register, b)
			f.mu.Unlock()
			_, _ = io.WriteString(w, `{"ok":true,"modified":true}`)
		case isCheckpoint(r):
			_, _ = io.WriteString(w, `{}`)
		default:
			t.Errorf("fake cairn: unexpected %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// syncApp PUTs the app as Cairn does and returns the body it registered.
func syncApp(t *testing.T, f *fakeCairn, app *goApp) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, app.url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s sync: HTTP %d", app.kind, resp.StatusCode)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var reg map[string]any
	if err := json.Unmarshal(f.register[len(f.register)-1], &reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

// fnShape is what Cairn reads of a registered function.
type fnShape struct {
	ID, Name, Triggers, Concurrency, StepURL string
}

func shapes(t *testing.T, reg map[string]any, appURL string) []fnShape {
	t.Helper()
	var out []fnShape
	for _, f := range reg["functions"].([]any) {
		m := f.(map[string]any)
		j := func(v any) string {
			if v == nil {
				return ""
			}
			b, _ := json.Marshal(v)
			return string(b)
		}
		rt := m["steps"].(map[string]any)["step"].(map[string]any)["runtime"].(map[string]any)
		u := strings.Replace(rt["url"].(string), appURL, "APP", 1)
		out = append(out, fnShape{m["id"].(string), m["name"].(string), j(m["triggers"]), j(m["concurrency"]), u})
	}
	return out
}

// post sends a call to an app and returns the status, the No-Retry header and the body.
func post(t *testing.T, app *goApp, fnID, body string) (int, string, []byte) {
	t.Helper()
	body = strings.ReplaceAll(body, "run1", "run-"+fnID) // one run per function
	req, _ := http.NewRequest(http.MethodPost, app.url+"?fnId="+fnID+"&stepId=step", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Run-ID", "run-"+fnID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Inngest-No-Retry"), b
}

// opView is what Cairn reads of an answer's op.
type opView struct {
	ID, Op, Name string
	Data         any
}

func ops(t *testing.T, b []byte) []opView {
	t.Helper()
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("ops %s: %v", b, err)
	}
	var out []opView
	for _, m := range raw {
		var v opView
		_ = json.Unmarshal(m["id"], &v.ID)
		_ = json.Unmarshal(m["op"], &v.Op)
		_ = json.Unmarshal(m["name"], &v.Name)
		if d := m["data"]; len(d) > 0 {
			_ = json.Unmarshal(d, &v.Data)
		}
		out = append(out, v)
	}
	return out
}

func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

func callBodyJSON(fnID string, data string, memo []goStep, napped bool) string {
	steps := map[string]json.RawMessage{}
	for _, s := range memo {
		steps[s.id] = json.RawMessage(`{"data":` + string(s.data) + `}`)
	}
	if napped {
		steps[napID] = json.RawMessage(`null`)
	}
	b, _ := json.Marshal(steps)
	ctx := `{"run_id":"run1","attempt":0,"stack":{"stack":[]}`
	if fnID != "" {
		ctx += `,"fn_id":"` + fnID + `","qi_id":"run1:1:1"`
	}
	return `{"event":{"id":"e1","name":"x","data":` + data + `},"events":[{"id":"e1","name":"x","data":` + data + `}],"steps":` +
		string(b) + `,"ctx":` + ctx + `},"version":1}`
}

// TestSDKAppAsRaw checks that the Go SDK app registers the functions the raw
// handler registers and answers their calls the same way, so that every
// scenario means the same with either.
func TestSDKAppAsRaw(t *testing.T) {
	f := newFakeCairn(t)
	sdkApp, err := startSDKApp(f.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sdkApp.stop()
	raw, err := startRawApp(f.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.stop()

	sdkReg, rawReg := syncApp(t, f, sdkApp), syncApp(t, f, raw)
	if sdkReg["appName"] != goAppID || rawReg["appName"] != goAppID {
		t.Fatalf("app names %v, %v", sdkReg["appName"], rawReg["appName"])
	}
	if s, r := shapes(t, sdkReg, sdkApp.url), shapes(t, rawReg, raw.url); !reflect.DeepEqual(s, r) {
		t.Fatalf("registered functions differ:\nsdk %+v\nraw %+v", s, r)
	}

	// The 3-step function, one step per call (no fn_id), then checkpointed.
	for _, fn := range []string{goFnID, flowNoneFnID, flowConcFnID} {
		for done := 0; done <= len(goSteps); done++ {
			body := callBodyJSON("", `{"k":"k1"}`, goSteps[:done], false)
			ss, _, sb := post(t, sdkApp, fn, body)
			rs, _, rb := post(t, raw, fn, body)
			if ss != rs {
				t.Fatalf("%s after %d steps: status sdk %d raw %d (%s / %s)", fn, done, ss, rs, sb, rb)
			}
			if done == len(goSteps) {
				if ss != http.StatusOK || !reflect.DeepEqual(jsonValue(t, sb), jsonValue(t, goFinal)) {
					t.Fatalf("%s result: %d %s", fn, ss, sb)
				}
				continue
			}
			so, ro := ops(t, sb), ops(t, rb)
			if len(so) != 1 || len(ro) != 1 || so[0].ID != ro[0].ID || so[0].Op != ro[0].Op ||
				!reflect.DeepEqual(so[0].Data, jsonValue(t, goSteps[done].data)) || !reflect.DeepEqual(so[0].Data, ro[0].Data) {
				t.Fatalf("%s after %d steps: sdk %s, raw %s", fn, done, sb, rb)
			}
		}
	}
	before := sdkApp.ckpt.posts.Load()
	st, _, b := post(t, sdkApp, goFnID, callBodyJSON("fn-uuid", `{}`, nil, false))
	o := ops(t, b)
	if st != http.StatusPartialContent || len(o) != 1 || o[0].Op != "RunComplete" || o[0].ID != completeID ||
		!reflect.DeepEqual(o[0].Data, jsonValue(t, goFinal)) || sdkApp.ckpt.posts.Load()-before != 3 {
		t.Fatalf("checkpointed: %d %s after %d checkpoints", st, b, sdkApp.ckpt.posts.Load()-before)
	}

	// The sleeper: a Sleep op until event.data.until, then "woke".
	until := time.Now().Add(time.Hour).UTC().Format(isoMs)
	data := `{"until":"` + until + `"}`
	for _, napped := range []bool{false, true} {
		body := callBodyJSON("", data, nil, napped)
		ss, _, sb := post(t, sdkApp, sleepFnID, body)
		rs, _, rb := post(t, raw, sleepFnID, body)
		if ss != rs {
			t.Fatalf("sleeper (napped %v): status sdk %d raw %d (%s / %s)", napped, ss, rs, sb, rb)
		}
		if !napped {
			so, ro := ops(t, sb), ops(t, rb)
			if len(so) != 1 || so[0] != ro[0] || so[0].Op != "Sleep" || so[0].Name != until || so[0].ID != napID {
				t.Fatalf("sleeper: sdk %s, raw %s", sb, rb)
			}
		} else if !bytes.Equal(bytes.TrimSpace(sb), []byte(`"woke"`)) || !bytes.Equal(sb, rb) {
			t.Fatalf("sleeper woke: sdk %s, raw %s", sb, rb)
		}
	}
	for _, a := range []*goApp{sdkApp, raw} {
		// An app notes an answer once it is flushed, which may be just
		// after the client has read it: wait for the note, briefly.
		s := a.sleeper
		counted := func() bool { return s.registered.Load() == 1 && s.woke.Load() == 1 && s.done.Load() == 1 }
		for deadline := time.Now().Add(5 * time.Second); !counted() && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if !counted() || s.notNull.Load() != 0 {
			t.Fatalf("%s sleeper tracker: registered %d woke %d done %d", a.kind, s.registered.Load(), s.woke.Load(), s.done.Load())
		}
	}
	ss, sn, _ := post(t, sdkApp, sleepFnID, callBodyJSON("", `{"until":"soon"}`, nil, false))
	rs, rn, _ := post(t, raw, sleepFnID, callBodyJSON("", `{"until":"soon"}`, nil, false))
	if ss != http.StatusBadRequest || ss != rs || sn != "true" || sn != rn || sdkApp.sleeper.bad.Load() != 1 {
		t.Fatalf("bad until: sdk %d %q, raw %d %q", ss, sn, rs, rn)
	}

	// The flow tracker saw every call of the flow functions, each leaving
	// before its answer.
	for _, a := range []*goApp{sdkApp, raw} {
		done, calls := a.flow.progress(flowConcFnID)
		if done != 1 || calls != len(goSteps)+1 {
			t.Fatalf("%s flow tracker: %d runs done, %d calls", a.kind, done, calls)
		}
		if st := a.flow.analyze(flowConcFnID); st.overlaps != 0 || st.maxPerKey != 1 {
			t.Fatalf("%s flow tracker: %+v", a.kind, st)
		}
	}
	// Hops: the calls of the 3-step functions, not the sleeper's.
	if _, n := sdkApp.hops.take(); n != int64(3*(len(goSteps)+1)+1) {
		t.Fatalf("sdk app: %d calls hop-metered", n)
	}
}

// TestCompareSDK pairs repeated scenarios in order.
func TestCompareSDK(t *testing.T) {
	mk := func(app, scen string, sps float64) *Result {
		return &Result{App: app, Mode: modeDev, Checkpointing: ckptOn, Scenario: scen, Steps: 3, StepsPerSec: sps}
	}
	cs := compareSDK([]*Result{mk(appSDK, "flow none", 1), mk(appSDK, "flow none", 2), mk(appSDK, "burst", 5),
		mk(appRaw, "flow none", 3), mk(appRaw, "flow none", 4), mk("ts", "burst", 9)})
	if len(cs) != 2 || cs[0].SDKStepsPerSec != 1 || cs[0].RawStepsPerSec != 3 || cs[1].SDKStepsPerSec != 2 || cs[1].RawStepsPerSec != 4 {
		t.Fatalf("%+v", cs)
	}
}

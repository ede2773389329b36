package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testnet"
)

// TestMain lets tests run the binary itself (its main, its exit code):
// with CAIRN_TEST_MAIN=1 the test binary is cairn.
func TestMain(m *testing.M) {
	if os.Getenv("CAIRN_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runCairn runs "cairn args..." as a process and returns its exit code,
// stdout and stderr.
func runCairn(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CAIRN_TEST_MAIN=1", "CAIRN_SIGNING_KEY=", "CAIRN_URL=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// fakeAPI answers like Cairn's API with canned bodies by path, and
// records the requests it got.
type fakeAPI struct {
	mu   sync.Mutex
	reqs []string // "METHOD /path?query body"
	srv  *httptest.Server
}

func newFakeAPI(t *testing.T, answers map[string]string) *fakeAPI {
	f := &fakeAPI{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(body)))
		f.mu.Unlock()
		a, ok := answers[r.Method+" "+r.URL.Path]
		if !ok {
			a = `{"data":{}}`
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(a))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return ""
	}
	return f.reqs[len(f.reqs)-1]
}

// Every client command takes its flags after its arguments too, and
// subcommands (apps rm, cluster join, replay status) after flags.
func TestFlagsAnywhere(t *testing.T) {
	f := newFakeAPI(t, map[string]string{"POST /v1/events": `{"ids":["E1"]}`, "GET /v1/runs": `{"data":[]}`})
	u := f.srv.URL
	for _, c := range []struct {
		cmd  func([]string) error
		args []string
		want string
	}{
		{cmdSend, []string{"app/x", `{"a":1}`, "--url", u, "--id", "I1"}, `POST /v1/events {"data":{"a":1},"id":"I1","name":"app/x"}`},
		{cmdSend, []string{"--url", u, "app/x"}, `POST /v1/events {"data":{},"name":"app/x"}`},
		{cmdEvent, []string{"E1", "--replay", "--url", u}, "POST /v1/events/E1/replay"},
		{cmdEvent, []string{"E1", "--url", u}, "GET /v1/events/E1"},
		{cmdApps, []string{"rm", "my-app", "--url", u}, "DELETE /v1/apps?id=my-app"},
		{cmdApps, []string{"--url", u, "rm", "http://h:3000/api/inngest"}, "DELETE /v1/apps?url=http%3A%2F%2Fh%3A3000%2Fapi%2Finngest"},
		{cmdCluster, []string{"join", "n2", "--raft-addr", "h:7302", "--url", u, "--http-addr", "h:8302"}, `POST /v1/cluster/join {"http_addr":"h:8302","id":"n2","raft_addr":"h:7302"}`},
		{cmdCluster, []string{"--url", u, "remove", "n3"}, `POST /v1/cluster/remove {"id":"n3"}`},
		{cmdCluster, []string{"--url", u}, "GET /v1/cluster?digest=true"},
		{cmdReplay, []string{"status", "R1", "--url", u}, "GET /v1/replays/R1"},
		{cmdRuns, []string{"--url", u, "--status", "failed", "--function", "import-contacts"}, "GET /v1/runs?function_id=import-contacts&limit=20&status=failed"},
		{cmdHistory, []string{"RUN1", "--url", u, "--json"}, "GET /v1/runs/RUN1/history"},
		{cmdSignal, []string{"sig-1", "--url", u}, `POST /v1/signals {"signal":"sig-1"}`},
		{cmdRerun, []string{"RUN1", "--url", u, "--from-step", "s2"}, `POST /v1/runs/RUN1/rerun {"from_step":"s2"}`},
	} {
		capture(t, c.cmd, c.args...)
		if got := f.last(); got != c.want {
			t.Errorf("%v:\n got %s\nwant %s", c.args, got, c.want)
		}
	}
}

// Tables say times relative to now; --json prints them as RFC 3339.
func TestHumanAndJSONTimes(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	was := now
	now = func() time.Time { return t0 }
	defer func() { now = was }()
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	for _, c := range []struct {
		at   int64
		want string
	}{
		{ms(20 * time.Second), "in 20 s"},
		{ms(-3*time.Minute - 10*time.Second), "3 min ago"},
		{ms(-2 * time.Hour), "2 h ago"},
		{ms(50 * time.Hour), "in 2 d"},
		{ms(-300 * time.Millisecond), "just now"},
		{ms(-10 * 24 * time.Hour), "2026-11-20 12:00 UTC"},
		{0, "-"},
	} {
		if got := ago(c.at); got != c.want {
			t.Errorf("ago(%v) = %q, want %q", time.UnixMilli(c.at).Sub(t0), got, c.want)
		}
	}

	if got, want := untilHuman(`throttled until `+jsonInt(ms(20*time.Second))+` (key "k")`),
		`throttled until 2026-11-30T12:00:20Z (in 20 s) (key "k")`; got != want {
		t.Errorf("untilHuman: %q, want %q", got, want)
	}

	runs := `{"data":[` +
		`{"id":"R1","function_id":"app-nap","status":"running","created_at":` + jsonInt(ms(-3*time.Minute)) +
		`,"steps":["aa11"],"waiting":"sleeping until 2026-11-30T12:00:20Z","waiting_reason":"sleeping","waiting_until":` + jsonInt(ms(20*time.Second)) + `},` +
		`{"id":"R2","function_id":"app-thr","status":"running","created_at":` + jsonInt(ms(-time.Minute)) +
		`,"steps":[],"waiting":"throttled until 2026-11-30T12:01:00Z (key \"k\")","waiting_reason":"throttled (key \"k\")","waiting_until":` + jsonInt(ms(time.Minute)) + `},` +
		`{"id":"R3","function_id":"app-done","status":"completed","created_at":` + jsonInt(ms(-2*time.Hour)) +
		`,"ended_at":` + jsonInt(ms(-2*time.Hour+1500*time.Millisecond)) + `,"steps":[]}]}`
	f := newFakeAPI(t, map[string]string{"GET /v1/runs": runs})
	table := string(capture(t, cmdRuns, "--url", f.srv.URL))
	t.Logf("cairn runs:\n%s", table)
	for _, want := range []string{"3 min ago", "sleeping, wakes in 20 s", `throttled, starts in 1 min (key "k")`, "2 h ago", "1.5s"} {
		if !strings.Contains(table, want) {
			t.Errorf("runs table lacks %q", want)
		}
	}
	if strings.Contains(table, jsonInt(ms(20*time.Second))) {
		t.Error("runs table shows epoch milliseconds")
	}

	var got []map[string]any
	if err := json.Unmarshal(capture(t, cmdRuns, "--url", f.srv.URL, "--json"), &got); err != nil || len(got) != 3 {
		t.Fatalf("runs --json: %v %v", got, err)
	}
	for _, k := range []string{"created_at", "waiting_until"} {
		s, _ := got[0][k].(string)
		if ts, err := time.Parse(time.RFC3339, s); err != nil || !ts.Equal(time.UnixMilli(int64(map[string]int64{"created_at": ms(-3 * time.Minute), "waiting_until": ms(20 * time.Second)}[k]))) {
			t.Errorf("runs --json %s = %v (%v), want RFC 3339", k, got[0][k], err)
		}
	}
}

// cairn log --json: the record's time as RFC 3339, its body as recorded.
func TestLogJSONTime(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixMilli()
	f := newFakeAPI(t, map[string]string{"GET /v1/log": `{"data":[{"index":3,"position":0,"term":1,"time":` + jsonInt(at) +
		`,"kind":"EventAccepted","body":{"at":` + jsonInt(at) + `}}],"next_index":4}`})
	out := string(capture(t, cmdLog, "--json", "--url", f.srv.URL))
	if !strings.Contains(out, `"time":"2026-11-30T12:00:00.000Z"`) || !strings.Contains(out, `"body":{"at":`+jsonInt(at)+`}`) {
		t.Fatalf("log --json: %s", out)
	}
}

func jsonInt(v int64) string { b, _ := json.Marshal(v); return string(b) }

// A client command fails with a non-zero exit: no Cairn at the address
// (with the hint to start one), a sync that fails or finds no app, a
// usage error.
func TestExitCodesAndConnectionHint(t *testing.T) {
	closed := "http://" + testnet.FreeAddr(t, "127.0.0.1")
	code, _, errOut := runCairn(t, "runs", "--url", closed)
	if code == 0 || !strings.Contains(errOut, "is Cairn running at "+closed+"?") || !strings.Contains(errOut, "cairn dev") {
		t.Fatalf("runs against a closed port: exit %d, stderr %q", code, errOut)
	}

	failed := newFakeAPI(t, map[string]string{"POST /v1/apps/sync": `{"data":[{"url":"http://127.0.0.1:1/api/inngest","ok":false,"message":"connection refused"}]}`})
	code, out, errOut := runCairn(t, "sync", "http://127.0.0.1:1/api/inngest", "--url", failed.srv.URL)
	if code == 0 || !strings.Contains(out, "failed: connection refused") || !strings.Contains(errOut, "1 of 1 apps did not sync") {
		t.Fatalf("sync of an unreachable app: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	none := newFakeAPI(t, map[string]string{"POST /v1/apps/sync": `{"data":[]}`})
	if code, _, errOut := runCairn(t, "sync", "--url", none.srv.URL); code == 0 || !strings.Contains(errOut, "no app to sync") {
		t.Fatalf("sync with no app: exit %d, stderr %q", code, errOut)
	}
	ok := newFakeAPI(t, map[string]string{"POST /v1/apps/sync": `{"data":[{"url":"http://a/api/inngest","ok":true},{"url":"http://b/api/inngest","ok":true}]}`})
	if code, out, errOut := runCairn(t, "sync", "--url", ok.srv.URL); code != 0 || !strings.Contains(out, "http://a/api/inngest  synced") || !strings.Contains(out, "http://b/api/inngest  synced") {
		t.Fatalf("sync of every app: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, _ := runCairn(t, "history", "--url", ok.srv.URL); code == 0 {
		t.Fatal("history without a run id exits 0")
	}
	if code, _, _ := runCairn(t, "nope"); code == 0 {
		t.Fatal("an unknown command exits 0")
	}
	if code, out, _ := runCairn(t, "completion", "bash"); code != 0 || !strings.Contains(out, "complete -o default -F _cairn cairn") {
		t.Fatalf("completion bash: exit %d\n%s", code, out)
	}
	if code, out, _ := runCairn(t, flagsCmd, "runs"); code != 0 || !strings.Contains(out, "--since\n") {
		t.Fatalf("%s runs: exit %d\n%s", flagsCmd, code, out)
	}
}

// cancel --function draws its progress and names the runs it cancelled.
func TestBulkCancelProgress(t *testing.T) {
	f := newFakeAPI(t, map[string]string{
		"GET /v1/runs":                       `{"data":[{"id":"R1"},{"id":"R2"}]}`,
		"POST /v1/functions/contacts/cancel": `{"data":{"cancelled":["R1","R2"]}}`,
	})
	var errb bytes.Buffer
	was := stderr
	stderr = &errb
	defer func() { stderr = was }()
	out := string(capture(t, cmdCancel, "--function", "contacts", "--url", f.srv.URL))
	if !strings.Contains(out, "cancelled 2 runs of contacts") || !strings.Contains(errb.String(), "[##############################] 2/2 cancelled") {
		t.Fatalf("stdout %q, stderr %q", out, errb.String())
	}
}

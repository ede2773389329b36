package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testnet"
)

// The end-to-end tests drive Cairn with a real Node app built on the official
// inngest npm SDK (e2e/tsapp, pinned by its lockfile). TestMain installs the
// app's dependencies with npm ci, so `go test ./e2e/` works on a fresh clone.

var tsappDir, _ = filepath.Abs("tsapp")

func TestMain(m *testing.M) {
	if _, err := os.Stat(filepath.Join(tsappDir, "node_modules", "inngest")); err != nil {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir, cmd.Stdout, cmd.Stderr = tsappDir, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: npm ci in e2e/tsapp failed:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// freePort asks the kernel for an unused loopback port.
func freePort(t testing.TB) int {
	t.Helper()
	return testnet.FreePort(t)
}

// tsApp is a running instance of e2e/tsapp.
type tsApp struct {
	URL     string
	Journal string
	cmd     *exec.Cmd
}

// startApp runs the TS app pointed at the Cairn at cairnURL, in the SDK's
// dev mode unless env says otherwise (see appEnv).
func startApp(t testing.TB, cairnURL string, env ...string) *tsApp {
	t.Helper()
	port := freePort(t)
	journal := filepath.Join(t.TempDir(), "journal.jsonl")
	cmd := exec.Command("node", "app.mjs")
	cmd.Dir = tsappDir
	if len(env) == 0 {
		env = []string{"INNGEST_DEV=1"}
	}
	cmd.Env = append(append(os.Environ(), fmt.Sprintf("PORT=%d", port),
		"INNGEST_BASE_URL="+cairnURL, "JOURNAL="+journal), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "app.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	app := &tsApp{URL: fmt.Sprintf("http://127.0.0.1:%d/api/inngest", port), Journal: journal, cmd: cmd}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			logf.Seek(0, 0)
			b, _ := io.ReadAll(logf)
			t.Logf("app log:\n%s", tail(string(b), 4000))
		}
		logf.Close()
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY") {
				ready <- nil
				io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- fmt.Errorf("app exited before READY")
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("app did not start in 60s")
	}
	return app
}

// journalLine is one step-body execution recorded by the app.
type journalLine struct {
	Fn      string `json:"fn"`
	Step    string `json:"step"`
	Run     string `json:"run"`
	Attempt int    `json:"attempt"`
	PID     int    `json:"pid"`
}

// executions counts step-body executions of one run, by step id.
func (a *tsApp) executions(t testing.TB, runID string) map[string]int {
	t.Helper()
	raw, err := os.ReadFile(a.Journal)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var j journalLine
		if line == "" || json.Unmarshal([]byte(line), &j) != nil {
			continue
		}
		if j.Run == runID {
			out[j.Step]++
		}
	}
	return out
}

// client talks to one Cairn's HTTP API.
type client struct {
	base string
	t    testing.TB
	// Production mode: the Bearer token of the signing key, and the
	// event key events are sent with ("" in dev mode).
	bearer, eventKey string
}

func (c client) do(method, path string, body any, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, nil
}

// send posts one event and returns its id.
func (c client) send(name string, data any) string {
	c.t.Helper()
	var out struct {
		IDs    []string `json:"ids"`
		Status int      `json:"status"`
	}
	code, err := c.do("POST", "/e/"+c.eventPath(), map[string]any{"name": name, "data": data}, &out)
	if err != nil || code != 200 || len(out.IDs) != 1 || out.Status != 200 {
		c.t.Fatalf("send %s: code %d err %v out %+v", name, code, err, out)
	}
	return out.IDs[0]
}

type run struct {
	ID         string          `json:"id"`
	FunctionID string          `json:"function_id"`
	Status     string          `json:"status"`
	Output     json.RawMessage `json:"output"`
	Error      json.RawMessage `json:"error"`
	Steps      []string        `json:"steps"`
	CreatedAt  int64           `json:"created_at"`
	EndedAt    int64           `json:"ended_at"`
	Calls      int             `json:"calls"`
}

type historyEntry struct {
	Type       string          `json:"type"`
	At         int64           `json:"at"`
	Name       string          `json:"name"`
	Detail     string          `json:"detail"`
	Data       json.RawMessage `json:"data"`
	StepName   string          `json:"step_name"`
	Output     json.RawMessage `json:"output"`
	DurationMs *int64          `json:"duration_ms"`
	Actor      string          `json:"actor"`
}

// waitRun waits until the event's run exists and has finished.
func (c client) waitRun(eventID string, timeout time.Duration) run {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last run
	for time.Now().Before(deadline) {
		var out struct {
			Data []run `json:"data"`
		}
		if code, err := c.do("GET", "/v1/events/"+eventID+"/runs", nil, &out); err == nil && code == 200 && len(out.Data) > 0 {
			last = out.Data[0]
			if last.Status != "running" {
				return last
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("run of event %s not finished after %s (last: %+v)", eventID, timeout, last)
	return run{}
}

func (c client) history(runID string) []historyEntry {
	c.t.Helper()
	var out struct {
		Data []historyEntry `json:"data"`
	}
	if code, err := c.do("GET", "/v1/runs/"+runID+"/history", nil, &out); err != nil || code != 200 {
		c.t.Fatalf("history %s: %d %v", runID, code, err)
	}
	return out.Data
}

// waitSynced waits until the app has registered its functions.
func (c client) waitSynced(appID string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var out struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if code, _ := c.do("GET", "/v1/apps", nil, &out); code == 200 {
			for _, a := range out.Data {
				if a.ID == appID {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("app %s did not sync within %s", appID, timeout)
}

func (c client) eventPath() string {
	if c.eventKey != "" {
		return c.eventKey
	}
	return "test"
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

var buildOnce sync.Once
var builtBinary string
var buildErr error

// cairnBinary builds cmd/cairn once per test process.
func cairnBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cairn-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBinary = filepath.Join(dir, "cairn")
		cmd := exec.Command("go", "build", "-o", builtBinary, "../cmd/cairn")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatal("building cairn:", buildErr)
	}
	return builtBinary
}

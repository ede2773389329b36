package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/sdk/signing"
	"github.com/cairn-dev/cairn/server"
)

// startCairn runs a node in-process on a temp data dir. Options may adjust
// the config (e.g. a cron clock).
func startCairn(t *testing.T, opts ...func(*server.Config)) (*server.Server, client) {
	t.Helper()
	cfg := server.Config{
		NodeID: "node1", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0",
		RaftAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), Bootstrap: true, ServerKind: "dev",
		SyncInterval: 100 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c := client{base: srv.URL(), t: t}
	if cfg.Keys.Enabled() {
		c.bearer, c.eventKey = cfg.Keys.Primary.Bearer(), cfg.EventKeys[0]
	}
	return srv, c
}

// The keys of production-mode tests.
const (
	prodSigningKey = "signkey-test-0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
	prodEventKey   = "e2e-event-key-0001"
)

// production runs Cairn as cairn start does with keys: every call to the
// app is signed, every answer must be signed, every door needs a key.
func production(cfg *server.Config) {
	k, err := signing.ParseKey(prodSigningKey)
	if err != nil {
		panic(err)
	}
	cfg.ServerKind, cfg.Keys, cfg.EventKeys = "cloud", signing.Keys{Primary: k}, []string{prodEventKey}
}

// inModes runs a suite against Cairn in dev mode (the SDK's INNGEST_DEV=1)
// and in production mode (INNGEST_DEV=0 with a signing and an event key),
// each with async checkpointing (the SDK's default once Cairn sends
// ctx.fn_id: several steps per call) and in classic mode (-classic: one
// call per step).
func inModes(t *testing.T, suite func(t *testing.T, opts ...func(*server.Config))) {
	t.Run("dev", func(t *testing.T) { suite(t) })
	t.Run("production", func(t *testing.T) { suite(t, production) })
	t.Run("dev-classic", func(t *testing.T) { suite(t, classic) })
	t.Run("production-classic", func(t *testing.T) { suite(t, production, classic) })
}

// classic turns async checkpointing off: Cairn sends no ctx.fn_id, so the
// SDK answers every step with its own call.
func classic(cfg *server.Config) { cfg.NoCheckpointing = true }

// checkpointing reports whether a suite's options leave checkpointing on.
func checkpointing(opts []func(*server.Config)) bool {
	var cfg server.Config
	for _, o := range opts {
		o(&cfg)
	}
	return !cfg.NoCheckpointing
}

// withApp starts Cairn and the TS app and waits for the app to sync. The
// app runs in the SDK's production mode when Cairn has keys.
func withApp(t *testing.T, opts ...func(*server.Config)) (client, *tsApp) {
	srv, c := startCairn(t, opts...)
	var env []string
	if c.bearer != "" {
		env = []string{"INNGEST_DEV=0", "INNGEST_SIGNING_KEY=" + prodSigningKey, "INNGEST_EVENT_KEY=" + prodEventKey}
	}
	app := startApp(t, srv.URL(), env...)
	srv.Syncer.Add(app.URL)
	c.waitSynced("tsapp", 60*time.Second)
	return c, app
}

func TestTSApp(t *testing.T) { inModes(t, testTSApp) }

func testTSApp(t *testing.T, opts ...func(*server.Config)) {
	c, app := withApp(t, opts...)

	t.Run("SeedFunctionCompletes", func(t *testing.T) {
		c.t = t
		id := c.send("contacts/csv.uploaded", map[string]any{
			"csv": "email,name\nA@x.io, Ann\nb@x.io,Bob\na@x.io,Ann again",
		})
		r := c.waitRun(id, 60*time.Second)
		if r.Status != "completed" {
			t.Fatalf("status %s, error %s", r.Status, r.Error)
		}
		var out struct {
			Results struct {
				Imported int      `json:"imported"`
				Emails   []string `json:"emails"`
			} `json:"results"`
		}
		if err := json.Unmarshal(r.Output, &out); err != nil {
			t.Fatal(err)
		}
		if out.Results.Imported != 2 || strings.Join(out.Results.Emails, ",") != "a@x.io,b@x.io" {
			t.Fatalf("output %s", r.Output)
		}
		ex := app.executions(t, r.ID)
		for _, step := range []string{"parse-csv", "normalize-raw-csv", "input-contacts"} {
			if ex[step] != 1 {
				t.Errorf("step %s ran %d times, want exactly once (%v)", step, ex[step], ex)
			}
		}
		if len(r.Steps) != 3 {
			t.Errorf("run has %d memoized steps, want 3", len(r.Steps))
		}
		// With checkpointing the SDK runs the three steps and the end in
		// one call; classic takes a call per step and one for the end.
		if want := map[bool]int{true: 1, false: 4}[checkpointing(opts)]; r.Calls != want {
			t.Errorf("run took %d app calls, want %d (checkpointing %v)", r.Calls, want, checkpointing(opts))
		}
		// The history is the audit trail: it names each step result.
		// Each names its step and carries its output and how long it took.
		var completed []string
		for _, h := range c.history(r.ID) {
			switch h.Type {
			case "step.completed":
				completed = append(completed, h.Name)
				if h.StepName != h.Name || len(h.Output) == 0 || h.DurationMs == nil {
					t.Errorf("step.completed entry without its name, output or duration: %+v", h)
				}
			case "run.scheduled":
				if h.Actor == "" {
					t.Errorf("run.scheduled names no actor: %+v", h)
				}
			}
		}
		if strings.Join(completed, ",") != "parse-csv,normalize-raw-csv,input-contacts" {
			t.Errorf("history step.completed entries: %v", completed)
		}
	})

	t.Run("FlakyStepIsRetriedAlone", func(t *testing.T) {
		c.t = t
		r := c.waitRun(c.send("test/flaky", nil), 60*time.Second)
		if r.Status != "completed" || string(r.Output) != `{"flaky":"recovered"}` {
			t.Fatalf("status %s output %s error %s", r.Status, r.Output, r.Error)
		}
		ex := app.executions(t, r.ID)
		if ex["before"] != 1 || ex["flaky"] != 3 || ex["after"] != 1 {
			t.Fatalf("executions %v: want before=1 flaky=3 after=1", ex)
		}
		errored := 0
		for _, h := range c.history(r.ID) {
			if h.Type == "step.errored" {
				errored++
			}
		}
		if errored != 2 {
			t.Errorf("history has %d step.errored entries, want 2", errored)
		}
	})

	t.Run("NonRetriableErrorFailsAtOnce", func(t *testing.T) {
		c.t = t
		r := c.waitRun(c.send("test/nonretriable", nil), 60*time.Second)
		if r.Status != "failed" || !strings.Contains(string(r.Error), "stop now") {
			t.Fatalf("status %s error %s", r.Status, r.Error)
		}
		if ex := app.executions(t, r.ID); ex["first"] != 1 || ex["fatal"] != 1 {
			t.Fatalf("executions %v: want first=1 fatal=1", ex)
		}
	})

	t.Run("ParallelStepsBothRun", func(t *testing.T) {
		c.t = t
		r := c.waitRun(c.send("test/parallel", nil), 60*time.Second)
		if r.Status != "completed" || string(r.Output) != `{"combined":"AB"}` {
			t.Fatalf("status %s output %s error %s", r.Status, r.Output, r.Error)
		}
		ex := app.executions(t, r.ID)
		if ex["provision-a"] != 1 || ex["provision-b"] != 1 || ex["combine"] != 1 {
			t.Fatalf("executions %v", ex)
		}
	})

	t.Run("SleepNeverEndsEarly", func(t *testing.T) {
		c.t = t
		r := c.waitRun(c.send("test/sleep", nil), 60*time.Second)
		if r.Status != "completed" {
			t.Fatalf("status %s error %s", r.Status, r.Error)
		}
		var slept, woke int64
		for _, h := range c.history(r.ID) {
			switch h.Type {
			case "step.sleeping":
				slept = h.At
			case "step.woke":
				woke = h.At
			}
		}
		if slept == 0 || woke-slept < 2000 {
			t.Fatalf("sleep of 2s recorded from %d to %d", slept, woke)
		}
	})

	t.Run("FunctionErrorRetriedThenFails", func(t *testing.T) {
		c.t = t
		r := c.waitRun(c.send("test/fnthrow", nil), 60*time.Second)
		if r.Status != "failed" || !strings.Contains(string(r.Error), "function level boom") {
			t.Fatalf("status %s error %s", r.Status, r.Error)
		}
		claims := 0
		for _, h := range c.history(r.ID) {
			if h.Type == "call.claimed" {
				claims++
			}
		}
		if claims != 2 { // retries: 1 → two attempts
			t.Fatalf("function called %d times, want 2", claims)
		}
	})

	t.Run("CancelStopsARun", func(t *testing.T) {
		c.t = t
		id := c.send("test/sleep", nil)
		var runs struct {
			Data []run `json:"data"`
		}
		deadline := time.Now().Add(30 * time.Second)
		for len(runs.Data) == 0 && time.Now().Before(deadline) {
			c.do("GET", "/v1/events/"+id+"/runs", nil, &runs)
			time.Sleep(20 * time.Millisecond)
		}
		if len(runs.Data) == 0 {
			t.Fatal("no run")
		}
		if code, err := c.do("POST", "/v1/runs/"+runs.Data[0].ID+"/cancel", map[string]string{"reason": "test"}, nil); err != nil || code != 200 {
			t.Fatalf("cancel: %d %v", code, err)
		}
		r := c.waitRun(id, 10*time.Second)
		if r.Status != "cancelled" {
			t.Fatalf("status %s", r.Status)
		}
		time.Sleep(2500 * time.Millisecond) // past the sleep: nothing may run
		if ex := app.executions(t, r.ID); ex["after"] != 0 {
			t.Fatalf("a cancelled run kept calling the app: %v", ex)
		}
		if code, _ := c.do("POST", "/v1/runs/"+r.ID+"/cancel", nil, nil); code != 409 {
			t.Fatalf("second cancel: %d, want 409", code)
		}
	})

	t.Run("RerunFromStep", func(t *testing.T) {
		c.t = t
		testRerunFromStep(c, app)
	})

	// A function that says checkpointing: false keeps one call per step
	// (two steps, then the end) whatever the server offers.
	t.Run("CheckpointingFalseStaysClassic", func(t *testing.T) {
		c.t = t
		r := c.waitRun(c.send("test/classic-steps", map[string]any{}), 60*time.Second)
		if r.Status != "completed" || string(r.Output) != `{"b":2}` {
			t.Fatalf("status %s, output %s, error %s", r.Status, r.Output, r.Error)
		}
		if r.Calls != 3 {
			t.Fatalf("run took %d app calls, want 3", r.Calls)
		}
	})
}

// cairnProc is cairn running as a child process, so it can be SIGKILLed.
type cairnProc struct {
	cmd  *exec.Cmd
	url  string
	logf *os.File
}

func startCairnProc(t *testing.T, dataDir string, httpPort, raftPort int, appURL string, extra ...string) *cairnProc {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(dataDir+"-logs"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	mode := "dev"
	if len(extra) > 0 {
		mode, extra = extra[0], extra[1:]
	}
	if mode == "dev" {
		// The test names its app (-u): cairn dev must not sync whatever
		// else listens on this machine's common ports.
		extra = append(extra, "--no-discovery")
	}
	args := append([]string{mode, "--data-dir", dataDir, "--port", fmt.Sprint(httpPort),
		"--raft-addr", fmt.Sprintf("127.0.0.1:%d", raftPort), "-u", appURL}, extra...)
	cmd := exec.Command(cairnBinary(t), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &cairnProc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", httpPort), logf: logf}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("cairn log:\n%s", tail(string(b), 6000))
		}
	})
	c := client{base: p.url, t: t}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if code, _ := c.do("GET", "/health", nil, nil); code == 200 {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("cairn did not become healthy")
	return nil
}

func (p *cairnProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

// TestKillAndRestart kills Cairn with SIGKILL while a run is mid-way and
// events are being sent, restarts it on the same data dir, and checks that
// no acknowledged event is lost and no finished step runs again.
func TestKillAndRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	httpPort, raftPort := freePort(t), freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	app := startApp(t, url)
	p := startCairnProc(t, dataDir, httpPort, raftPort, app.URL)
	c := client{base: url, t: t}
	c.waitSynced("tsapp", 60*time.Second)

	// A slow run: each step body takes 1.5 s.
	slowEvent := c.send("contacts/csv.uploaded", map[string]any{"slowMs": 1500})

	// Meanwhile a sender keeps sending events and remembers every one that
	// Cairn acknowledged.
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var out struct {
				IDs []string `json:"ids"`
			}
			code, err := c.do("POST", "/e/test", map[string]any{"name": "test/unrouted", "data": map[string]any{"i": i}}, &out)
			if err == nil && code == 200 && len(out.IDs) == 1 {
				mu.Lock()
				acked = append(acked, out.IDs[0])
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// Kill once the first step's result is recorded and the second is running.
	var runID string
	deadline := time.Now().Add(60 * time.Second)
	for runID == "" || app.executions(t, runID)["normalize-raw-csv"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("slow run did not reach its second step")
		}
		var runs struct {
			Data []run `json:"data"`
		}
		if code, _ := c.do("GET", "/v1/events/"+slowEvent+"/runs", nil, &runs); code == 200 && len(runs.Data) == 1 {
			runID = runs.Data[0].ID
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill()
	close(stop)
	wg.Wait()
	mu.Lock()
	ackedCopy := append([]string(nil), acked...)
	mu.Unlock()
	if len(ackedCopy) == 0 {
		t.Fatal("no event was acknowledged before the kill")
	}

	startCairnProc(t, dataDir, httpPort, raftPort, app.URL)
	r := c.waitRun(slowEvent, 60*time.Second)
	if r.Status != "completed" {
		t.Fatalf("after restart: status %s error %s", r.Status, r.Error)
	}
	ex := app.executions(t, r.ID)
	if ex["parse-csv"] != 1 {
		t.Errorf("parse-csv finished before the kill but ran %d times", ex["parse-csv"])
	}
	if ex["input-contacts"] != 1 {
		t.Errorf("input-contacts ran %d times, want 1", ex["input-contacts"])
	}
	// normalize-raw-csv was in flight at the kill: its result was never
	// recorded, so it may run again (at most once more).
	if n := ex["normalize-raw-csv"]; n < 1 || n > 2 {
		t.Errorf("normalize-raw-csv ran %d times", n)
	}
	lost := 0
	for _, id := range ackedCopy {
		var out struct {
			Data []run `json:"data"`
		}
		if code, _ := c.do("GET", "/v1/events/"+id+"/runs", nil, &out); code != 200 {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged events lost after SIGKILL", lost, len(ackedCopy))
	}
	t.Logf("%d acknowledged events all present after SIGKILL; executions %v", len(ackedCopy), ex)
}

// TestCairnStartProduction runs the real binary as production runs it,
// `cairn start` with a signing key and an event key, and the TS app in the
// SDK's production mode: the seed function completes, signed both ways,
// and a caller without the keys is turned away.
func TestCairnStartProduction(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	httpPort, raftPort := freePort(t), freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", httpPort)

	// Without keys, cairn start refuses and names the flag.
	out, err := exec.Command(cairnBinary(t), "start", "--data-dir", dataDir, "--port", fmt.Sprint(httpPort)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--signing-key") {
		t.Fatalf("cairn start without keys: %v: %s", err, out)
	}

	app := startApp(t, url, "INNGEST_DEV=0", "INNGEST_SIGNING_KEY="+prodSigningKey, "INNGEST_EVENT_KEY="+prodEventKey)
	startCairnProc(t, dataDir, httpPort, raftPort, app.URL, "start", "--bootstrap",
		"--signing-key", prodSigningKey, "--event-key", prodEventKey)
	k, _ := signing.ParseKey(prodSigningKey)
	c := client{base: url, t: t, bearer: k.Bearer(), eventKey: prodEventKey}
	c.waitSynced("tsapp", 60*time.Second)

	r := c.waitRun(c.send("contacts/csv.uploaded", map[string]any{"csv": "email,name\na@x.io,Ann"}), 60*time.Second)
	if r.Status != "completed" {
		t.Fatalf("seed run: %s %s", r.Status, r.Error)
	}
	anon := client{base: url, t: t}
	if code, _ := anon.do("GET", "/v1/runs", nil, nil); code != 401 {
		t.Fatalf("GET /v1/runs without the key: %d", code)
	}
	if code, _ := anon.do("POST", "/e/not-a-key", map[string]any{"name": "x/y"}, nil); code != 401 {
		t.Fatalf("event with an unknown key: %d", code)
	}
}

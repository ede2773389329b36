// Command floor measures, on this machine, what two parts of every step
// cost whatever the engine does around them: the floors under Cairn's CPU
// per step.
//
// HTTP: it runs the raw burst's traffic (bench -app raw -scenarios burst)
// against a null engine, a child process that does the HTTP side of what
// Cairn does per run and nothing else: no log, no Raft, no Pebble, no
// fsync. Per run:
//
//   - the load generator POSTs an event to /e/<key>; the null engine parses
//     it and answers with its id, as Cairn does;
//   - a worker of the null engine POSTs the call to the app (a Cairn-shaped
//     body: event, events, steps, ctx) and parses its 206 [RunComplete];
//   - during that call the app POSTs three checkpoints to
//     /v1/checkpoint/<run>/async, which the null engine parses and answers.
//
// That is five HTTP exchanges per three-step run, the same as a real burst
// with async checkpointing. The null engine's CPU (utime+stime from /proc)
// per step is the HTTP floor.
//
// Log: it appends entries to Cairn's own Raft log store (log.Store, Pebble,
// every write synced) in a temp dir, one entry per write and then several,
// and reports the CPU (the process's, user and system) per synced write:
// what each fsync of the log costs however little it holds. bench/README.md
// compares both with Cairn's CPU per step.
//
//	go run ./bench/floor -n 20000 -senders 16
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cairn-dev/cairn/internal/proc"
)

func main() {
	var (
		serve   = flag.Bool("serve", false, "run as the null engine (the child process); -app is the app's URL")
		appURL  = flag.String("app", "", "with -serve: the app's URL")
		n       = flag.Int("n", 20000, "events in the burst")
		senders = flag.Int("senders", 16, "concurrent event senders")
		workers = flag.Int("workers", 64, "the null engine's concurrent app calls")
		rounds  = flag.Int("rounds", 1, "bursts to run, one after the other (each measured)")
		writes  = flag.Int("log-writes", 5000, "synced writes to the log store per log measurement (0: skip it)")
		dir     = flag.String("dir", "", "where the log store's temp dir goes (default: the system's temp dir; use the disk Cairn's data dir is on)")
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: floor [-n N] [-senders S] [-rounds R] [-log-writes W] [-dir D]\n\n"+
			"Measures two floors under Cairn's CPU per step: the HTTP exchanges of a raw burst against a\n"+
			"null engine (no log, no Raft, no Pebble), and a synced write to Cairn's Raft log store. Flags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *serve {
		// Cairn's own garbage collector setting (cmd/cairn), so that the
		// floor is not inflated by a GC Cairn does not run.
		debug.SetGCPercent(400)
		debug.SetMemoryLimit(1 << 30)
		if err := serveNull(*appURL, *workers); err != nil {
			fmt.Fprintln(os.Stderr, "floor: null engine:", err)
			os.Exit(1)
		}
		return
	}
	if err := measure(*n, *senders, *workers, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	if *writes > 0 {
		if err := measureLog(*dir, *writes); err != nil {
			fmt.Fprintln(os.Stderr, "floor: log:", err)
			os.Exit(1)
		}
	}
}

// ---------------------------------------------------------------------------
// The null engine (child process)

type event struct {
	ID   string          `json:"id,omitempty"`
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
	TS   int64           `json:"ts"`
}

// callCtx and callReq are the shape of Cairn's execution request.
type callCtx struct {
	RunID        string `json:"run_id"`
	FnID         string `json:"fn_id"`
	QiID         string `json:"qi_id"`
	RequestID    string `json:"request_id"`
	GenerationID int64  `json:"generation_id"`
	Attempt      int    `json:"attempt"`
	MaxAttempts  int    `json:"max_attempts"`
	Stack        struct {
		Stack   []string `json:"stack"`
		Current int      `json:"current"`
	} `json:"stack"`
}

type callReq struct {
	Event   event                      `json:"event"`
	Events  []event                    `json:"events"`
	Steps   map[string]json.RawMessage `json:"steps"`
	Ctx     callCtx                    `json:"ctx"`
	Version int                        `json:"version"`
	UseAPI  bool                       `json:"use_api"`
}

type op struct {
	ID   string          `json:"id"`
	Op   string          `json:"op"`
	Name string          `json:"name,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

type checkpoint struct {
	RunID        string `json:"run_id"`
	FnID         string `json:"fn_id"`
	QiID         string `json:"qi_id"`
	RequestID    string `json:"request_id"`
	GenerationID int64  `json:"generation_id"`
	Steps        []op   `json:"steps"`
	TS           int64  `json:"ts"`
}

var okJSON = []byte(`{"ok":true}`)

func serveNull(appURL string, workers int) error {
	runs := make(chan event, 1<<20)
	var seq, done, failed, checkpoints atomic.Int64
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/e/:key", func(c echo.Context) error {
		var ev event
		if err := json.NewDecoder(c.Request().Body).Decode(&ev); err != nil || ev.Name == "" {
			return echo.NewHTTPError(http.StatusBadRequest, "want one event with a name")
		}
		ev.ID = fmt.Sprintf("01JEVENT%018d", seq.Add(1))
		ev.TS = time.Now().UnixMilli()
		runs <- ev
		return c.JSON(http.StatusOK, map[string]any{"ids": []string{ev.ID}, "status": 200})
	})
	e.POST("/v1/checkpoint/:run/async", func(c echo.Context) error {
		var cp checkpoint
		if err := json.NewDecoder(c.Request().Body).Decode(&cp); err != nil || cp.RunID != c.Param("run") || len(cp.Steps) == 0 {
			return echo.NewHTTPError(http.StatusBadRequest, "bad checkpoint")
		}
		checkpoints.Add(1)
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, okJSON)
	})
	e.GET("/stats", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]int64{"done": done.Load(), "failed": failed.Load(), "checkpoints": checkpoints.Load()})
	})
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}}
	for range workers {
		go func() {
			for ev := range runs {
				if callApp(client, appURL, ev) {
					done.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("http://%s\n", ln.Addr())
	return http.Serve(ln, e)
}

// callApp makes a run's one call and reads its answer, as Cairn's executor
// does with async checkpointing: the app runs the three steps in it.
func callApp(client *http.Client, appURL string, ev event) bool {
	run := "01JRUN" + ev.ID[8:]
	body, err := json.Marshal(callReq{
		Event: ev, Events: []event{ev}, Steps: map[string]json.RawMessage{}, Version: 2,
		Ctx: callCtx{RunID: run, FnID: "fn-floor", QiID: "qi-" + run, RequestID: "rq-" + run, GenerationID: 1, MaxAttempts: 4},
	})
	if err != nil {
		return false
	}
	req, _ := http.NewRequest(http.MethodPost, appURL+"?fnId=floor&stepId=step", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Run-ID", run)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var ops []op
	if resp.StatusCode != http.StatusPartialContent || json.NewDecoder(resp.Body).Decode(&ops) != nil {
		return false
	}
	return len(ops) == 1 && ops[0].Op == "RunComplete"
}

// ---------------------------------------------------------------------------
// The app and the load generator (this process)

var steps = []op{
	{ID: "s1", Op: "StepRun", Name: "parse-csv", Data: json.RawMessage(`[{"email":"Ann@Example.com","name":"  Ann "},{"email":"bob@example.com","name":"Bob"}]`)},
	{ID: "s2", Op: "StepRun", Name: "normalize-raw-csv", Data: json.RawMessage(`[{"email":"ann@example.com","name":"Ann"},{"email":"bob@example.com","name":"Bob"}]`)},
	{ID: "s3", Op: "StepRun", Name: "input-contacts", Data: json.RawMessage(`{"imported":2,"emails":["ann@example.com","bob@example.com"]}`)},
}

// app answers a call as the raw handler does with async checkpointing.
type app struct {
	engine string
	client *http.Client
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var call callReq
	if err := json.NewDecoder(r.Body).Decode(&call); err != nil || call.Ctx.RunID == "" {
		http.Error(w, "bad call", http.StatusBadRequest)
		return
	}
	for _, st := range steps {
		payload, _ := json.Marshal(checkpoint{RunID: call.Ctx.RunID, FnID: call.Ctx.FnID, QiID: call.Ctx.QiID,
			RequestID: call.Ctx.RequestID, GenerationID: call.Ctx.GenerationID, Steps: []op{st}, TS: time.Now().UnixMilli()})
		resp, err := a.client.Post(a.engine+"/v1/checkpoint/"+call.Ctx.RunID+"/async", "application/json", bytes.NewReader(payload))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			http.Error(w, "checkpoint refused", http.StatusInternalServerError)
			return
		}
	}
	answer, _ := json.Marshal([]op{{ID: "complete", Op: "RunComplete", Data: json.RawMessage(`{"imported":2}`)}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Inngest-SDK", "floor:v1")
	w.WriteHeader(http.StatusPartialContent)
	_, _ = w.Write(answer)
}

func measure(n, senders, workers, rounds int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	a := &app{client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}}}
	go func() { _ = http.Serve(ln, a) }()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(self, "-serve", "-workers", strconv.Itoa(workers), "-app", "http://"+ln.Addr().String()+"/api/inngest")
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	if err := child.Start(); err != nil {
		return err
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return fmt.Errorf("null engine gave no address: %w", err)
	}
	a.engine = strings.TrimSpace(line)

	gen := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	if err := burst(gen, a.engine, 50, 4); err != nil { // warm-up: connections, code paths
		return err
	}
	fmt.Printf("HTTP floor: %d events per round, %d senders, %d engine workers, 2 CPUs shared (load %s)\n",
		n, senders, workers, loadavg())
	fmt.Printf("%-6s %10s %10s %22s %22s\n", "round", "wall", "steps/s", "null engine CPU/step", "app+loadgen CPU/step")
	for i := 1; i <= rounds; i++ {
		c0, s0 := procCPU(child.Process.Pid), selfCPU()
		start := time.Now()
		if err := burst(gen, a.engine, n, senders); err != nil {
			return err
		}
		wall := time.Since(start)
		c1, s1 := procCPU(child.Process.Pid), selfCPU()
		stepsN := float64(3 * n)
		fmt.Printf("%-6d %9.2fs %10.0f %19.3f ms %19.3f ms\n", i, wall.Seconds(), stepsN/wall.Seconds(),
			float64((c1-c0).Microseconds())/1000/stepsN, float64((s1-s0).Microseconds())/1000/stepsN)
	}
	return nil
}

// burst sends n events from senders goroutines and waits until the null
// engine has finished n more runs.
func burst(c *http.Client, engine string, n, senders int) error {
	before, err := stats(c, engine)
	if err != nil {
		return err
	}
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		sendEr error
	)
	body := []byte(`{"name":"bench/import.requested","data":{}}`)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				resp, err := c.Post(engine+"/e/bench", "application/json", bytes.NewReader(body))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("POST /e: HTTP %d", resp.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					sendEr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if sendEr != nil {
		return sendEr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		st, err := stats(c, engine)
		if err != nil {
			return err
		}
		if st["failed"] > before["failed"] {
			return fmt.Errorf("%d runs failed", st["failed"]-before["failed"])
		}
		if st["done"]-before["done"] >= int64(n) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ctx.Err()
}

func stats(c *http.Client, engine string) (map[string]int64, error) {
	resp, err := c.Get(engine + "/stats")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st map[string]int64
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// procCPU is a process's utime+stime.
func procCPU(pid int) time.Duration {
	ticks, err := proc.CPUTicks(pid)
	if err != nil {
		return 0
	}
	return time.Duration(float64(ticks) / proc.ClockTicks() * float64(time.Second))
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadavg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

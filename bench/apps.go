package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/internal/proc"
	"github.com/cairn-dev/cairn/sdk/signing"
)

// ---------------------------------------------------------------------------
// Hop meter: engine overhead seen from the app side

// hopMeter records, per run, when the app finished sending a 206 answer and
// when the next request for that run arrived. The difference is the time
// Cairn spent between two calls of a run: reading the answer, committing it
// to the log (fsync), applying it, and sending the next call.
type hopMeter struct {
	mu      sync.Mutex
	sent    map[string]time.Time // run id -> end of the last 206 answer
	gaps    []time.Duration
	calls   atomic.Int64
	missing int // requests whose previous answer had no timestamp yet
}

func newHopMeter() *hopMeter { return &hopMeter{sent: map[string]time.Time{}} }

// arrived notes a request for run at t.
func (h *hopMeter) arrived(run string, t time.Time) {
	h.calls.Add(1)
	if run == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev, ok := h.sent[run]; ok {
		delete(h.sent, run)
		if g := t.Sub(prev); g >= 0 {
			h.gaps = append(h.gaps, g)
		} else {
			h.missing++
		}
	}
}

// answered notes that the answer to run was fully written at t. Only a 206
// (more steps to come) starts a hop; anything else ends the run or is an
// error whose retry delay is not engine overhead.
func (h *hopMeter) answered(run string, status int, t time.Time) {
	if run == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if status == http.StatusPartialContent {
		h.sent[run] = t
	} else {
		delete(h.sent, run)
	}
}

// take returns and clears the gaps recorded so far, and the call count.
func (h *hopMeter) take() ([]time.Duration, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.gaps
	h.gaps = nil
	return g, h.calls.Swap(0)
}

// flush pushes a response to the socket so that "answered" is truthful.
func flush(w http.ResponseWriter) {
	_ = http.NewResponseController(w).Flush()
}

// ---------------------------------------------------------------------------
// The Go app: a minimal SDK stand-in with a 3-step function (and a sleeper,
// sleep.go)

const (
	goAppID   = "benchgo"
	goFnID    = "benchgo-import-contacts"
	benchSDK  = "cairn-bench:v0"
	eventName = "contacts/csv.uploaded"
)

type goStep struct {
	name string
	id   string // hex(sha1(name)), as the SDK hashes step ids
	data json.RawMessage
}

func stepID(name string) string {
	s := sha1.Sum([]byte(name))
	return hex.EncodeToString(s[:])
}

var goSteps = func() []goStep {
	mk := func(name, data string) goStep {
		return goStep{name: name, id: stepID(name), data: json.RawMessage(data)}
	}
	return []goStep{
		mk("parse-csv", `[{"email":"Ann@Example.com","name":"  Ann "},{"email":"bob@example.com","name":"Bob"},{"email":"ann@example.com","name":"Ann again"}]`),
		mk("normalize-raw-csv", `[{"email":"ann@example.com","name":"Ann"},{"email":"bob@example.com","name":"Bob"}]`),
		mk("input-contacts", `{"imported":2,"emails":["ann@example.com","bob@example.com"]}`),
	}
}()

var goFinal = []byte(`{"results":{"imported":2,"emails":["ann@example.com","bob@example.com"]}}`)

type goApp struct {
	url      string // serve URL, e.g. http://127.0.0.1:P/api/inngest
	cairnURL string
	hops     *hopMeter
	sleeper  *sleeper     // the second function, benchgo-sleeper (sleep scenario)
	flow     *flowTracker // benchgo-flow-none and benchgo-flow-conc (flow scenario)
	syncErr  atomic.Value // string: last register failure
	// Production mode: Cairn's key (verify its requests, sign our answers,
	// Bearer on /fn/register), and the time that takes.
	keys   signing.Keys
	crypto cryptoMeter
	ckpt   ckptMeter // async checkpointing: POSTs sent, handler time
}

func (a *goApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	if a.keys.Enabled() && (r.Method == http.MethodPost || r.Method == http.MethodPut) {
		if !a.verifyRequest(w, r) {
			return
		}
		w = &signedWriter{ResponseWriter: w, app: a}
	}
	switch r.Method {
	case http.MethodPost:
		a.call(w, r, arrived)
	case http.MethodPut:
		a.sync(w, r)
	case http.MethodGet:
		writeSDK(w, http.StatusOK, []byte(`{"function_count":4,"mode":"dev","sdk":"`+benchSDK+`"}`))
	default:
		writeSDK(w, http.StatusMethodNotAllowed, []byte(`{"message":"method not allowed"}`))
	}
}

func writeSDK(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Inngest-SDK", benchSDK)
	h.Set("X-Inngest-Req-Version", "2")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	signIfAsked(w, body)
	w.WriteHeader(status)
	_, _ = w.Write(body)
	flush(w)
}

// callBody is the part of an execution request the app reads.
type callBody struct {
	Event struct {
		ID   string `json:"id"`
		Data struct {
			Until string `json:"until"` // benchgo-sleeper: when to wake
			K     string `json:"k"`     // flow functions: the concurrency key
		} `json:"data"`
	} `json:"event"`
	Steps map[string]json.RawMessage `json:"steps"`
	Ctx   struct {
		RunID string `json:"run_id"`
		// Async checkpointing (checkpointing.go): fn_id turns it on.
		FnID                      string `json:"fn_id"`
		QiID                      string `json:"qi_id"`
		RequestID                 string `json:"request_id"`
		GenerationID              int64  `json:"generation_id"`
		Attempt                   int    `json:"attempt"`
		DisableImmediateExecution bool   `json:"disable_immediate_execution"`
		Stack                     struct {
			Stack []string `json:"stack"`
		} `json:"stack"`
	} `json:"ctx"`
}

func (a *goApp) call(w http.ResponseWriter, r *http.Request, arrived time.Time) {
	var body callBody
	err := json.NewDecoder(r.Body).Decode(&body)
	runID := body.Ctx.RunID
	if runID == "" {
		runID = r.Header.Get("X-Run-ID")
	}
	fn := r.URL.Query().Get("fnId")
	if fn == sleepFnID && err == nil {
		// Not hop-metered: its one "hop" is the sleep itself.
		a.sleeper.call(w, runID, &body, arrived)
		return
	}
	a.hops.arrived(runID, arrived)
	if err != nil {
		writeSDK(w, http.StatusInternalServerError, []byte(`{"type":"internal","name":"Error","message":"bad request body"}`))
		a.hops.answered(runID, http.StatusInternalServerError, time.Now())
		return
	}
	flowFn := fn == flowNoneFnID || fn == flowConcFnID
	if fn != goFnID && !flowFn {
		writeSDK(w, http.StatusInternalServerError, []byte(`{"type":"internal","name":"Error","message":"unknown-function-id"}`))
		a.hops.answered(runID, http.StatusInternalServerError, time.Now())
		return
	}
	if flowFn {
		a.flow.enter(fn, body.Event.Data.K, runID, body.Event.ID, arrived)
	}
	var (
		status  int
		answer  []byte
		noRetry bool
		waited  time.Duration
	)
	if wantsCheckpointing(&body, r.URL.Query().Get("stepId")) {
		status, answer, noRetry, waited = a.checkpointedSteps(r.Context(), &body, runID)
	} else {
		status, answer = threeSteps(&body)
	}
	a.ckpt.handlerNs.Add(int64(time.Since(arrived) - waited))
	if flowFn {
		// The call counts as in flight from its arrival until just before
		// its answer is written: Cairn cannot have the result, hence cannot
		// have freed the key's slot, before that.
		a.flow.leave(fn, body.Event.Data.K, runID, arrived)
	}
	if noRetry {
		w.Header().Set("X-Inngest-No-Retry", "true")
	}
	writeSDK(w, status, answer)
	// A 206 [RunComplete] ends the run: no hop starts.
	hopStatus := status
	if status == http.StatusPartialContent && bytes.Contains(answer, []byte(`"RunComplete"`)) {
		hopStatus = http.StatusOK
	}
	a.hops.answered(runID, hopStatus, time.Now())
	if flowFn && hopStatus == http.StatusOK {
		a.flow.answered(fn, runID, time.Now())
	}
}

// threeSteps answers a call of the 3-step shape (benchgo-import-contacts and
// the flow functions): a StepRun op for the first step not yet memoized in
// steps / ctx.stack.stack (206), or 200 with the result once all are done.
func threeSteps(body *callBody) (int, []byte) {
	done := make(map[string]bool, len(body.Steps)+len(body.Ctx.Stack.Stack))
	for id := range body.Steps {
		done[id] = true
	}
	for _, id := range body.Ctx.Stack.Stack {
		done[id] = true
	}
	for _, st := range goSteps {
		if done[st.id] {
			continue
		}
		op, _ := json.Marshal([]map[string]any{{
			"id": st.id, "op": "StepRun", "name": st.name, "displayName": st.name, "data": st.data,
		}})
		return http.StatusPartialContent, op
	}
	return http.StatusOK, goFinal
}

// sync answers Cairn's PUT by registering the function (protocol §3.1).
func (a *goApp) sync(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	kind := r.Header.Get("X-Inngest-Server-Kind")
	if kind == "" {
		kind = "dev"
	}
	fnDef := func(id, name, event string) map[string]any {
		stepURL := a.url + "?fnId=" + url.QueryEscape(id) + "&stepId=step"
		return map[string]any{
			"id": id, "name": name,
			"triggers": []any{map[string]any{"event": event}},
			"steps": map[string]any{"step": map[string]any{
				"id": "step", "name": "step",
				"runtime": map[string]any{"type": "http", "url": stepURL},
			}},
		}
	}
	reg := map[string]any{
		"url": a.url, "deployType": "ping", "framework": "cairn-bench", "appName": goAppID,
		"sdk": "go:" + benchSDK, "v": "0.1",
		"functions": []any{
			fnDef(goFnID, "import-contacts", eventName),
			fnDef(sleepFnID, "sleeper", sleepEventName),
			fnDef(flowNoneFnID, "flow-none", flowNoneEvent),
			withConcurrency(fnDef(flowConcFnID, "flow-conc", flowConcEvent)),
		},
	}
	b, _ := json.Marshal(reg)
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, a.cairnURL+"/fn/register", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Inngest-SDK", benchSDK)
	req.Header.Set("X-Inngest-Expected-Server-Kind", kind)
	req.Header.Set("X-Inngest-Sync-Kind", "out_of_band")
	if a.keys.Enabled() {
		req.Header.Set("Authorization", "Bearer "+a.keys.Primary.Bearer())
	}
	var res struct {
		OK       bool   `json:"ok"`
		Modified bool   `json:"modified"`
		Error    string `json:"error"`
		Message  string `json:"message"`
	}
	w.Header().Set("X-Inngest-Sync-Kind", "out_of_band")
	w.Header().Set("X-Inngest-Expected-Server-Kind", kind)
	if err := doJSON(req, &res); err != nil {
		a.syncErr.Store(err.Error())
		msg, _ := json.Marshal(map[string]any{"message": err.Error(), "modified": false})
		writeSDK(w, http.StatusInternalServerError, msg)
		return
	}
	msg, _ := json.Marshal(map[string]any{"message": "Successfully registered", "modified": res.Modified})
	writeSDK(w, http.StatusOK, msg)
}

// startGoApp serves the Go app on a free loopback port; with keys it acts as
// an SDK in production mode.
func startGoApp(cairnURL string, keys *prodKeys) (*goApp, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	a := &goApp{url: fmt.Sprintf("http://%s/api/inngest", ln.Addr()), cairnURL: cairnURL, hops: newHopMeter(),
		sleeper: newSleeper(), flow: newFlowTracker()}
	if keys != nil {
		a.keys = signing.Keys{Primary: keys.key}
	}
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return a, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// ---------------------------------------------------------------------------
// The TS app (e2e/tsapp, real SDK), behind a timing proxy

const tsAppID = "tsapp"

// statusWriter remembers the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() { flush(s.ResponseWriter) }

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// startProxy serves a reverse proxy to target on a free loopback port and
// times the step hops of the calls that pass through it. The Host header is
// kept, so the SDK registers the proxy's URL and Cairn's calls come back
// through it.
func startProxy(target *url.URL, hops *hopMeter) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{Proxy: nil, MaxIdleConns: 512, MaxIdleConnsPerHost: 512,
			IdleConnTimeout: 90 * time.Second},
		FlushInterval: -1,
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			rp.ServeHTTP(w, r)
			return
		}
		arrived := time.Now()
		run := r.Header.Get("X-Run-ID")
		hops.arrived(run, arrived)
		sw := &statusWriter{ResponseWriter: w}
		rp.ServeHTTP(sw, r)
		flush(w)
		hops.answered(run, sw.status, time.Now())
	})
	url, stop := serve(ln, h)
	return url, stop, nil
}

// serve serves h on ln and returns its base URL and how to stop it.
func serve(ln net.Listener, h http.Handler) (string, func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}

// ensureNodeModules runs `npm ci` in the TS app folder if needed.
func ensureNodeModules(ctx context.Context, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "inngest")); err == nil {
		return nil
	}
	fmt.Fprintf(os.Stderr, "bench: running npm ci in %s\n", dir)
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm ci: %v\n%s", err, out)
	}
	return nil
}

// startTSApp starts `node app.mjs` on port and waits for its READY line.
// With keys the SDK runs in production mode (INNGEST_DEV=0 and the keys).
func startTSApp(ctx context.Context, dir, workDir string, port int, cairnURL string, keys *prodKeys) (*proc.Child, error) {
	pr, pw := io.Pipe()
	env := []string{"PORT=" + strconv.Itoa(port), "INNGEST_DEV=1", "INNGEST_BASE_URL=" + cairnURL,
		"JOURNAL=/dev/null", "APP_ID=" + tsAppID, "TSAPP_DEBUG=", "INNGEST_STREAMING=",
		"INNGEST_SIGNING_KEY=", "INNGEST_SIGNING_KEY_FALLBACK=", "INNGEST_EVENT_KEY="}
	if keys != nil {
		env = append(env, "INNGEST_DEV=0", "INNGEST_SIGNING_KEY="+keys.key.Raw(), "INNGEST_EVENT_KEY="+keys.eventKey)
	}
	logPath := filepath.Join(workDir, "tsapp.log")
	c, err := proc.Start("tsapp", proc.Options{Dir: dir, Env: env, LogPath: logPath, Stdout: pw}, "node", "app.mjs")
	if err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			if !once && strings.HasPrefix(sc.Text(), "READY") {
				once = true
				close(ready)
			}
		}
	}()
	go func() { <-c.Done(); pw.Close() }()
	select {
	case <-ready:
		return c, nil
	case <-c.Done():
		return nil, fmt.Errorf("tsapp exited before READY: %v\n--- %s ---\n%s", c.Err(), logPath, proc.TailFile(logPath, 30))
	case <-time.After(60 * time.Second):
		c.Stop(5 * time.Second)
		return nil, fmt.Errorf("tsapp not READY after 60s\n--- %s ---\n%s", logPath, proc.TailFile(logPath, 30))
	case <-ctx.Done():
		c.Stop(5 * time.Second)
		return nil, ctx.Err()
	}
}

func urlParse(s string) (*url.URL, error) { return url.Parse(s) }

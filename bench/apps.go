package main

import (
	"bufio"
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
// The Go apps: app benchgo, served inside the bench process either by the
// Go SDK (-app go, sdkapp.go) or by a hand-written protocol handler (-app
// raw, rawapp.go), with the same functions: benchgo-import-contacts (3
// steps), benchgo-sleeper (sleep.go), benchgo-flow-none and
// benchgo-flow-conc (flow.go).

const (
	goAppID   = "benchgo"
	goFnID    = "benchgo-import-contacts"
	benchSDK  = "cairn-bench:v0"
	eventName = "contacts/csv.uploaded"

	appSDK = "go"  // -app go: the Go SDK app
	appRaw = "raw" // -app raw: the hand-written handler
)

// isGoApp says whether an app mode is served inside the bench process.
func isGoApp(app string) bool { return app == appSDK || app == appRaw }

// appMeters is what a Go app tells the scenarios about the calls it served.
type appMeters struct {
	hops    *hopMeter
	sleeper *sleeper     // benchgo-sleeper (sleep scenario)
	flow    *flowTracker // benchgo-flow-none and benchgo-flow-conc (flow scenario)
	ckpt    ckptMeter    // async checkpointing: POSTs sent, handler time
	syncErr atomic.Value // string: last register failure
}

func newAppMeters() *appMeters {
	return &appMeters{hops: newHopMeter(), sleeper: newSleeper(), flow: newFlowTracker()}
}

// goApp is a running Go app.
type goApp struct {
	*appMeters
	kind   string       // appSDK or appRaw
	url    string       // serve URL, e.g. http://127.0.0.1:P/api/inngest
	crypto *cryptoMeter // raw app in production mode: its verify + sign time
	stop   func()
}

// goAppName says what a Go app mode is, for humans.
func goAppName(kind string) string {
	if kind == appRaw {
		return "raw handler"
	}
	return "Go SDK app"
}

// startGoApp serves the Go app of kind on a free loopback port; with keys
// in production mode.
func startGoApp(kind, cairnURL string, keys *prodKeys) (*goApp, error) {
	if kind == appRaw {
		return startRawApp(cairnURL, keys)
	}
	return startSDKApp(cairnURL, keys)
}

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
	url, stop := serve(ln, h, partProxy)
	return url, stop, nil
}

// serve serves h on ln and returns its base URL and how to stop it. Its
// goroutines carry the label of part (cpusplit.go).
func serve(ln net.Listener, h http.Handler, part string) (string, func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		labelGoroutine(part)
		_ = srv.Serve(ln)
	}()
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

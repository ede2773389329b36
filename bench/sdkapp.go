package main

// The Go SDK app (-app go): app benchgo written with the Go SDK
// (github.com/cairn-dev/cairn/sdk), as a user would write it, serving the
// functions the raw handler (rawapp.go) serves with the same ids, steps and
// outputs:
//
//   - benchgo-import-contacts (contacts/csv.uploaded): step.Run parse-csv,
//     normalize-raw-csv, input-contacts (e2e/tsapp's import-contacts, in
//     Go), result {"results": ...};
//   - benchgo-sleeper (bench/sleep): step.SleepUntil "nap" until
//     event.data.until, result "woke";
//   - benchgo-flow-none (bench/flow.none) and benchgo-flow-conc
//     (bench/flow.conc, concurrency limit 1 per event.data.k): the same 3
//     steps.
//
// client.Serve() is wrapped in a thin middleware that only observes: it
// stamps each call's arrival, learns from the functions (through the
// request's context, which the SDK hands to them) which run, key or sleep
// the call was about, stamps the moment the SDK starts writing its answer
// and the moment it is flushed, and feeds the hop meter, the flow tracker
// and the sleeper as the raw handler does. The SDK's own HTTP client (for
// /fn/register and async checkpoints) counts the checkpoint POSTs and the
// time each call waits for them.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-dev/cairn/sdk"
	"github.com/cairn-dev/cairn/sdk/step"
)

const servePath = "/api/inngest"

// ---------------------------------------------------------------------------
// The functions

// benchData is the data of the events the Go app's functions take.
type benchData struct {
	CSV   string `json:"csv,omitempty"`   // import-contacts: the file (default defaultCSV)
	Until string `json:"until,omitempty"` // sleeper: when to wake, RFC 3339 with ms
	K     string `json:"k,omitempty"`     // flow functions: the concurrency key
}

type contact struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

type imported struct {
	Imported int      `json:"imported"`
	Emails   []string `json:"emails"`
}

type importOutput struct {
	Results imported `json:"results"`
}

// defaultCSV is e2e/tsapp's DEFAULT_CSV: the bench's events carry no file.
const defaultCSV = "email,name\nAnn@Example.com,  Ann \nbob@example.com,Bob\nann@example.com,Ann again"

var lineBreak = regexp.MustCompile(`\r?\n`)

// parseCSV reads rows of email,name; cells are kept as they appear
// (normalize-raw-csv cleans them).
func parseCSV(text string) []contact {
	var lines []string
	for _, l := range lineBreak.Split(text, -1) {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	out := []contact{}
	if len(lines) == 0 {
		return out
	}
	header := strings.Split(lines[0], ",")
	for _, line := range lines[1:] {
		cells := strings.Split(line, ",")
		var c contact
		for i, col := range header {
			if i >= len(cells) {
				break
			}
			switch strings.ToLower(strings.TrimSpace(col)) {
			case "email":
				c.Email = cells[i]
			case "name":
				c.Name = cells[i]
			}
		}
		out = append(out, c)
	}
	return out
}

// normalizeContacts lowercases and trims emails, trims names, and drops
// empty and repeated emails.
func normalizeContacts(rows []contact) []contact {
	seen := map[string]bool{}
	out := []contact{}
	for _, r := range rows {
		email := strings.ToLower(strings.TrimSpace(r.Email))
		if email == "" || seen[email] {
			continue
		}
		seen[email] = true
		out = append(out, contact{Email: email, Name: strings.TrimSpace(r.Name)})
	}
	return out
}

// importContacts is the 3-step function, as fnID (import-contacts or a
// flow function, whose calls the flow tracker follows).
func (a *sdkApp) importContacts(fnID string) func(context.Context, sdk.Input[benchData]) (importOutput, error) {
	flowFn := fnID == flowNoneFnID || fnID == flowConcFnID
	return func(ctx context.Context, in sdk.Input[benchData]) (importOutput, error) {
		if info := callFrom(ctx); info != nil {
			info.runID = cmp.Or(info.runID, in.RunID)
			if flowFn {
				info.flowKey, info.entered = in.Event.Data.K, true
				a.flow.enter(fnID, in.Event.Data.K, info.runID, in.Event.ID, info.arrived)
			}
		}
		csv := cmp.Or(in.Event.Data.CSV, defaultCSV)
		rows, err := step.Run(ctx, "parse-csv", func(context.Context) ([]contact, error) {
			return parseCSV(csv), nil
		})
		if err != nil {
			return importOutput{}, err
		}
		contacts, err := step.Run(ctx, "normalize-raw-csv", func(context.Context) ([]contact, error) {
			return normalizeContacts(rows), nil
		})
		if err != nil {
			return importOutput{}, err
		}
		results, err := step.Run(ctx, "input-contacts", func(context.Context) (imported, error) {
			out := imported{Imported: len(contacts), Emails: make([]string, 0, len(contacts))}
			for _, c := range contacts {
				out.Emails = append(out.Emails, c.Email)
			}
			return out, nil
		})
		return importOutput{Results: results}, err
	}
}

// sleepUntil is benchgo-sleeper: it sleeps until event.data.until, then
// returns "woke".
func (a *sdkApp) sleepUntil(ctx context.Context, in sdk.Input[benchData]) (string, error) {
	info := callFrom(ctx)
	until, err := time.Parse(time.RFC3339Nano, in.Event.Data.Until)
	if err != nil {
		if info != nil {
			info.bad = fmt.Sprintf("run %q: unusable event.data.until %q", in.RunID, in.Event.Data.Until)
		}
		return "", sdk.NonRetriable(fmt.Errorf("event.data.until must be an RFC 3339 date, not %q", in.Event.Data.Until))
	}
	if info != nil {
		info.runID = cmp.Or(info.runID, in.RunID)
		info.sleeper, info.untilMs = true, until.UnixMilli()
	}
	if err := step.SleepUntil(ctx, "nap", until); err != nil {
		return "", err
	}
	if info != nil {
		info.woke = true
	}
	return "woke", nil
}

// ---------------------------------------------------------------------------
// The app and its middleware

type sdkApp struct {
	*appMeters
	handler http.Handler // the SDK's client.Serve()
}

// newSDKClient makes a client configured by the bench alone (IgnoreEnv:
// no INNGEST_* variable counts):
// dev mode without keys, production mode with the node's signing key and
// event key. m, when set, counts the SDK's checkpoint POSTs.
func newSDKClient(appID, cairnURL, origin string, keys *prodKeys, m *ckptMeter) (*sdk.Client, error) {
	dev := keys == nil
	opts := sdk.ClientOpts{
		AppID: appID, Dev: &dev, BaseURL: cairnURL, ServeOrigin: origin, ServePath: servePath, IgnoreEnv: true,
		// The app's own transport: its connections are the app's
		// (cpusplit.go), never shared with the load generator.
		HTTPClient: &http.Client{Timeout: 30 * time.Second, Transport: &ckptTransport{
			base: &http.Transport{Proxy: nil, MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second},
			m:    m,
		}},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if keys != nil {
		opts.SigningKey, opts.EventKey = keys.key.Raw(), keys.eventKey
	}
	return sdk.NewClient(opts)
}

// startSDKApp serves the Go SDK app on a free loopback port.
func startSDKApp(cairnURL string, keys *prodKeys) (*goApp, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	origin := "http://" + ln.Addr().String()
	a := &sdkApp{appMeters: newAppMeters()}
	c, err := newSDKClient(goAppID, cairnURL, origin, keys, &a.ckpt)
	if err == nil {
		err = a.createFunctions(c)
	}
	if err != nil {
		ln.Close()
		return nil, err
	}
	a.handler = c.Serve()
	g := &goApp{appMeters: a.appMeters, kind: appSDK, url: origin + servePath}
	_, g.stop = serve(ln, a, partApp)
	return g, nil
}

// createFunctions adds benchgo's functions to c, checking that their ids
// are the ones the scenarios send events to and read runs of.
func (a *sdkApp) createFunctions(c *sdk.Client) error {
	var fns []*sdk.Function
	add := func(f *sdk.Function, err error) {
		if err == nil {
			fns = append(fns, f)
		}
	}
	add(sdk.CreateFunction(c, sdk.FunctionOpts{ID: "import-contacts"}, sdk.EventTrigger(eventName), a.importContacts(goFnID)))
	add(sdk.CreateFunction(c, sdk.FunctionOpts{ID: "sleeper"}, sdk.EventTrigger(sleepEventName), a.sleepUntil))
	add(sdk.CreateFunction(c, sdk.FunctionOpts{ID: "flow-none"}, sdk.EventTrigger(flowNoneEvent), a.importContacts(flowNoneFnID)))
	add(sdk.CreateFunction(c, sdk.FunctionOpts{ID: "flow-conc", Concurrency: []sdk.Concurrency{{Limit: 1, Key: flowConcKey}}},
		sdk.EventTrigger(flowConcEvent), a.importContacts(flowConcFnID)))
	want := []string{goFnID, sleepFnID, flowNoneFnID, flowConcFnID}
	if len(fns) != len(want) {
		return fmt.Errorf("sdk app: %d of %d functions created", len(fns), len(want))
	}
	for i, f := range fns {
		if f.FullID() != want[i] {
			return fmt.Errorf("sdk app: function id %q, want %q", f.FullID(), want[i])
		}
	}
	return nil
}

// callInfo is one call, as the middleware and the functions see it.
type callInfo struct {
	arrived time.Time
	fn      string // fnId
	runID   string // X-Run-ID, else the function's in.RunID

	// Set by the function's code.
	entered bool   // a flow function's call, entered in the flow tracker
	flowKey string // its event.data.k
	sleeper bool   // a sleeper call with a usable until
	untilMs int64
	woke    bool   // the nap was memoized: the call after the sleep
	bad     string // a sleeper call without a usable until

	// Set as the answer is written.
	answerAt time.Time    // the SDK started writing the answer
	waited   atomic.Int64 // ns waiting for checkpoint answers (ckptTransport)
}

type callInfoKey struct{}

// callFrom returns the call a context belongs to, or nil.
func callFrom(ctx context.Context) *callInfo {
	info, _ := ctx.Value(callInfoKey{}).(*callInfo)
	return info
}

func (a *sdkApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		a.call(w, r)
	case http.MethodPut:
		aw := &answerWriter{ResponseWriter: w, keepBody: true}
		a.handler.ServeHTTP(aw, r)
		if aw.status/100 != 2 {
			a.syncErr.Store(fmt.Sprintf("the SDK answered Cairn's sync %d: %s", aw.status, bytes.TrimSpace(aw.body)))
		}
	default:
		a.handler.ServeHTTP(w, r)
	}
}

func (a *sdkApp) call(w http.ResponseWriter, r *http.Request) {
	info := &callInfo{arrived: time.Now(), fn: r.URL.Query().Get("fnId"), runID: r.Header.Get("X-Run-ID")}
	sleeperFn := info.fn == sleepFnID
	var memo json.RawMessage
	if sleeperFn {
		memo = peekNap(r)
	} else if info.runID != "" {
		a.hops.arrived(info.runID, info.arrived) // not the sleeper: its one "hop" is the sleep itself
	}
	aw := &answerWriter{ResponseWriter: w, onHeader: func() {
		info.answerAt = time.Now()
		if info.entered {
			// The call counts as in flight from its arrival until just
			// before its answer is written: Cairn cannot have the result,
			// hence cannot have freed the key's slot, before that.
			a.flow.leave(info.fn, info.flowKey, info.runID, info.arrived)
		}
	}}
	a.handler.ServeHTTP(aw, r.WithContext(context.WithValue(r.Context(), callInfoKey{}, info)))
	flush(w)
	now := time.Now()
	run := info.runID
	switch {
	case sleeperFn:
		switch {
		case info.bad != "":
			a.sleeper.badCall(info.bad)
		case info.sleeper:
			a.sleeper.called(run, info.untilMs, info.woke, memo, info.arrived.UnixNano())
			if (!info.woke && aw.status == http.StatusPartialContent && !aw.complete) ||
				(info.woke && (aw.status == http.StatusOK || aw.complete)) {
				a.sleeper.answered(run, info.woke, now.UnixNano())
			}
		}
	default:
		// A 206 [RunComplete] ends the run: no hop starts.
		hopStatus := aw.status
		if aw.complete {
			hopStatus = http.StatusOK
		}
		if r.Header.Get("X-Run-ID") == "" {
			a.hops.arrived(run, info.arrived)
		}
		a.hops.answered(run, hopStatus, now)
		if info.entered && hopStatus == http.StatusOK {
			a.flow.answered(info.fn, run, now)
		}
		if (info.fn == goFnID || info.entered) && !info.answerAt.IsZero() {
			a.ckpt.handlerNs.Add(int64(info.answerAt.Sub(info.arrived)) - info.waited.Load())
		}
	}
}

// peekNap reads the nap's memo from a sleeper call's body (Cairn sends
// null for a sleep; the sleep scenario checks it), leaving the body for
// the SDK.
func peekNap(r *http.Request) json.RawMessage {
	b, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	var x struct {
		Steps map[string]json.RawMessage `json:"steps"`
	}
	_ = json.Unmarshal(b, &x)
	return x.Steps[napID]
}

// answerWriter watches the SDK write its answer: the status, whether it is
// a 206 [RunComplete] (the run's end), the body if asked; onHeader runs
// just before the status line is written.
type answerWriter struct {
	http.ResponseWriter
	onHeader func()
	keepBody bool

	status   int
	complete bool
	body     []byte
}

func (w *answerWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if w.onHeader != nil {
			w.onHeader()
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *answerWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.status == http.StatusPartialContent && !w.complete && bytes.Contains(b, []byte(`"RunComplete"`)) {
		w.complete = true
	}
	if w.keepBody && len(w.body) < 4096 {
		w.body = append(w.body, b[:min(len(b), 4096-len(w.body))]...)
	}
	return w.ResponseWriter.Write(b)
}

func (w *answerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ckptTransport counts the SDK's checkpoint POSTs (every try) and adds the
// time each takes, until its answer is read, to its call's wait.
type ckptTransport struct {
	base http.RoundTripper
	m    *ckptMeter // nil: count nothing
}

// isCheckpoint says whether a request is an async checkpoint.
func isCheckpoint(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/checkpoint/") && strings.HasSuffix(r.URL.Path, "/async")
}

func (t *ckptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.m == nil || !isCheckpoint(req) {
		return t.base.RoundTrip(req)
	}
	t.m.posts.Add(1)
	info := callFrom(req.Context())
	t0 := time.Now()
	resp, err := t.base.RoundTrip(req)
	switch {
	case info == nil:
	case err != nil:
		info.waited.Add(int64(time.Since(t0)))
	default:
		resp.Body = &timedBody{ReadCloser: resp.Body, t0: t0, info: info}
	}
	return resp, err
}

// timedBody adds the time from the request to the body's close to a
// call's wait.
type timedBody struct {
	io.ReadCloser
	t0   time.Time
	info *callInfo
	once sync.Once
}

func (b *timedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.info.waited.Add(int64(time.Since(b.t0))) })
	return err
}

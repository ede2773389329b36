package main

// The raw Go app (-app raw): a hand-written handler of the SDK protocol
// serving benchgo's functions with constant step outputs and next to no
// code, the same answers the Go SDK app gives (sdkapp.go). It is kept to
// isolate what the SDK itself costs: in one invocation, -app go,raw runs
// both against their own Cairn and compares the bench process's CPU per
// step (see compareSDK). Its async checkpointing is in checkpointing.go,
// its signatures in production.go.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-dev/cairn/sdk/signing"
)

type rawApp struct {
	*appMeters
	url      string // serve URL, e.g. http://127.0.0.1:P/api/inngest
	cairnURL string
	// Production mode: Cairn's key (verify its requests, sign our answers,
	// Bearer on /fn/register), and the time that takes.
	keys   signing.Keys
	crypto cryptoMeter
}

// rawClient is the raw app's client to Cairn (register, checkpoints): many
// calls checkpoint at once in a burst. Its own transport, so that its
// connections are the app's (cpusplit.go), never the load generator's.
var rawClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second},
	Timeout:   30 * time.Second,
}

func (a *rawApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

func (a *rawApp) call(w http.ResponseWriter, r *http.Request, arrived time.Time) {
	var body callBody
	err := json.NewDecoder(r.Body).Decode(&body)
	runID := body.Ctx.RunID
	if runID == "" {
		runID = r.Header.Get("X-Run-ID")
	}
	fn := r.URL.Query().Get("fnId")
	if fn == sleepFnID && err == nil {
		// Not hop-metered: its one "hop" is the sleep itself.
		a.sleeperCall(w, runID, &body, arrived)
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

// sleeperCall answers benchgo-sleeper: the first call (no "nap" memoized)
// with one Sleep op until event.data.until, the call after the sleep with
// 200 "woke".
func (a *rawApp) sleeperCall(w http.ResponseWriter, runID string, body *callBody, arrived time.Time) {
	s := a.sleeper
	untilStr := body.Event.Data.Until
	until, err := time.Parse(time.RFC3339Nano, untilStr)
	if err != nil || runID == "" || strings.ContainsAny(untilStr, `"\`) {
		s.badCall(fmt.Sprintf("run %q: unusable event.data.until %q", runID, untilStr))
		w.Header().Set("X-Inngest-No-Retry", "true")
		writeSDK(w, http.StatusBadRequest, []byte(`{"name":"Error","message":"event.data.until must be an RFC 3339 date"}`))
		return
	}
	memo, slept := body.Steps[napID]
	if !slept {
		for _, id := range body.Ctx.Stack.Stack {
			slept = slept || id == napID
		}
	}
	s.called(runID, until.UnixMilli(), slept, memo, arrived.UnixNano())
	if !slept {
		writeSDK(w, http.StatusPartialContent,
			[]byte(`[{"id":"`+napID+`","op":"Sleep","name":"`+untilStr+`","displayName":"nap","opts":{}}]`))
	} else {
		writeSDK(w, http.StatusOK, []byte(`"woke"`))
	}
	s.answered(runID, slept, time.Now().UnixNano())
}

// sync answers Cairn's PUT by registering the function (protocol §3.1).
func (a *rawApp) sync(w http.ResponseWriter, r *http.Request) {
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
	if err := doJSONWith(rawClient, req, &res); err != nil {
		a.syncErr.Store(err.Error())
		msg, _ := json.Marshal(map[string]any{"message": err.Error(), "modified": false})
		writeSDK(w, http.StatusInternalServerError, msg)
		return
	}
	msg, _ := json.Marshal(map[string]any{"message": "Successfully registered", "modified": res.Modified})
	writeSDK(w, http.StatusOK, msg)
}

// startRawApp serves the raw app on a free loopback port; with keys it acts
// as an SDK in production mode.
func startRawApp(cairnURL string, keys *prodKeys) (*goApp, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &rawApp{appMeters: newAppMeters(), url: fmt.Sprintf("http://%s/api/inngest", ln.Addr()), cairnURL: cairnURL}
	g := &goApp{appMeters: a.appMeters, kind: appRaw, url: a.url}
	if keys != nil {
		a.keys = signing.Keys{Primary: keys.key}
		g.crypto = &a.crypto
	}
	_, g.stop = serve(ln, a, partApp)
	return g, nil
}

// SDKComparison is one scenario run with the Go SDK app and with the raw
// handler in one invocation (-app go,raw), each against its own Cairn.
type SDKComparison struct {
	Mode          string `json:"mode"`
	Archive       string `json:"archive"`
	Checkpointing string `json:"checkpointing"`
	Scenario      string `json:"scenario"`

	SDKStepsPerSec, RawStepsPerSec             float64 `json:"-"`
	SDKCairnCPUMsPerStep, RawCairnCPUMsPerStep float64 `json:"-"`
	SDKAppCPUMsPerStep, RawAppCPUMsPerStep     float64 `json:"-"`
	SDKBenchCPUMsPerStep, RawBenchCPUMsPerStep float64 `json:"-"`
	SDKCallsPerRun, RawCallsPerRun             float64 `json:"-"`
	SDKHandlerMsPerStep, RawHandlerMsPerStep   float64 `json:"-"`
	// SDKExtraCPUMsPerStep is what the SDK app costs per step beyond the
	// raw handler: the difference of their app CPU. SDKExtraBenchCPUMsPerStep
	// is the difference of the whole bench process's CPU, which needs no
	// profile but also holds the load generator's, whose status polls
	// follow the wall time, not the steps.
	SDKExtraCPUMsPerStep      float64 `json:"sdk_extra_app_cpu_ms_per_step"`
	SDKExtraBenchCPUMsPerStep float64 `json:"sdk_extra_bench_cpu_ms_per_step"`
}

// MarshalJSON names the pairs' fields.
func (c SDKComparison) MarshalJSON() ([]byte, error) {
	type plain SDKComparison
	return json.Marshal(struct {
		plain
		SDKStepsPerSec       float64 `json:"sdk_steps_per_sec"`
		RawStepsPerSec       float64 `json:"raw_steps_per_sec"`
		SDKCairnCPUMsPerStep float64 `json:"sdk_cairn_cpu_ms_per_step"`
		RawCairnCPUMsPerStep float64 `json:"raw_cairn_cpu_ms_per_step"`
		SDKAppCPUMsPerStep   float64 `json:"sdk_app_cpu_ms_per_step"`
		RawAppCPUMsPerStep   float64 `json:"raw_app_cpu_ms_per_step"`
		SDKBenchCPUMsPerStep float64 `json:"sdk_bench_process_cpu_ms_per_step"`
		RawBenchCPUMsPerStep float64 `json:"raw_bench_process_cpu_ms_per_step"`
		SDKCallsPerRun       float64 `json:"sdk_app_calls_per_run"`
		RawCallsPerRun       float64 `json:"raw_app_calls_per_run"`
		SDKHandlerMsPerStep  float64 `json:"sdk_handler_ms_per_step"`
		RawHandlerMsPerStep  float64 `json:"raw_handler_ms_per_step"`
	}{plain(c), c.SDKStepsPerSec, c.RawStepsPerSec, c.SDKCairnCPUMsPerStep, c.RawCairnCPUMsPerStep,
		c.SDKAppCPUMsPerStep, c.RawAppCPUMsPerStep, c.SDKBenchCPUMsPerStep, c.RawBenchCPUMsPerStep,
		c.SDKCallsPerRun, c.RawCallsPerRun, c.SDKHandlerMsPerStep, c.RawHandlerMsPerStep})
}

// compareSDK pairs the Go SDK app's and the raw handler's results of the
// same security, archive and checkpointing modes and scenario: the n-th of
// one app with the n-th of the other (flow repeats its passes).
func compareSDK(rs []*Result) []SDKComparison {
	key := func(r *Result) string {
		return strings.Join([]string{r.Mode, r.Archive, r.Checkpointing, r.Scenario}, "\x00")
	}
	raws := map[string][]*Result{}
	for _, r := range rs {
		if r.App == appRaw && r.Sleep == nil && r.Steps > 0 {
			raws[key(r)] = append(raws[key(r)], r)
		}
	}
	seen := map[string]int{}
	var out []SDKComparison
	for _, g := range rs {
		if g.App != appSDK || g.Sleep != nil || g.Steps == 0 {
			continue
		}
		k := key(g)
		i := seen[k]
		seen[k]++
		if i >= len(raws[k]) {
			continue
		}
		r := raws[k][i]
		out = append(out, SDKComparison{Mode: g.Mode, Archive: g.Archive, Checkpointing: g.Checkpointing, Scenario: g.Scenario,
			SDKStepsPerSec: g.StepsPerSec, RawStepsPerSec: r.StepsPerSec,
			SDKCairnCPUMsPerStep: g.CPUSecPerStep * 1000, RawCairnCPUMsPerStep: r.CPUSecPerStep * 1000,
			SDKAppCPUMsPerStep: g.AppCPUMsPerStep, RawAppCPUMsPerStep: r.AppCPUMsPerStep,
			SDKBenchCPUMsPerStep: g.BenchCPUMsPerStep, RawBenchCPUMsPerStep: r.BenchCPUMsPerStep,
			SDKCallsPerRun: g.CallsPerRun, RawCallsPerRun: r.CallsPerRun,
			SDKHandlerMsPerStep: g.HandlerMsPerStep, RawHandlerMsPerStep: r.HandlerMsPerStep,
			SDKExtraCPUMsPerStep:      g.AppCPUMsPerStep - r.AppCPUMsPerStep,
			SDKExtraBenchCPUMsPerStep: g.BenchCPUMsPerStep - r.BenchCPUMsPerStep})
	}
	return out
}

func printSDKComparison(w io.Writer, cs []SDKComparison) {
	fmt.Fprintln(w, "\nGo SDK app (go) vs hand-written handler (raw), same invocation, each against its own Cairn")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tsteps/s go\traw\tCairn CPU/step go\traw\tapp CPU/step go\traw\tSDK extra (go − raw)\tbench process CPU/step go\traw\tgo − raw\thandler/step go\traw\tcalls/run go\traw\t")
	for _, c := range cs {
		label := c.Scenario
		if c.Mode == modeProd {
			label = "prod / " + label
		}
		if c.Checkpointing == ckptOff {
			label = "no-ckpt / " + label
		}
		if c.Archive == archiveOff {
			label = "no-archive / " + label
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f ms\t%.3f ms\t%.3f ms\t%.3f ms\t%+.3f ms\t%.3f ms\t%.3f ms\t%+.3f ms\t%.3f ms\t%.3f ms\t%.2f\t%.2f\t\n", label,
			num(c.SDKStepsPerSec), num(c.RawStepsPerSec), c.SDKCairnCPUMsPerStep, c.RawCairnCPUMsPerStep,
			c.SDKAppCPUMsPerStep, c.RawAppCPUMsPerStep, c.SDKExtraCPUMsPerStep,
			c.SDKBenchCPUMsPerStep, c.RawBenchCPUMsPerStep, c.SDKExtraBenchCPUMsPerStep,
			c.SDKHandlerMsPerStep, c.RawHandlerMsPerStep, c.SDKCallsPerRun, c.RawCallsPerRun)
	}
	tw.Flush()
	fmt.Fprintln(w, "SDK extra = app CPU per step of the SDK app minus the raw handler's: what the SDK costs beyond a handler that answers from")
	fmt.Fprintln(w, "constants (both pay net/http, server and client). bench process go − raw: the same from getrusage alone, with the load")
	fmt.Fprintln(w, "generator's difference in it (its status polls follow the wall time). handler = call arrival → answer written, checkpoint waits excluded.")
}

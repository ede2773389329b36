package main

// Async checkpointing (-checkpointing; protocol note §9.1). When a
// discovery call carries ctx.fn_id (Cairn sends it unless it runs with
// --no-checkpointing), the Go app does what the official SDK does: it runs
// the steps one after another in that request, POSTs each finished step to
// {cairn}/v1/checkpoint/{runId}/async, and answers the call at the end with
// 206 [RunComplete]. A checkpoint that fails (5 tries, 100 ms base backoff)
// makes it return the unsent step in a classic 206; a 409 (stale claim)
// makes it answer 400 StaleDispatchError with X-Inngest-No-Retry: true.
// -checkpointing=both runs each app mode with Cairn's --no-checkpointing,
// then without, and compares them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

const (
	ckptOn  = "on"
	ckptOff = "off"
)

// ckptModes is the value of -checkpointing: on (Cairn's default), off
// (--no-checkpointing) or both (off, then on).
type ckptModes []string

func (m *ckptModes) String() string {
	if m == nil || len(*m) == 0 {
		return ckptOn
	}
	if len(*m) > 1 {
		return "both"
	}
	return (*m)[0]
}

func (m *ckptModes) Set(s string) error {
	switch strings.ToLower(s) {
	case ckptOn:
		*m = []string{ckptOn}
	case ckptOff:
		*m = []string{ckptOff}
	case "both":
		*m = []string{ckptOff, ckptOn}
	default:
		return fmt.Errorf("want on, off or both, not %q", s)
	}
	return nil
}

// ckptArgs are Cairn's flags for a checkpointing mode.
func ckptArgs(mode string) []string {
	if mode == ckptOff {
		return []string{"--no-checkpointing"}
	}
	return nil
}

// completeID is sha1("complete"), the id of RunComplete (protocol §4.2).
var completeID = stepID("complete")

// ckptMeter counts what async checkpointing costs the Go app: its
// checkpoint requests (every try) and the time its handlers spent,
// apart from waiting for Cairn's checkpoint answers.
type ckptMeter struct {
	posts     atomic.Int64 // POST /v1/checkpoint/{id}/async requests sent
	handlerNs atomic.Int64 // 3-step handler time, checkpoint waits excluded
}

// take returns and clears the counts.
func (m *ckptMeter) take() (posts int64, handler time.Duration) {
	return m.posts.Swap(0), time.Duration(m.handlerNs.Swap(0))
}

// errStale is a checkpoint Cairn refused with 409: the call's claim is
// superseded.
var errStale = errors.New("checkpoint returned 409")

// wantsCheckpointing says whether the SDK would checkpoint this call
// (shouldAsyncCheckpoint): ctx.fn_id present, a discovery call, immediate
// execution allowed. A call that is a retry (attempt > 0) is left classic:
// the SDK returns the step after one success anyway.
func wantsCheckpointing(body *callBody, stepParam string) bool {
	return body.Ctx.FnID != "" && stepParam == "step" && !body.Ctx.DisableImmediateExecution && body.Ctx.Attempt == 0
}

// checkpointedSteps runs the steps not yet memoized, checkpointing each
// one, and returns the call's answer (status, body, no-retry header) and
// the time spent waiting on Cairn.
func (a *rawApp) checkpointedSteps(ctx context.Context, body *callBody, runID string) (int, []byte, bool, time.Duration) {
	done := make(map[string]bool, len(body.Steps)+len(body.Ctx.Stack.Stack))
	for id := range body.Steps {
		done[id] = true
	}
	for _, id := range body.Ctx.Stack.Stack {
		done[id] = true
	}
	var waited time.Duration
	for _, st := range goSteps {
		if done[st.id] {
			continue
		}
		op := map[string]any{"id": st.id, "op": "StepRun", "name": st.name, "displayName": st.name, "data": st.data}
		start := time.Now()
		err := a.postCheckpoint(ctx, body, runID, op)
		waited += time.Since(start)
		switch {
		case errors.Is(err, errStale):
			msg, _ := json.Marshal(map[string]any{"name": "StaleDispatchError",
				"message": "Stale dispatch: checkpoint returned 409 (run " + runID + ")", "__serialized": true})
			return http.StatusBadRequest, msg, true, waited
		case err != nil:
			// Fallback: the unsent step in a normal 206.
			b, _ := json.Marshal([]any{op})
			return http.StatusPartialContent, b, false, waited
		}
	}
	b, _ := json.Marshal([]map[string]any{{"op": "RunComplete", "id": completeID, "data": json.RawMessage(goFinal)}})
	return http.StatusPartialContent, b, false, waited
}

// postCheckpoint sends one finished step, as the SDK does: up to 5 tries
// with a 100 ms base backoff; a 409 is final (errStale).
func (a *rawApp) postCheckpoint(ctx context.Context, body *callBody, runID string, op map[string]any) error {
	payload, _ := json.Marshal(map[string]any{
		"run_id": runID, "fn_id": body.Ctx.FnID, "qi_id": body.Ctx.QiID,
		"request_id": body.Ctx.RequestID, "generation_id": body.Ctx.GenerationID,
		"steps": []any{op}, "ts": time.Now().UnixMilli(),
	})
	url := a.cairnURL + "/v1/checkpoint/" + runID + "/async"
	var last error
	for try := 0; try < 5; try++ {
		if try > 0 {
			select {
			case <-time.After(100 * time.Millisecond << (try - 1)):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Inngest-SDK", benchSDK)
		if a.keys.Enabled() {
			req.Header.Set("Authorization", "Bearer "+a.keys.Primary.Bearer())
		}
		a.ckpt.posts.Add(1)
		resp, err := rawClient.Do(req)
		if err != nil {
			last = err
			continue
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusConflict:
			return errStale
		case resp.StatusCode/100 == 2:
			return nil
		}
		last = fmt.Errorf("checkpoint: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	return last
}

// CkptComparison is one app/scenario measured with checkpointing off and on
// in one invocation.
type CkptComparison struct {
	App                  string  `json:"app"`
	Mode                 string  `json:"mode"`
	Scenario             string  `json:"scenario"`
	OffStepsPerSec       float64 `json:"off_steps_per_sec"`
	OnStepsPerSec        float64 `json:"on_steps_per_sec"`
	OffCPUMsPerStep      float64 `json:"off_cairn_cpu_ms_per_step"`
	OnCPUMsPerStep       float64 `json:"on_cairn_cpu_ms_per_step"`
	OffAppCPUMsPerStep   float64 `json:"off_app_cpu_ms_per_step"`
	OnAppCPUMsPerStep    float64 `json:"on_app_cpu_ms_per_step"`
	AppCPUSource         string  `json:"app_cpu_source"`
	OffHandlerMsPerStep  float64 `json:"off_go_handler_ms_per_step,omitempty"`
	OnHandlerMsPerStep   float64 `json:"on_go_handler_ms_per_step,omitempty"`
	OffLatency           Pct     `json:"off_event_to_completion_ms"`
	OnLatency            Pct     `json:"on_event_to_completion_ms"`
	OffRequestsPerRun    float64 `json:"off_http_requests_per_run"`
	OnRequestsPerRun     float64 `json:"on_http_requests_per_run"`
	OffCallsPerRun       float64 `json:"off_app_calls_per_run"`
	OnCallsPerRun        float64 `json:"on_app_calls_per_run"`
	OnCheckpointsPerRun  float64 `json:"on_checkpoint_posts_per_run"`
	OffCheckpointsPerRun float64 `json:"off_checkpoint_posts_per_run"`
}

// compareCkpt pairs the checkpointing-off and -on results of the same app,
// security mode, archive mode and scenario.
func compareCkpt(rs []*Result) []CkptComparison {
	var out []CkptComparison
	for _, off := range rs {
		if off.Checkpointing != ckptOff || off.Sleep != nil || off.Flow != nil || off.Steps == 0 {
			continue
		}
		for _, on := range rs {
			if on.Checkpointing != ckptOn || on.App != off.App || on.Mode != off.Mode || on.Archive != off.Archive ||
				on.Scenario != off.Scenario || on.Steps == 0 {
				continue
			}
			out = append(out, CkptComparison{App: off.App, Mode: off.Mode, Scenario: off.Scenario,
				OffStepsPerSec: off.StepsPerSec, OnStepsPerSec: on.StepsPerSec,
				OffCPUMsPerStep: off.CPUSecPerStep * 1000, OnCPUMsPerStep: on.CPUSecPerStep * 1000,
				OffAppCPUMsPerStep: off.AppCPUMsPerStep, OnAppCPUMsPerStep: on.AppCPUMsPerStep, AppCPUSource: on.AppCPUSource,
				OffHandlerMsPerStep: off.HandlerMsPerStep, OnHandlerMsPerStep: on.HandlerMsPerStep,
				OffLatency: off.LatencyMs, OnLatency: on.LatencyMs,
				OffRequestsPerRun: off.RequestsPerRun, OnRequestsPerRun: on.RequestsPerRun,
				OffCallsPerRun: off.CallsPerRun, OnCallsPerRun: on.CallsPerRun,
				OffCheckpointsPerRun: off.CheckpointsPerRun, OnCheckpointsPerRun: on.CheckpointsPerRun})
		}
	}
	return out
}

func printCkptComparison(w io.Writer, cs []CkptComparison) {
	fmt.Fprintln(w, "\nCheckpointing off (cairn --no-checkpointing) vs on (same invocation)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tsteps/s off\ton\tCairn CPU/step off\ton\tapp CPU/step off\ton\tGo handler/step off\ton\tp50 off\ton\tp99 off\ton\tHTTP req/run off\ton\t(calls + ckpt POSTs on)\t")
	for _, c := range cs {
		handler := func(ms float64) string {
			if !isGoApp(c.App) {
				return "-"
			}
			return fmt.Sprintf("%.3f ms", ms)
		}
		fmt.Fprintf(tw, "%s %s / %s\t%s\t%s\t%.3f ms\t%.3f ms\t%.3f ms\t%.3f ms\t%s\t%s\t%.1f ms\t%.1f ms\t%.1f ms\t%.1f ms\t%.2f\t%.2f\t%.2f + %.2f\t\n",
			c.App, c.Mode, c.Scenario, num(c.OffStepsPerSec), num(c.OnStepsPerSec),
			c.OffCPUMsPerStep, c.OnCPUMsPerStep, c.OffAppCPUMsPerStep, c.OnAppCPUMsPerStep,
			handler(c.OffHandlerMsPerStep), handler(c.OnHandlerMsPerStep),
			c.OffLatency.P50, c.OnLatency.P50, c.OffLatency.P99, c.OnLatency.P99,
			c.OffRequestsPerRun, c.OnRequestsPerRun, c.OnCallsPerRun, c.OnCheckpointsPerRun)
	}
	tw.Flush()
	seen := map[string]bool{}
	for _, c := range cs {
		if !seen[c.App] {
			seen[c.App] = true
			fmt.Fprintf(w, "app CPU (%s): %s\n", c.App, c.AppCPUSource)
		}
	}
}

// startCkptCounter serves a reverse proxy to Cairn that counts the
// checkpoint POSTs (/v1/checkpoint/{id}/async) passing through it: the TS
// app's SDK is given its URL as INNGEST_BASE_URL, so its checkpoints are
// counted as the Go app's are.
func startCkptCounter(cairnURL string, m *ckptMeter) (string, func(), error) {
	target, err := url.Parse(cairnURL)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: &http.Transport{Proxy: nil, MaxIdleConns: 512, MaxIdleConnsPerHost: 512,
			IdleConnTimeout: 90 * time.Second},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isCheckpoint(r) {
			m.posts.Add(1)
		}
		rp.ServeHTTP(w, r)
	})
	url, stop := serve(ln, h, partProxy)
	return url, stop, nil
}

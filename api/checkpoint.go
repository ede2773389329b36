package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/labstack/echo/v4"
	"github.com/oklog/ulid/v2"
)

// Durable endpoints (protocol §9.2): the SDK runs an endpoint's handler in
// the end user's request and reports its steps here (the sync checkpoint
// API); the engine owns the run once the handler hands it over, and the
// end user, redirected, waits for the handler's response on the run-output
// endpoint. fsm/endpoint.go says what the records do.

// maxEndpointRetries bounds the SDK's retries option, as function
// configs are bounded (validate.go).
const maxEndpointRetries = 20

// outputPoll is how long GET /v1/http/runs/:id/output waits for the run
// to end before it sends the caller back to wait again (under the HTTP
// write timeout), and how often it looks.
const (
	outputWait  = 4 * time.Minute
	outputEvery = 50 * time.Millisecond
	// teeWait is how long the output waits, once the run has ended, for
	// the handler's exact response, before it serves the RunComplete's.
	teeWait = time.Second
)

// httpRequestData is the data of the SDK's inngest/http.request event.
type httpRequestData struct {
	ContentType string `json:"content_type"`
	Domain      string `json:"domain"`
	IP          string `json:"ip"`
	Method      string `json:"method"`
	Path        string `json:"path"`
	QueryParams string `json:"query_params"`
	Body        string `json:"body"`
	Fn          string `json:"fn"`
}

// postCheckpoint creates a durable endpoint's run: POST /v1/checkpoint.
// Everything the record would be refused for is refused here first (4xx,
// nothing written). A retried request for a run that exists is answered
// as the first was.
func (s *Server) postCheckpoint(c echo.Context) error {
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	var in struct {
		RunID string `json:"run_id"`
		Event *struct {
			Name string          `json:"name"`
			Data json.RawMessage `json:"data"`
		} `json:"event"`
		Steps   json.RawMessage `json:"steps"`
		Retries *int            `json:"retries"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return errf(http.StatusBadRequest, "invalid_json", "checkpoint body: %v", err)
	}
	if _, err := ulid.ParseStrict(in.RunID); err != nil {
		return errf(http.StatusBadRequest, "invalid_run_id", "\"run_id\" must be a ULID: %v", err)
	}
	if in.Event == nil || in.Event.Name != fsm.EventHTTPRequest {
		return errf(http.StatusBadRequest, "invalid_event", "\"event\" must be an %s event", fsm.EventHTTPRequest)
	}
	var data httpRequestData
	if err := json.Unmarshal(in.Event.Data, &data); err != nil {
		return errf(http.StatusBadRequest, "invalid_event", "event data: %v", err)
	}
	target, err := endpointURL(data)
	if err != nil {
		return errf(http.StatusBadRequest, "invalid_event", "%v", err)
	}
	if err := s.cfg.AppHosts.CheckURL(target); err != nil {
		return errf(http.StatusForbidden, "app_host_not_allowed", "%v", err)
	}
	retries := 3 // the SDK's default
	if in.Retries != nil {
		retries = *in.Retries
	}
	if retries < 0 || retries > maxEndpointRetries {
		return errf(http.StatusBadRequest, "invalid_retries", "\"retries\" must be 0 to %d", maxEndpointRetries)
	}
	ops, err := checkpointOps(in.Steps)
	if err != nil {
		return err
	}
	fnID := fsm.EndpointFunctionID(data.Fn, data.Method, data.Path)
	if msg := checkName(fnID, 256); msg != "" {
		return errf(http.StatusBadRequest, "invalid_function", "function id: %s", msg)
	}
	if run, err := s.fsm.Run(in.RunID); err != nil {
		return err
	} else if run != nil {
		if run.Endpoint == "" || run.FnID != fnID {
			return errf(http.StatusConflict, "run_exists", "run %s exists and is not this endpoint's", in.RunID)
		}
		return s.checkpointCreated(c, run.ID, run.FnID, run.AppID)
	}
	fn, err := s.fsm.Function(fnID)
	if err != nil {
		return err
	}
	if msg := fsm.EndpointRefusal(fn, data.Domain); msg != "" {
		return errf(http.StatusConflict, "function_conflict", "%s", msg)
	}
	now := time.Now()
	evID := ulid.MustNew(ulid.Timestamp(now), nil).String()
	// The stored event is what the app gets back on re-entry (/v0/runs/:id/batch):
	// the SDK's event, with the id and time every stored event has.
	ev, err := json.Marshal(map[string]any{"name": fsm.EventHTTPRequest, "data": json.RawMessage(in.Event.Data),
		"id": evID, "ts": now.UnixMilli(), "user": map[string]any{}})
	if err != nil {
		return errf(http.StatusBadRequest, "invalid_event", "event: %v", err)
	}
	if len(ev) > s.cfg.MaxEventBytes {
		return errf(http.StatusRequestEntityTooLarge, "payload_too_large",
			"the request event is %d bytes; the limit is %d", len(ev), s.cfg.MaxEventBytes)
	}
	res, err := s.propose(c, &fsm.EndpointStarted{At: now.UnixMilli(), RunID: in.RunID, AppID: data.Domain, FnID: fnID,
		URL: target, Method: data.Method, Retries: retries, EventID: evID, JSON: ev, Steps: ops, By: actor(c)})
	if err != nil {
		return err
	}
	switch res[0].Code {
	case fsm.OK, fsm.Duplicate:
	default:
		return errf(http.StatusConflict, "checkpoint_refused", "%s", res[0].Msg)
	}
	return s.checkpointCreated(c, in.RunID, fnID, data.Domain)
}

func (s *Server) checkpointCreated(c echo.Context, runID, fnID, appID string) error {
	tok := s.runToken(runID)
	// The realtime token names its run: the SSE URL the SDK builds from it
	// (/v1/realtime/sse?token=) carries nothing else.
	return c.JSON(http.StatusOK, map[string]any{"data": map[string]string{"fn_id": fnID, "app_id": appID,
		"run_id": runID, "token": tok, "realtime_token": runID + "." + tok}, "metadata": map[string]any{}})
}

// endpointURL is where the engine re-enters an endpoint: domain + path.
func endpointURL(d httpRequestData) (string, error) {
	if d.Method == "" || strings.ToUpper(d.Method) != d.Method || strings.ContainsAny(d.Method, " \t\r\n/") {
		return "", fmt.Errorf("method %q is not an HTTP method", d.Method)
	}
	u, err := url.Parse(d.Domain)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("domain %q is not an http(s) origin", d.Domain)
	}
	if !strings.HasPrefix(d.Path, "/") || hasControl(d.Path) || strings.ContainsAny(d.Path, "?#") {
		return "", fmt.Errorf("path %q is not an absolute path", d.Path)
	}
	if hasControl(d.QueryParams) || strings.Contains(d.QueryParams, "#") {
		return "", fmt.Errorf("query_params %q is not a query", d.QueryParams)
	}
	return strings.TrimSuffix(d.Domain, "/") + d.Path, nil
}

// checkpointOps reads a checkpoint's steps; each needs an id (RunComplete's
// is fixed), and the run-ending op must come last.
func checkpointOps(raw json.RawMessage) ([]fsm.Op, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	ops, err := fsm.ParseOps(raw)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "invalid_steps", "steps: %v", err)
	}
	for i, op := range ops {
		if op.ID == "" && op.Op != fsm.OpDiscoveryRequest {
			return nil, errf(http.StatusBadRequest, "invalid_steps", "step %d (%s) has no id", i, op.Op)
		}
		if op.Op == fsm.OpRunComplete && i != len(ops)-1 {
			return nil, errf(http.StatusBadRequest, "invalid_steps", "RunComplete must be the last step")
		}
	}
	return ops, nil
}

// postCheckpointSteps reports an endpoint run's later steps, its response
// (RunComplete) or the ops it hands to the engine:
// POST /v1/checkpoint/:id/steps.
func (s *Server) postCheckpointSteps(c echo.Context) error {
	runID := c.Param("id")
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	var in struct {
		RunID string          `json:"run_id"`
		Steps json.RawMessage `json:"steps"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return errf(http.StatusBadRequest, "invalid_json", "checkpoint body: %v", err)
	}
	if in.RunID != "" && in.RunID != runID {
		return errf(http.StatusBadRequest, "invalid_run_id", "run_id %q is not the run of the path", in.RunID)
	}
	ops, err := checkpointOps(in.Steps)
	if err != nil {
		return err
	}
	if len(ops) == 0 {
		return c.JSON(http.StatusOK, map[string]any{"data": map[string]any{}})
	}
	run, err := s.fsm.Run(runID)
	if err != nil {
		return err
	}
	queued := 0
	if run != nil {
		calls, err := s.fsm.RunCalls(runID)
		if err != nil {
			return err
		}
		queued = len(calls)
	}
	if msg := fsm.CheckpointRefusal(run, queued); msg != "" {
		if run == nil {
			return errf(http.StatusNotFound, "run_not_found", "%s", msg)
		}
		return errf(http.StatusConflict, "checkpoint_refused", "%s", msg)
	}
	res, err := s.propose(c, &fsm.EndpointCheckpointed{At: time.Now().UnixMilli(), RunID: runID, Steps: ops,
		Jitter: uint32(time.Now().UnixNano()), By: actor(c)})
	if err != nil {
		return err
	}
	if res[0].Code != fsm.OK {
		return errf(http.StatusConflict, "checkpoint_refused", "%s", res[0].Msg)
	}
	return c.JSON(http.StatusOK, map[string]any{"data": map[string]any{}})
}

// runToken is the capability an end user holds to read an endpoint run's
// output: the SDK puts it in the redirect. It is an HMAC of the run id,
// keyed by the signing key, so any node checks it and nobody without the
// key mints one (dev mode, where every door is open, uses a fixed key).
func (s *Server) runToken(runID string) string {
	key := "cairn-dev-run-output"
	if s.secured() {
		key = s.cfg.Keys.Primary.Raw()
	}
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("run-output\x00" + runID))
	return hex.EncodeToString(m.Sum(nil))
}

// endpointResponse is what a durable endpoint's RunComplete carries.
type endpointResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    *string           `json:"body"`
}

// getRunOutput answers the end user redirected here by the SDK when an
// endpoint went async: GET /v1/http/runs/:id/output?token=. It waits until
// the run ends, then sends the handler's response as it was produced.
func (s *Server) getRunOutput(c echo.Context) error {
	runID := c.Param("id")
	if !hmac.Equal([]byte(c.QueryParam("token")), []byte(s.runToken(runID))) {
		return errf(http.StatusUnauthorized, "bad_token", "the token does not open this run's output")
	}
	run, err := s.awaitEnd(c.Request().Context(), runID, nil)
	switch {
	case err != nil:
		return err
	case run == nil:
		return nil // the caller left
	case !run.Done():
		// Still running: send the caller back to wait again.
		return c.Redirect(http.StatusTemporaryRedirect, c.Request().URL.String())
	}
	return writeRunOutput(c, run)
}

// getRealtimeSSE: GET /v1/realtime/sse?token=<run>.<mac>. An end user who
// asked a durable endpoint for an event stream is sent here
// (inngest.redirect_info) when the run goes async: the stream goes on with
// an inngest.commit per memoized step and ends with inngest.response, the
// handler's response, as the SDK's own stream would have.
func (s *Server) getRealtimeSSE(c echo.Context) error {
	runID, mac, _ := strings.Cut(c.QueryParam("token"), ".")
	if runID == "" || !hmac.Equal([]byte(mac), []byte(s.runToken(runID))) {
		return errf(http.StatusUnauthorized, "bad_token", "the token does not open this run's stream")
	}
	if run, err := s.fsm.Run(runID); err != nil {
		return err
	} else if run == nil {
		return errf(http.StatusNotFound, "run_not_found", "no run %s", runID)
	}
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	sent := map[string]bool{}
	event := func(name string, data any) {
		b, _ := json.Marshal(data)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
		w.Flush()
	}
	commits := func(run *fsm.Run) {
		for _, id := range run.Stack {
			if !sent[id] {
				sent[id] = true
				event("inngest.commit", map[string]string{"hashedStepId": id})
			}
		}
	}
	for {
		run, err := s.awaitEnd(c.Request().Context(), runID, commits)
		if err != nil || run == nil {
			return nil // the stream is open: nothing more to say
		}
		if run.Done() {
			commits(run)
			out := runResponse(run)
			status := "succeeded"
			if run.Status != fsm.StatusCompleted {
				status = "failed"
			}
			body := ""
			if out.Body != nil {
				body = *out.Body
			}
			event("inngest.response", map[string]any{"status": status,
				"response": map[string]any{"body": body, "statusCode": out.Status, "headers": out.Headers}})
			return nil
		}
	}
}

// awaitEnd polls a run until it ends (then, for a completed endpoint run,
// a moment more for the response the SDK tees beside its end) or outputWait
// passes, calling seen with each reading. It returns the last reading, nil
// when ctx ended first.
func (s *Server) awaitEnd(ctx context.Context, runID string, seen func(*fsm.Run)) (*fsm.Run, error) {
	deadline := time.Now().Add(outputWait)
	for {
		run, err := s.fsm.Run(runID)
		if err != nil {
			return nil, err
		}
		if run == nil {
			return nil, errf(http.StatusNotFound, "run_not_found", "no run %s", runID)
		}
		if seen != nil {
			seen(run)
		}
		if run.Done() {
			for wait := time.Now().Add(teeWait); run.Response == nil && run.Endpoint != "" &&
				run.Status == fsm.StatusCompleted && time.Now().Before(wait); {
				select {
				case <-ctx.Done():
					return nil, nil
				case <-time.After(outputEvery):
				}
				if run, err = s.fsm.Run(runID); err != nil {
					return nil, err
				}
			}
			return run, nil
		}
		if time.Now().After(deadline) {
			return run, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(outputEvery):
		}
	}
}

// runResponse is an ended endpoint run's response: the one the SDK teed
// (EndpointResponded), exact; without it, the RunComplete's. That one has
// the handler's body JSON-encoded a second time when it re-entered
// (protocol §9.2 step 6): such a body is decoded once, so the caller gets
// the bytes the handler produced. A run that failed or was cancelled is a
// 500 with its error; a run whose output is not a response (a function
// result) is that output as JSON.
func runResponse(run *fsm.Run) endpointResponse {
	jsonBody := func(status int, b []byte) endpointResponse {
		body := string(orJSONNull(b))
		return endpointResponse{Status: status, Headers: map[string]string{"Content-Type": "application/json",
			"X-Cairn-Run-Status": run.Status}, Body: &body}
	}
	if run.Status != fsm.StatusCompleted {
		return jsonBody(http.StatusInternalServerError, run.Error)
	}
	var out endpointResponse
	if run.Response != nil && json.Unmarshal(run.Response, &out) == nil && out.Status >= 100 && out.Status <= 999 {
		return out
	}
	if err := json.Unmarshal(run.Output, &out); err != nil || out.Status < 100 || out.Status > 999 {
		return jsonBody(http.StatusOK, run.Output)
	}
	if out.Body != nil {
		var inner string
		if strings.HasPrefix(*out.Body, `"`) && json.Unmarshal([]byte(*out.Body), &inner) == nil {
			out.Body = &inner
		}
	}
	return out
}

// writeRunOutput sends an ended endpoint run's response.
func writeRunOutput(c echo.Context, run *fsm.Run) error { return writeResponse(c, runResponse(run)) }

// writeResponse sends a handler's response as it was produced.
func writeResponse(c echo.Context, out endpointResponse) error {
	body := ""
	if out.Body != nil {
		body = *out.Body
	}
	h := c.Response().Header()
	for k, v := range out.Headers {
		if strings.EqualFold(k, "content-length") || strings.EqualFold(k, "transfer-encoding") {
			continue
		}
		h.Set(k, v)
	}
	c.Response().WriteHeader(out.Status)
	_, err := c.Response().Write([]byte(body))
	return err
}

func orJSONNull(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

// runBatch is the events of a run, for an SDK that fetches its state
// (ctx.use_api, every durable endpoint re-entry): GET /v0/runs/:id/batch.
func (s *Server) runBatch(c echo.Context) error {
	run, err := s.fsm.Run(c.Param("id"))
	if err != nil {
		return err
	}
	if run == nil {
		return errf(http.StatusNotFound, "run_not_found", "no run %s", c.Param("id"))
	}
	evs := make([]json.RawMessage, 0, len(run.EventIDs))
	for _, id := range run.EventIDs {
		ev, err := s.fsm.Event(id)
		if err != nil {
			return err
		}
		if ev != nil {
			evs = append(evs, ev)
		}
	}
	return c.JSON(http.StatusOK, evs)
}

// runActions is a run's memoized steps, as a call's "steps" map:
// GET /v0/runs/:id/actions.
func (s *Server) runActions(c echo.Context) error {
	run, err := s.fsm.Run(c.Param("id"))
	if err != nil {
		return err
	}
	if run == nil {
		return errf(http.StatusNotFound, "run_not_found", "no run %s", c.Param("id"))
	}
	steps := make(map[string]json.RawMessage, len(run.Stack))
	for _, id := range run.Stack {
		m, err := s.fsm.Memo(run.ID, id)
		if err != nil {
			return err
		}
		steps[id] = orJSONNull(m)
	}
	return c.JSON(http.StatusOK, steps)
}

// postTee takes the stream the SDK tees to the server when an endpoint run
// ends on the engine: POST /v1/realtime/publish/tee?channel=<run id>, SSE
// events. Its inngest.response event is the handler's response exactly as
// the caller would have had it (status, headers, body), which the run
// keeps for its output. Other events (realtime messages) are not served.
func (s *Server) postTee(c echo.Context) error {
	runID := c.QueryParam("channel")
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	resp, ok := teedResponse(body)
	if !ok {
		return c.NoContent(http.StatusOK)
	}
	run, err := s.fsm.Run(runID)
	if err != nil {
		return err
	}
	if run == nil || run.Endpoint == "" || run.Response != nil {
		return c.NoContent(http.StatusOK) // nothing to keep: written nowhere
	}
	if limits, err := s.fsm.Limits(); err != nil {
		return err
	} else if limits.StepOutputBytes > 0 && int64(len(resp)) > limits.StepOutputBytes {
		return c.NoContent(http.StatusOK) // too big to keep: the RunComplete's is served
	}
	if _, err := s.propose(c, &fsm.EndpointResponded{At: time.Now().UnixMilli(), RunID: runID, Response: resp,
		By: actor(c)}); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

// teedResponse finds a succeeded inngest.response event in an SSE stream and
// returns it as {"status", "headers", "body"}.
func teedResponse(stream []byte) ([]byte, bool) {
	for _, block := range strings.Split(strings.ReplaceAll(string(stream), "\r\n", "\n"), "\n\n") {
		var event string
		var data []string
		for _, line := range strings.Split(block, "\n") {
			switch {
			case strings.HasPrefix(line, "event:"):
				event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
			}
		}
		if event != "inngest.response" {
			continue
		}
		var ev struct {
			Status   string `json:"status"`
			Response struct {
				Body       *string           `json:"body"`
				StatusCode int               `json:"statusCode"`
				Headers    map[string]string `json:"headers"`
			} `json:"response"`
		}
		if json.Unmarshal([]byte(strings.Join(data, "\n")), &ev) != nil || ev.Status != "succeeded" ||
			ev.Response.StatusCode < 100 || ev.Response.StatusCode > 999 {
			return nil, false
		}
		b, err := json.Marshal(endpointResponse{Status: ev.Response.StatusCode, Headers: ev.Response.Headers,
			Body: ev.Response.Body})
		return b, err == nil
	}
	return nil, false
}

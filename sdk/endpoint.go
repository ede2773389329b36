package sdk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/sdk/internal/errs"
	"github.com/cairn-dev/cairn/sdk/internal/state"
	"github.com/cairn-dev/cairn/sdk/jcs"
	"github.com/cairn-dev/cairn/sdk/protocol"
	"github.com/cairn-dev/cairn/sdk/signing"
)

// Durable endpoints (protocol note §9.2): an ordinary HTTP handler whose
// body is a workflow of steps. The first request runs in the app, saving
// each step on the server as it finishes; if the handler completes, the
// caller gets its response directly. If it must wait (a sleep, a wait, a
// failing step to retry), the server takes the run over and the caller is
// redirected to where the response will appear; the server then calls the
// handler again ("re-entry", the original request plus X-Run-ID) until it
// completes.

// EndpointOpts configures a durable endpoint.
type EndpointOpts struct {
	// ID names the endpoint's function on the server; empty lets the
	// server name it "<METHOD> <path>".
	ID string
	// Retries per step on the server (default 3).
	Retries *int
	// TokenResponse answers a caller whose run went async with 200
	// {"run_id","token"} instead of a redirect to the output URL.
	TokenResponse bool
}

// maxEndpointBody bounds a durable endpoint's request body: it is saved in
// the run's event.
const maxEndpointBody = 4 << 20

// Endpoint wraps h as a durable endpoint. Inside h, step tools take
// r.Context(). h must write its response through the ResponseWriter it is
// given (it is buffered until the run completes) and be deterministic
// between steps, like any function.
func (c *Client) Endpoint(opts EndpointOpts, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, signed := r.Header[signing.Header] // present, even empty, on a re-entry
		if r.Header.Get("X-Run-Id") != "" && signed {
			c.reenter(w, r, h)
			return
		}
		c.startEndpoint(w, r, opts, h)
	})
}

// startEndpoint runs a caller's request as a new run.
func (c *Client) startEndpoint(w http.ResponseWriter, r *http.Request, opts EndpointOpts, h http.Handler) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEndpointBody+1))
	if err != nil || len(body) > maxEndpointBody {
		http.Error(w, "durable endpoint: the request body is unreadable or over 4 MiB", http.StatusRequestEntityTooLarge)
		return
	}
	retries := 3
	if opts.Retries != nil {
		retries = *opts.Retries
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	var sse *eventStream
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		sse = startEventStream(w)
	}
	cp := &endpointCheckpointer{sse: sse, c: c, runID: c.newRunID(), retries: retries, event: map[string]any{
		"name": "inngest/http.request",
		"data": map[string]any{
			"content_type": r.Header.Get("Content-Type"), "domain": requestOrigin(r), "ip": ip,
			"method": r.Method, "path": r.URL.Path, "query_params": r.URL.RawQuery,
			"body": string(body), "fn": opts.ID,
		},
	}}
	sse.send("inngest.metadata", map[string]string{"runId": cp.runID})
	run := &state.Run{RunID: cp.runID, AppID: c.appID, Target: state.DiscoveryStep, Sender: c, Checkpointer: cp}
	resp, stopped, err := runHandler(h, r, body, run)
	ctx := r.Context()
	if err != nil {
		// The handler panicked: the server retries it, as it retries a step.
		op := state.Op{ID: state.CompleteID, Op: protocol.OpStepError, Opts: map[string]any{}, Error: errs.Serialize(err)}
		run.Add(op)
		stopped = true
	}
	if !stopped {
		// Done in one go: save the response as the run's result, then answer.
		if err := cp.Checkpoint(ctx, []state.Op{resp.complete()}); err != nil {
			c.log.Warn("sdk: durable endpoint: saving the run's response", "run_id", cp.runID, "err", err)
		}
		if sse != nil {
			sse.send("inngest.response", resp.succeeded())
			return
		}
		resp.writeTo(w)
		return
	}
	// The server takes over: hand it what stopped the handler.
	if ops := run.Outcome().Ops; len(ops) > 0 {
		if err := cp.Checkpoint(ctx, ops); err != nil {
			run.CheckpointErr = err
		}
	}
	if run.CheckpointErr != nil {
		msg := "durable endpoint: the server did not take the run: " + run.CheckpointErr.Error()
		if sse != nil {
			sse.send("inngest.response", map[string]string{"status": "failed", "error": msg})
			return
		}
		http.Error(w, msg, http.StatusServiceUnavailable)
		return
	}
	if sse != nil {
		return // the stream already told the caller where the run goes on (redirect_info)
	}
	if opts.TokenResponse {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"run_id": cp.runID, "token": cp.token})
		return
	}
	w.Header().Set("Location", c.apiURL("/v1/http/runs/"+url.PathEscape(cp.runID)+"/output")+"?token="+url.QueryEscape(cp.token))
	w.WriteHeader(http.StatusFound)
}

// reenter runs the handler for the server, which holds the run.
func (c *Client) reenter(w http.ResponseWriter, r *http.Request, h http.Handler) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEndpointBody+1))
	if err != nil {
		c.write(w, signing.Key{}, jsonAnswer(400, map[string]string{"message": "reading the request: " + err.Error()}))
		return
	}
	key, ok := c.verifyReentry(r, body)
	if !ok {
		c.unauthorized(w)
		return
	}
	runID := r.Header.Get("X-Run-Id")
	st := protocol.CallRequest{Ctx: protocol.CallCtx{RunID: runID}}
	if err := c.loadState(r.Context(), &st); err != nil {
		c.write(w, key, internalError(err.Error()))
		return
	}
	run := &state.Run{
		RunID: runID, AppID: c.appID, Memo: st.Steps, Sender: c,
		Target:           firstOf(r.Header.Get("X-Inngest-Step-Id"), state.DiscoveryStep),
		DisableImmediate: r.Header.Get("X-Inngest-Force-Step-Plan") == "true",
	}
	resp, stopped, err := runHandler(h, r, body, run)
	if stopped || err != nil {
		c.write(w, key, outcome(run, nil, err))
		return
	}
	// The exact response, for the server to serve to the caller; then the
	// run's end, as one RunComplete object (not an array), as the TS SDK answers.
	if err := c.tee(r.Context(), runID, resp); err != nil {
		c.log.Warn("sdk: durable endpoint: sending the response to the server", "run_id", runID, "err", err)
	}
	a := answer{status: 206}
	a.body, _ = json.Marshal(resp.complete())
	c.write(w, key, a)
}

// verifyReentry checks a re-entry's signature: over the canonical form of
// a JSON body, over the bytes of any other.
func (c *Client) verifyReentry(r *http.Request, body []byte) (signing.Key, bool) {
	if c.dev {
		return signing.Key{}, true
	}
	canon := body
	if len(body) > 0 && json.Valid(body) {
		if t, err := jcs.Transform(body); err == nil {
			canon = t
		}
	}
	k, err := c.keys.Verify(r.Header.Get(signing.Header), canon, c.now())
	return k, err == nil
}

// tee sends the handler's response to the server as an SSE stream, the way
// the TS SDK does, so the caller gets it byte for byte.
func (c *Client) tee(ctx context.Context, runID string, resp *bufferedResponse) error {
	meta, _ := json.Marshal(map[string]string{"runId": runID})
	ev, _ := json.Marshal(resp.succeeded())
	stream := fmt.Sprintf("event: inngest.metadata\ndata: %s\n\nevent: inngest.response\ndata: %s\n\n", meta, ev)
	status, out, err := c.do(ctx, http.MethodPost, c.apiURL("/v1/realtime/publish/tee")+"?channel="+url.QueryEscape(runID), []byte(stream))
	if err == nil && status/100 != 2 {
		err = apiError("tee", status, out)
	}
	return err
}

// runHandler runs h for one call, with its response buffered. stopped is
// true when a step stopped it; err is its panic.
func runHandler(h http.Handler, r *http.Request, body []byte, run *state.Run) (*bufferedResponse, bool, error) {
	req := r.Clone(state.With(r.Context(), run))
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.Header.Del("X-Run-Id")
	req.Header.Del(signing.Header)
	resp := &bufferedResponse{header: http.Header{}}
	_, err, stopped := state.Call(func() (any, error) { h.ServeHTTP(resp, req); return nil, nil })
	return resp, stopped, err
}

// endpointCheckpointer saves a durable endpoint's steps on the server: the
// first checkpoint creates the run.
type endpointCheckpointer struct {
	c       *Client
	runID   string
	event   map[string]any
	retries int
	sse     *eventStream // the caller's event stream, if it asked for one
	// From the server once the run exists.
	created                           bool
	fnID, appID, token, realtimeToken string
}

func (e *endpointCheckpointer) Checkpoint(ctx context.Context, ops []state.Op) error {
	ts := time.Now().UnixMilli()
	if !e.created {
		body, _ := json.Marshal(map[string]any{"run_id": e.runID, "event": e.event, "steps": ops, "ts": ts,
			"request_version": 2, "retries": e.retries})
		err := e.c.retry(ctx, "creating a durable endpoint's run", func() (bool, error) {
			status, out, err := e.c.do(ctx, http.MethodPost, e.c.apiURL("/v1/checkpoint"), body)
			if err != nil || status/100 != 2 {
				return status/100 != 4, firstErr(err, apiError("checkpoint", status, out))
			}
			var r struct {
				Data struct {
					FnID          string `json:"fn_id"`
					AppID         string `json:"app_id"`
					Token         string `json:"token"`
					RealtimeToken string `json:"realtime_token"`
				} `json:"data"`
			}
			if err := json.Unmarshal(out, &r); err != nil {
				return false, fmt.Errorf("sdk: the server's answer to /v1/checkpoint: %w", err)
			}
			e.created, e.fnID, e.appID, e.token, e.realtimeToken = true, r.Data.FnID, r.Data.AppID, r.Data.Token, r.Data.RealtimeToken
			return false, nil
		})
		if err == nil {
			e.committed(ops)
			e.sse.send("inngest.redirect_info", map[string]string{"runId": e.runID,
				"url": e.c.apiURL("/v1/realtime/sse") + "?token=" + url.QueryEscape(e.realtimeToken)})
		}
		return err
	}
	body, _ := json.Marshal(map[string]any{"fn_id": e.fnID, "app_id": e.appID, "run_id": e.runID, "steps": ops, "ts": ts})
	target := e.c.apiURL("/v1/checkpoint/" + url.PathEscape(e.runID) + "/steps")
	err := e.c.retry(ctx, "checkpointing a durable endpoint", func() (bool, error) {
		status, out, err := e.c.do(ctx, http.MethodPost, target, body)
		if err != nil || status/100 != 2 {
			return status/100 != 4, firstErr(err, apiError("checkpoint", status, out))
		}
		return false, nil
	})
	if err == nil {
		e.committed(ops)
	}
	return err
}

// committed tells the caller's event stream about steps now saved.
func (e *endpointCheckpointer) committed(ops []state.Op) {
	for _, op := range ops {
		if op.Op == protocol.OpStepRun {
			e.sse.send("inngest.commit", map[string]string{"hashedStepId": op.ID})
		}
	}
}

// eventStream is a caller's text/event-stream answer (protocol note §9.2
// step 7): the run's id, a commit per saved step, where the run goes on,
// and the response.
type eventStream struct {
	w http.ResponseWriter
}

func startEventStream(w http.ResponseWriter) *eventStream {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return &eventStream{w: w}
}

// send writes one event; a nil stream (the caller asked for none) drops it.
func (s *eventStream) send(event string, data any) {
	if s == nil {
		return
	}
	b, _ := json.Marshal(data)
	fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", event, b)
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// bufferedResponse holds a handler's response until the run's fate is known.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) code() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}

// flatHeaders is the response's headers, one value each, names in lower case.
func (b *bufferedResponse) flatHeaders() map[string]string {
	h := map[string]string{}
	for k, v := range b.header {
		h[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	if _, ok := h["content-type"]; !ok && b.body.Len() > 0 {
		h["content-type"] = http.DetectContentType(b.body.Bytes())
	}
	return h
}

// complete is the RunComplete op carrying the response; its body is
// JSON-encoded a second time, as the TS SDK sends it (the server decodes it
// once).
func (b *bufferedResponse) complete() state.Op {
	inner, _ := json.Marshal(b.body.String())
	data, _ := json.Marshal(map[string]any{"status": b.code(), "headers": b.flatHeaders(), "body": string(inner), "version": 2})
	return state.Op{ID: state.CompleteID, Op: protocol.OpRunComplete, Opts: map[string]any{}, Data: data}
}

// succeeded is the response as an inngest.response event carries it.
func (b *bufferedResponse) succeeded() map[string]any {
	return map[string]any{"status": "succeeded", "response": map[string]any{
		"body": b.body.String(), "statusCode": b.code(), "headers": b.flatHeaders()}}
}

func (b *bufferedResponse) writeTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.code())
	w.Write(b.body.Bytes())
}

// requestOrigin is scheme://host of the request as the app saw it.
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = strings.TrimSpace(strings.Split(p, ",")[0])
	}
	return scheme + "://" + r.Host
}

// newRunID mints a ULID: the SDK names a durable endpoint's run itself.
func newULID() string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	rand.Read(b[6:])
	// 128 bits → 26 base-32 digits, most significant first.
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	out := make([]byte, 26)
	for i := 25; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out)
}

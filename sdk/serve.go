package sdk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/sdk/internal/errs"
	"github.com/cairn-dev/cairn/sdk/internal/state"
	"github.com/cairn-dev/cairn/sdk/jcs"
	"github.com/cairn-dev/cairn/sdk/protocol"
	"github.com/cairn-dev/cairn/sdk/signing"
)

// maxCallBody bounds a call's body; the server trims bigger states (use_api).
const maxCallBody = 64 << 20

// answer is the HTTP answer to one request from the server.
type answer struct {
	status  int
	headers map[string]string
	body    []byte
}

func jsonAnswer(status int, v any) answer {
	b, _ := json.Marshal(v)
	return answer{status: status, body: b}
}

// Serve is the app's endpoint for the server (mount it at /api/inngest):
// PUT syncs the app, GET describes it, POST runs a function.
func (c *Client) Serve() http.Handler { return http.HandlerFunc(c.serve) }

func (c *Client) serve(w http.ResponseWriter, r *http.Request) {
	if !c.dev && !c.keys.Enabled() {
		c.write(w, signing.Key{}, jsonAnswer(500, map[string]string{
			"code":    "internal_server_error",
			"message": "production mode needs a signing key: set INNGEST_SIGNING_KEY, or INNGEST_DEV=1 for dev mode",
		}))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCallBody+1))
	if err != nil {
		c.write(w, signing.Key{}, jsonAnswer(400, map[string]string{"message": "reading the request: " + err.Error()}))
		return
	}
	if len(body) > maxCallBody {
		c.write(w, signing.Key{}, jsonAnswer(413, map[string]string{"message": "request body over 64 MiB"}))
		return
	}
	key, verified := c.verify(r, body)
	switch r.Method {
	case http.MethodGet:
		c.write(w, key, c.introspect(verified))
	case http.MethodPut:
		if r.Header.Get("X-Inngest-Sync-Kind") == "in_band" && c.inBandSync {
			if !verified {
				c.unauthorized(w)
				return
			}
			c.write(w, key, c.syncInBand(r, body))
			return
		}
		if !verified && !c.dev && !c.unauthedSync {
			c.unauthorized(w)
			return
		}
		c.write(w, key, c.sync(r))
	case http.MethodPost:
		if !verified {
			c.unauthorized(w)
			return
		}
		if r.URL.Query().Get("probe") == "trust" {
			c.write(w, key, answer{status: 200})
			return
		}
		c.write(w, key, c.call(r.Context(), r, body))
	default:
		w.Header().Set("Allow", "GET, PUT, POST")
		c.write(w, key, jsonAnswer(405, map[string]string{"message": r.Method + " is not served here: GET describes the app, PUT syncs it, POST runs a function"}))
	}
}

// verify checks the request's signature in production mode: an HMAC over
// the canonical form (RFC 8785) of the JSON body, or over nothing. Dev mode
// checks nothing.
func (c *Client) verify(r *http.Request, body []byte) (signing.Key, bool) {
	if c.dev {
		return signing.Key{}, true
	}
	canon := body
	if len(body) > 0 {
		var err error
		if canon, err = jcs.Transform(body); err != nil {
			return signing.Key{}, false
		}
	}
	k, err := c.keys.Verify(r.Header.Get(signing.Header), canon, c.now())
	return k, err == nil
}

func (c *Client) unauthorized(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Inngest-Sdk-Handled", "true")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte(`{"message":"Unauthorized"}`))
}

// write sends an answer with the SDK's headers, signed with the key the
// request was verified with.
func (c *Client) write(w http.ResponseWriter, key signing.Key, a answer) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if !c.dev && key.IsZero() {
		// An unauthenticated request in production mode learns nothing about the app.
		h.Set("X-Inngest-Sdk-Handled", "true")
		w.WriteHeader(a.status)
		w.Write(a.body)
		return
	}
	h.Set("X-Inngest-Sdk", sdkHeader)
	h.Set("User-Agent", sdkHeader)
	h.Set("X-Inngest-Framework", framework)
	h.Set("X-Inngest-Req-Version", "2")
	h.Set("X-Inngest-Sdk-Handled", "true")
	if c.env != "" {
		h.Set("X-Inngest-Env", c.env)
	}
	for k, v := range a.headers {
		h.Set(k, v)
	}
	if !key.IsZero() {
		h.Set(signing.Header, key.Sign(a.body, c.now()))
	}
	w.WriteHeader(a.status)
	w.Write(a.body)
}

// introspect describes the app (GET); the full description only to a
// signed request in production mode.
func (c *Client) introspect(verified bool) answer {
	mode := "cloud"
	if c.dev {
		mode = "dev"
	}
	d := map[string]any{
		"has_event_key":   c.eventKey != "",
		"has_signing_key": c.keys.Enabled(),
		"function_count":  len(c.functions()),
		"mode":            mode,
		"schema_version":  "2024-05-24",
	}
	if c.dev {
		return jsonAnswer(200, d)
	}
	if !verified {
		return jsonAnswer(401, map[string]string{"message": "Unauthorized"})
	}
	hash := func(k signing.Key) any {
		if k.IsZero() {
			return nil
		}
		return strings.TrimPrefix(k.Bearer(), prefixOf(k.Raw()))[:12]
	}
	d["authentication_succeeded"] = true
	d["api_origin"] = strings.TrimSuffix(c.apiBase.String(), "/")
	d["event_api_origin"] = strings.TrimSuffix(c.evtBase.String(), "/")
	d["app_id"] = c.appID
	d["env"] = nilIfEmpty(c.env)
	d["framework"] = framework
	d["sdk_language"] = "go"
	d["sdk_version"] = Version
	d["serve_origin"] = nilIfEmpty(c.serveOrigin)
	d["serve_path"] = nilIfEmpty(c.servePath)
	d["capabilities"] = map[string]string{"trust_probe": "v1"}
	d["signing_key_hash"] = hash(c.keys.Primary)
	d["signing_key_fallback_hash"] = hash(c.keys.Fallback)
	d["event_key_hash"] = nil
	if c.eventKey != "" {
		sum := sha256.Sum256([]byte(c.eventKey))
		d["event_key_hash"] = hex.EncodeToString(sum[:])
	}
	return jsonAnswer(200, d)
}

// prefixOf is a key's "signkey-<env>-" prefix, or "".
func prefixOf(raw string) string {
	if !strings.HasPrefix(raw, "signkey-") {
		return ""
	}
	rest := raw[len("signkey-"):]
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		return raw[:len("signkey-")+i+1]
	}
	return ""
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// serveURL is the URL the server should call: the request's own URL (what
// the sync came to), unless ServeOrigin/ServePath say otherwise. deployId is
// dropped: it names one sync, not the app.
func (c *Client) serveURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = strings.TrimSpace(strings.Split(p, ",")[0])
	}
	u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path}
	q := r.URL.Query()
	q.Del("deployId")
	q.Del("probe")
	u.RawQuery = q.Encode()
	if c.serveOrigin != "" {
		if o, err := url.Parse(c.serveOrigin); err == nil && o.Host != "" {
			u.Scheme, u.Host = o.Scheme, o.Host
		}
	}
	if c.servePath != "" {
		u.Path = c.servePath
	}
	return u.String()
}

// configs describes the functions served at appURL.
func (c *Client) configs(appURL string) []map[string]any {
	fns := []map[string]any{}
	for _, f := range c.functions() {
		u, _ := url.Parse(appURL)
		q := u.Query()
		q.Set("fnId", f.FullID())
		q.Set("stepId", state.DiscoveryStep)
		u.RawQuery = q.Encode()
		fns = append(fns, f.config(u.String()))
	}
	return fns
}

// registerBody describes the app for /fn/register: its URL and functions.
func (c *Client) registerBody(appURL, deployID string) []byte {
	fns := c.configs(appURL)
	b := map[string]any{
		"url": appURL, "deployType": "ping", "framework": framework,
		"appName": c.appID, "sdk": sdkName, "v": "0.1",
		"capabilities": map[string]string{"trust_probe": "v1"},
		"functions":    fns,
	}
	if c.appVersion != "" {
		b["appVersion"] = c.appVersion
	}
	if deployID != "" {
		b["deployId"] = deployID
	}
	out, _ := json.Marshal(b)
	return out
}

// sync registers the app with the server (out-of-band sync, protocol note
// §3.1) and answers the PUT with what the server said.
func (c *Client) sync(r *http.Request) answer {
	deployID := r.URL.Query().Get("deployId")
	kind := r.Header.Get("X-Inngest-Server-Kind")
	modified, err := c.register(r.Context(), c.serveURL(r), deployID, kind)
	a := answer{headers: map[string]string{"X-Inngest-Sync-Kind": "out_of_band"}}
	if kind != "" {
		a.headers["X-Inngest-Expected-Server-Kind"] = kind
	}
	var re *registerError
	switch {
	case err == nil:
		a.status = 200
		a.body, _ = json.Marshal(map[string]any{"message": "Successfully registered", "modified": modified})
	case errors.As(err, &re):
		a.status = re.status
		a.body, _ = json.Marshal(map[string]any{"message": re.msg, "modified": false})
	default:
		a.status = 500
		a.body, _ = json.Marshal(map[string]any{"message": err.Error(), "modified": false})
	}
	return a
}

// syncInBand answers a signed in-band sync (protocol note §3.2): the app's
// description goes back in the answer, for the URL the server names.
func (c *Client) syncInBand(r *http.Request, body []byte) answer {
	var req struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.URL == "" {
		return jsonAnswer(400, map[string]string{"message": `an in-band sync body is {"url": "<app url>"}`})
	}
	u, err := url.Parse(req.URL)
	if err != nil || u.Host == "" {
		return jsonAnswer(400, map[string]string{"message": "the in-band sync url is not a URL: " + req.URL})
	}
	a := jsonAnswer(200, map[string]any{
		"app_id": c.appID, "appVersion": nilIfEmpty(c.appVersion),
		"capabilities": map[string]string{"trust_probe": "v1"},
		"env":          nilIfEmpty(c.env), "framework": framework,
		"functions":  c.configs(req.URL),
		"inspection": json.RawMessage(c.introspect(true).body),
		"sdk_author": "cairn", "sdk_language": "go", "sdk_version": Version, "sdk": sdkName,
		"url": req.URL,
	})
	a.headers = map[string]string{"X-Inngest-Sync-Kind": "in_band"}
	if kind := r.Header.Get("X-Inngest-Server-Kind"); kind != "" {
		a.headers["X-Inngest-Expected-Server-Kind"] = kind
	}
	return a
}

type registerError struct {
	status int
	msg    string
}

func (e *registerError) Error() string { return fmt.Sprintf("sdk: register: %s (%d)", e.msg, e.status) }

// Register syncs the app with the server directly, as if the server had
// asked (PUT): appURL is where the server will call it. Useful when nothing
// pings the app, e.g. in production behind a fixed URL.
func (c *Client) Register(ctx context.Context, appURL string) error {
	_, err := c.register(ctx, appURL, "", "")
	return err
}

func (c *Client) register(ctx context.Context, appURL, deployID, serverKind string) (modified bool, err error) {
	target := c.apiURL("/fn/register")
	if deployID != "" {
		target += "?deployId=" + url.QueryEscape(deployID)
	}
	req, err := c.newRequest(ctx, http.MethodPost, target, c.registerBody(appURL, deployID))
	if err != nil {
		return false, err
	}
	req.Header.Set("X-Inngest-Framework", framework)
	req.Header.Set("X-Inngest-Sync-Kind", "out_of_band")
	if serverKind != "" {
		req.Header.Set("X-Inngest-Expected-Server-Kind", serverKind)
	}
	_, resp, err := c.roundTrip(req)
	if err != nil {
		return false, fmt.Errorf("sdk: register with %s: %w", target, err)
	}
	// The server's JSON decides, not its HTTP status (protocol note §3.1).
	var out struct {
		Modified bool   `json:"modified"`
		Error    string `json:"error"`
		Status   int    `json:"status"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		return false, &registerError{500, "the server's answer to /fn/register is not JSON: " + strings.TrimSpace(string(resp))}
	}
	if out.Status == 0 {
		out.Status = 200
	}
	if out.Status/100 != 2 || out.Error != "" {
		// An error without a status is answered 200 with its message, as the
		// official SDKs do.
		return false, &registerError{out.Status, out.Error}
	}
	return out.Modified, nil
}

// call runs one call of a function (POST).
func (c *Client) call(ctx context.Context, r *http.Request, raw []byte) answer {
	q := r.URL.Query()
	fnID := q.Get("fnId")
	stepID := firstOf(q.Get("stepId"), r.Header.Get("X-Inngest-Step-Id"), state.DiscoveryStep)
	f := c.function(fnID)
	if f == nil {
		return internalError(fmt.Sprintf("Function %q was not found in this app; is the app synced correctly?", fnID))
	}
	var body protocol.CallRequest
	if err := json.Unmarshal(raw, &body); err != nil || body.Ctx.RunID == "" {
		msg := "the call body is not a call request (no ctx.run_id)"
		if err != nil {
			msg = "the call body is not JSON: " + err.Error()
		}
		return internalError(msg)
	}
	if body.Ctx.UseAPI || body.UseAPI {
		if err := c.loadState(ctx, &body); err != nil {
			return internalError(err.Error())
		}
	}
	run := &state.Run{
		RunID:            body.Ctx.RunID,
		AppID:            c.appID,
		Attempt:          body.Ctx.Attempt,
		MaxAttempts:      body.Ctx.MaxAttempts,
		Target:           stepID,
		DisableImmediate: body.Ctx.DisableImmediateExecution,
		Memo:             body.Steps,
		Sender:           c,
	}
	if cp := c.newAsyncCheckpointer(r, &body, stepID); cp != nil {
		run.Checkpointer, run.Deadline = cp, cp.started.Add(maxRuntime)
	}
	result, err, _ := state.Call(func() (any, error) { return f.call(state.With(ctx, run), &body) })
	return outcome(run, result, err)
}

// outcome turns what a call found into its answer (protocol note §5.1).
func outcome(run *state.Run, result any, err error) answer {
	o := run.Outcome()
	switch {
	case errors.Is(run.CheckpointErr, errStaleDispatch):
		return staleDispatch(run.RunID)
	case o.Executed:
		a := answer{status: 206, headers: map[string]string{}}
		a.body, _ = json.Marshal(o.Ops)
		if o.Ops[0].Op != protocol.OpStepRun {
			a.headers["X-Inngest-No-Retry"] = strconv.FormatBool(run.NoRetry)
			if !run.RetryAt.IsZero() && !run.NoRetry {
				a.headers["Retry-After"] = retryAfter(run.RetryAt)
			}
		}
		return a
	case run.Target != state.DiscoveryStep:
		return stepNotFound(run.Target, o.Found)
	case len(o.Ops) > 0:
		a := answer{status: 206}
		a.body, _ = json.Marshal(o.Ops)
		return a
	case err != nil:
		return functionError(run, err)
	}
	b, merr := json.Marshal(result)
	if merr != nil {
		return functionError(run, NonRetriable(fmt.Errorf("encoding the function's result: %w", merr)))
	}
	if run.Checkpointer != nil {
		// A checkpointing call ends the run with an op, as the TS SDK does.
		b, _ = json.Marshal([]runComplete{{ID: state.CompleteID, Op: protocol.OpRunComplete, Data: b}})
		return answer{status: 206, body: b}
	}
	return answer{status: 200, body: b}
}

// functionError answers a function that returned an error: retried (500)
// unless it is non-retriable, a step's final error, or the last attempt (400).
func functionError(run *state.Run, err error) answer {
	noRetry, at := errs.Retry(err)
	var se *StepError
	if errors.As(err, &se) || run.LastAttempt() {
		noRetry = true
	}
	a := answer{status: 500, headers: map[string]string{"X-Inngest-No-Retry": strconv.FormatBool(noRetry)}, body: errs.Serialize(err)}
	if noRetry {
		a.status = 400
	} else if !at.IsZero() {
		a.headers["Retry-After"] = retryAfter(at)
	}
	return a
}

func retryAfter(at time.Time) string {
	secs := int((time.Until(at) + time.Second - 1) / time.Second) // up: never before at
	if secs < 1 {
		secs = 1
	}
	return strconv.Itoa(secs)
}

func internalError(msg string) answer {
	return jsonAnswer(500, map[string]any{"type": "internal", "name": "Error", "message": msg, "__serialized": true})
}

// stepNotFound answers a call for a planned step the code never reached.
func stepNotFound(target string, found []state.Op) answer {
	type foundStep struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		DisplayName string `json:"displayName"`
	}
	list := []foundStep{}
	var names []string
	for _, op := range found {
		list = append(list, foundStep{op.ID, op.Userland.ID, op.DisplayName})
		names = append(names, fmt.Sprintf("%s (%s)", op.DisplayName, op.ID))
	}
	a := jsonAnswer(500, map[string]any{
		"error":           fmt.Sprintf("Could not find step %q to run. Found new steps: \n%s.", target, strings.Join(names, ", ")),
		"requestedStep":   target,
		"foundSteps":      list,
		"totalFoundSteps": len(list),
	})
	a.headers = map[string]string{"X-Inngest-No-Retry": "false"}
	return a
}

// loadState fetches a trimmed call's events and steps from the server.
func (c *Client) loadState(ctx context.Context, body *protocol.CallRequest) error {
	runID := url.PathEscape(body.Ctx.RunID)
	status, raw, err := c.do(ctx, http.MethodGet, c.apiURL("/v0/runs/"+runID+"/batch"), nil)
	if err != nil || status != 200 {
		return fmt.Errorf("fetching the run's events: %v", firstErr(err, apiError("batch", status, raw)))
	}
	if err := json.Unmarshal(raw, &body.Events); err != nil {
		return fmt.Errorf("decoding the run's events: %w", err)
	}
	status, raw, err = c.do(ctx, http.MethodGet, c.apiURL("/v0/runs/"+runID+"/actions"), nil)
	if err != nil || status != 200 {
		return fmt.Errorf("fetching the run's steps: %v", firstErr(err, apiError("actions", status, raw)))
	}
	if err := json.Unmarshal(raw, &body.Steps); err != nil {
		return fmt.Errorf("decoding the run's steps: %w", err)
	}
	if len(body.Event) == 0 && len(body.Events) > 0 {
		body.Event = body.Events[0]
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// Package sdk is Cairn's Go SDK: write durable functions made of steps and
// serve them over HTTP. It speaks the same wire protocol as the official
// Inngest SDKs, so the same app runs on Cairn or on Inngest's server.
//
// A client holds the app's configuration (read from the INNGEST_*
// environment variables the official SDKs read) and its functions;
// client.Serve() is the http.Handler the server calls. The step tools are
// in the step package.
package sdk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/sdk/signing"
)

// Version is this SDK's version, sent to the server.
const Version = "0.1.0"

const (
	sdkHeader = "cairn-go:v" + Version // x-inngest-sdk and user-agent
	sdkName   = "go:v" + Version       // "sdk" in the register body
	framework = "go"
)

// ClientOpts configures a client. Every field left empty is read from the
// environment variable the official SDKs read, named beside it.
type ClientOpts struct {
	AppID      string // required: the app's id, prefix of every function id
	AppVersion string
	// Dev selects dev mode (no keys, no signatures); nil reads INNGEST_DEV:
	// "1"/"true" or a URL is dev, anything else production.
	Dev *bool
	// BaseURL is the server for both the API and events (INNGEST_BASE_URL;
	// INNGEST_API_BASE_URL and INNGEST_EVENT_API_BASE_URL set one each).
	// Dev mode defaults to http://localhost:8288.
	BaseURL            string
	SigningKey         string // INNGEST_SIGNING_KEY
	SigningKeyFallback string // INNGEST_SIGNING_KEY_FALLBACK, during rotation
	EventKey           string // INNGEST_EVENT_KEY
	Env                string // INNGEST_ENV
	// ServeOrigin and ServePath override the URL the app registers
	// (INNGEST_SERVE_ORIGIN, INNGEST_SERVE_PATH); by default it is the URL
	// the sync request came to.
	ServeOrigin string
	ServePath   string
	// HTTPClient makes the SDK's requests to the server; the default keeps
	// enough idle connections for a busy app's concurrent checkpoints.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// IgnoreEnv reads no INNGEST_* variable: only these options count.
	IgnoreEnv bool
}

// Client is an app: its configuration and its functions.
type Client struct {
	appID, appVersion string
	dev               bool
	apiBase, evtBase  *url.URL
	keys              signing.Keys
	eventKey, env     string
	serveOrigin       string
	servePath         string
	http              *http.Client
	log               *slog.Logger
	inBandSync        bool             // INNGEST_ALLOW_IN_BAND_SYNC is not "false"
	unauthedSync      bool             // INNGEST_ENABLE_UNAUTHED_SYNC is not "false"
	now               func() time.Time // the clock signatures are checked against
	newRunID          func() string    // names durable endpoint runs

	mu    sync.RWMutex
	fns   map[string]*Function // by full id
	order []*Function
}

// NewClient makes a client. It fails on a malformed key or URL.
func NewClient(opts ClientOpts) (*Client, error) {
	if opts.AppID == "" {
		return nil, errors.New("sdk: ClientOpts.AppID is required")
	}
	getenv := os.Getenv
	if opts.IgnoreEnv {
		getenv = func(string) string { return "" }
	}
	c := &Client{
		appID: opts.AppID, appVersion: opts.AppVersion,
		eventKey:     firstOf(opts.EventKey, getenv("INNGEST_EVENT_KEY")),
		env:          firstOf(opts.Env, getenv("INNGEST_ENV")),
		serveOrigin:  firstOf(opts.ServeOrigin, getenv("INNGEST_SERVE_ORIGIN")),
		servePath:    firstOf(opts.ServePath, getenv("INNGEST_SERVE_PATH")),
		inBandSync:   getenv("INNGEST_ALLOW_IN_BAND_SYNC") != "false",
		unauthedSync: getenv("INNGEST_ENABLE_UNAUTHED_SYNC") != "false",
		http:         opts.HTTPClient,
		log:          opts.Logger,
		fns:          map[string]*Function{},
		now:          time.Now,
		newRunID:     newULID,
	}
	if c.http == nil {
		// http.DefaultTransport keeps 2 idle connections per host: a burst of
		// checkpoints would open (and leave in TIME_WAIT) one per request.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost = 256, 256
		c.http = &http.Client{Timeout: 30 * time.Second, Transport: t}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	devURL := ""
	if opts.Dev != nil {
		c.dev = *opts.Dev
	} else if v := getenv("INNGEST_DEV"); v != "" {
		if b, err := strconv.ParseBool(v); err == nil {
			c.dev = b
		} else if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" {
			c.dev, devURL = true, v
		}
	}
	def := "https://api.inngest.com/"
	defEvt := "https://inn.gs/"
	if c.dev {
		def, defEvt = "http://localhost:8288/", "http://localhost:8288/"
	}
	base := getenv("INNGEST_BASE_URL")
	var err error
	if c.apiBase, err = parseBase(firstOf(opts.BaseURL, getenv("INNGEST_API_BASE_URL"), base, devURL, def)); err != nil {
		return nil, err
	}
	if c.evtBase, err = parseBase(firstOf(opts.BaseURL, getenv("INNGEST_EVENT_API_BASE_URL"), base, devURL, defEvt)); err != nil {
		return nil, err
	}
	if k := firstOf(opts.SigningKey, getenv("INNGEST_SIGNING_KEY")); k != "" {
		if c.keys.Primary, err = signing.ParseKey(k); err != nil {
			return nil, fmt.Errorf("sdk: INNGEST_SIGNING_KEY: %w", err)
		}
	}
	if k := firstOf(opts.SigningKeyFallback, getenv("INNGEST_SIGNING_KEY_FALLBACK")); k != "" {
		if c.keys.Fallback, err = signing.ParseKey(k); err != nil {
			return nil, fmt.Errorf("sdk: INNGEST_SIGNING_KEY_FALLBACK: %w", err)
		}
	}
	return c, nil
}

func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("sdk: %q is not a server URL (want e.g. http://localhost:8288)", s)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// AppID is the app's id.
func (c *Client) AppID() string { return c.appID }

// Dev reports whether the client runs in dev mode.
func (c *Client) Dev() bool { return c.dev }

func (c *Client) add(f *Function) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := f.FullID()
	if _, dup := c.fns[id]; dup {
		return fmt.Errorf("sdk: two functions have the id %q", f.opts.ID)
	}
	c.fns[id] = f
	c.order = append(c.order, f)
	return nil
}

func (c *Client) function(fullID string) *Function {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.fns[fullID]
}

func (c *Client) functions() []*Function {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]*Function(nil), c.order...)
}

// apiURL resolves an absolute API path ("/fn/register") against the API base.
func (c *Client) apiURL(path string) string {
	return c.apiBase.ResolveReference(&url.URL{Path: path}).String()
}

// newRequest is a request to the server's API, authenticated with the
// signing key's Bearer token in production mode.
func (c *Client) newRequest(ctx context.Context, method, target string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Inngest-SDK", sdkHeader)
	req.Header.Set("User-Agent", sdkHeader)
	if c.env != "" {
		req.Header.Set("X-Inngest-Env", c.env)
	}
	if c.keys.Enabled() {
		req.Header.Set("Authorization", "Bearer "+c.keys.Primary.Bearer())
	}
	return req, nil
}

// do sends an API request and reads the answer; on 401/403 it tries once
// more with the fallback key.
func (c *Client) do(ctx context.Context, method, target string, body []byte) (int, []byte, error) {
	req, err := c.newRequest(ctx, method, target, body)
	if err != nil {
		return 0, nil, err
	}
	status, out, err := c.roundTrip(req)
	if err == nil && (status == 401 || status == 403) && !c.keys.Fallback.IsZero() {
		req, _ = c.newRequest(ctx, method, target, body)
		req.Header.Set("Authorization", "Bearer "+c.keys.Fallback.Bearer())
		return c.roundTrip(req)
	}
	return status, out, err
}

func (c *Client) roundTrip(req *http.Request) (int, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, out, err
}

// apiError is the error a server answer carries.
func apiError(what string, status int, body []byte) error {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	json.Unmarshal(body, &e)
	msg := firstOf(e.Error, e.Message, strings.TrimSpace(string(body)))
	return fmt.Errorf("sdk: %s: server answered %d: %s", what, status, msg)
}

// Send sends events: each an Event[T] (or anything that encodes as an
// event object). It returns the ids the server gave them, in order.
func (c *Client) Send(ctx context.Context, events ...any) ([]string, error) {
	return c.SendEvents(ctx, events)
}

// SendEvents is Send with a slice.
func (c *Client) SendEvents(ctx context.Context, events []any) ([]string, error) {
	if len(events) == 0 {
		return nil, nil
	}
	key := c.eventKey
	if key == "" {
		if !c.dev {
			return nil, errors.New("sdk: sending events in production mode needs an event key (INNGEST_EVENT_KEY)")
		}
		key = "NO_EVENT_KEY_SET"
	}
	now := time.Now().UnixMilli()
	out := make([]map[string]any, len(events))
	for i, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("sdk: event %d: %w", i, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || m == nil {
			return nil, fmt.Errorf("sdk: event %d is not an object", i)
		}
		if name, _ := m["name"].(string); name == "" {
			return nil, fmt.Errorf("sdk: event %d has no name", i)
		}
		if m["data"] == nil {
			m["data"] = map[string]any{}
		}
		if ts, _ := m["ts"].(float64); ts == 0 {
			m["ts"] = now
		}
		out[i] = m
	}
	body, _ := json.Marshal(out)
	target := c.evtBase.ResolveReference(&url.URL{Path: "e/" + url.PathEscape(key)}).String()
	// One seed for every try, so the server can tell a retry from a new send.
	seed := make([]byte, 10)
	rand.Read(seed)
	seedHeader := strconv.FormatInt(now, 10) + "," + base64.StdEncoding.EncodeToString(seed)
	var ids []string
	err := c.retry(ctx, "sending events", func() (bool, error) {
		req, err := c.newRequest(ctx, http.MethodPost, target, body)
		if err != nil {
			return false, err
		}
		req.Header.Del("Authorization") // the event key in the path is the credential
		req.Header.Set("X-Inngest-Event-Id-Seed", seedHeader)
		status, resp, err := c.roundTrip(req)
		if err != nil {
			return true, err
		}
		var r struct {
			IDs    []string `json:"ids"`
			Status int      `json:"status"`
		}
		json.Unmarshal(resp, &r)
		if status/100 == 2 && r.Status == 200 {
			ids = r.IDs
			return false, nil
		}
		// A refusal (4xx) stands; anything else may pass.
		return status/100 != 4, apiError("sending events", status, resp)
	})
	return ids, err
}

// ErrNoSignalWaiter is SendSignal's error when no run waits for the signal.
var ErrNoSignalWaiter = errors.New("sdk: no run is waiting for this signal")

// SendSignal resumes the run waiting for signal (step.WaitForSignal) with
// data, and returns that run's id.
func (c *Client) SendSignal(ctx context.Context, signal string, data any) (string, error) {
	body, err := json.Marshal(map[string]any{"signal": signal, "data": data})
	if err != nil {
		return "", err
	}
	status, resp, err := c.do(ctx, http.MethodPost, c.apiURL("/v1/signals"), body)
	if err != nil {
		return "", err
	}
	if status == http.StatusNotFound {
		return "", ErrNoSignalWaiter
	}
	if status/100 != 2 {
		return "", apiError("sending a signal", status, resp)
	}
	var r struct {
		Data struct {
			RunID string `json:"run_id"`
		} `json:"data"`
	}
	json.Unmarshal(resp, &r)
	return r.Data.RunID, nil
}

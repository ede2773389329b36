package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/cronschedule"
	"github.com/cairn-dev/cairn/expr"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/labstack/echo/v4"
)

// registerBody is what the SDK POSTs to /fn/register (protocol §3.3).
type registerBody struct {
	URL       string            `json:"url"`
	AppName   string            `json:"appName"`
	Framework string            `json:"framework"`
	SDK       string            `json:"sdk"`
	Functions []json.RawMessage `json:"functions"`
}

// functionConfig is the part of a function's config this server uses.
type functionConfig struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Triggers []struct {
		Event      string `json:"event"`
		Expression string `json:"expression"`
		Cron       string `json:"cron"`
	} `json:"triggers"`
	Steps map[string]struct {
		Runtime struct {
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"runtime"`
		Retries *struct {
			Attempts *int `json:"attempts"`
		} `json:"retries"`
	} `json:"steps"`
	Cancel []struct {
		Event   string `json:"event"`
		If      string `json:"if"`
		Timeout string `json:"timeout"`
	} `json:"cancel"`
	Timeouts *struct {
		Start  string `json:"start"`
		Finish string `json:"finish"`
	} `json:"timeouts"`
	Idempotency string          `json:"idempotency"`
	Concurrency json.RawMessage `json:"concurrency"`
	Throttle    *struct {
		Limit  int    `json:"limit"`
		Period string `json:"period"`
		Key    string `json:"key"`
		Burst  int    `json:"burst"`
	} `json:"throttle"`
	RateLimit *struct {
		Limit  int    `json:"limit"`
		Period string `json:"period"`
		Key    string `json:"key"`
	} `json:"rateLimit"`
	Debounce *struct {
		Period  string `json:"period"`
		Key     string `json:"key"`
		Timeout string `json:"timeout"`
	} `json:"debounce"`
	BatchEvents *struct {
		MaxSize int    `json:"maxSize"`
		Timeout string `json:"timeout"`
		Key     string `json:"key"`
		If      string `json:"if"`
	} `json:"batchEvents"`
	Priority *struct {
		Run string `json:"run"`
	} `json:"priority"`
	Singleton *struct {
		Key  string `json:"key"`
		Mode string `json:"mode"`
	} `json:"singleton"`
}

const maxRetries = 20

// register stores an app's functions. Errors carry "status" in the JSON body
// because the SDK ignores the HTTP status here.
func (s *Server) register(c echo.Context) error {
	if kind := c.Request().Header.Get("X-Inngest-Expected-Server-Kind"); kind != "" && kind != s.cfg.ServerKind {
		return errf(http.StatusBadRequest, "server_kind_mismatch", "expected server kind %s, got %s", kind, s.cfg.ServerKind)
	}
	body, err := s.readBody(c)
	if err != nil {
		return err
	}
	rec, err := parseRegister(body)
	if err != nil {
		return err
	}
	if err := s.checkAppHosts(rec); err != nil {
		return err
	}
	rec.At, rec.Owner, rec.Exclusive, rec.By = time.Now().UnixMilli(), keyID(c), true, actor(c)
	if ks := s.cfg.Keys; rec.Owner != "" && rec.Owner == ks.Primary.ID && !ks.Fallback.IsZero() {
		rec.MayReplace = []string{ks.Fallback.ID} // rotation: apps move to the new key
	}
	// Refuse before proposing, so that a refused sync leaves no record;
	// Apply decides again for syncs that race.
	if msg, err := s.fsm.SyncRefused(rec); err != nil {
		return err
	} else if msg != "" {
		return errf(http.StatusConflict, "app_conflict", "%s", msg)
	}
	res, err := s.propose(c, rec)
	if err != nil {
		return err
	}
	if res[0].Code != fsm.OK {
		return errf(http.StatusConflict, "app_conflict", "%s", res[0].Msg)
	}
	s.log.Info("app synced", "app", rec.AppID, "functions", len(rec.Functions), "modified", res[0].Modified)
	return c.JSON(http.StatusOK, map[string]any{"ok": true, "modified": res[0].Modified, "app_id": rec.AppID})
}

// parseRegister validates a register body and normalizes it into a record.
func parseRegister(body []byte) (*fsm.AppSynced, error) {
	if at := invalidUTF8At(body); at >= 0 {
		return nil, errf(http.StatusBadRequest, "invalid_json", "register body is not valid UTF-8 (byte %d)", at)
	}
	var rb registerBody
	if err := json.Unmarshal(body, &rb); err != nil {
		return nil, errf(http.StatusBadRequest, "invalid_json", "register body: %v", err)
	}
	if strings.TrimSpace(rb.AppName) == "" {
		return nil, errf(http.StatusBadRequest, "invalid_app", "\"appName\" is required")
	}
	if msg := checkName(rb.AppName, maxIDBytes); msg != "" {
		return nil, errf(http.StatusBadRequest, "invalid_app", "\"appName\" %s", msg)
	}
	appURL, err := cleanURL(rb.URL)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "invalid_app", "\"url\": %v", err)
	}
	rec := &fsm.AppSynced{AppID: rb.AppName, URL: appURL, SDK: rb.SDK, Framework: rb.Framework}
	seen := map[string]bool{}
	for i, raw := range rb.Functions {
		var fc functionConfig
		if err := json.Unmarshal(raw, &fc); err != nil {
			return nil, errf(http.StatusBadRequest, "invalid_function", "function %d: %v", i, err)
		}
		if fc.ID == "" {
			return nil, errf(http.StatusBadRequest, "invalid_function", "function %d: \"id\" is required", i)
		}
		if msg := checkName(fc.ID, maxIDBytes); msg != "" {
			return nil, errf(http.StatusBadRequest, "invalid_function", "function %d: \"id\" %s", i, msg)
		}
		if seen[fc.ID] {
			return nil, errf(http.StatusBadRequest, "invalid_function", "function %q is defined twice", fc.ID)
		}
		seen[fc.ID] = true
		step, ok := fc.Steps["step"]
		if !ok {
			return nil, errf(http.StatusBadRequest, "invalid_function", "function %q: steps.step is required", fc.ID)
		}
		if step.Runtime.Type != "" && step.Runtime.Type != "http" {
			return nil, errf(http.StatusBadRequest, "invalid_function",
				"function %q: runtime %q is not supported (only http)", fc.ID, step.Runtime.Type)
		}
		stepURL, err := cleanURL(step.Runtime.URL)
		if err != nil {
			return nil, errf(http.StatusBadRequest, "invalid_function", "function %q: step url: %v", fc.ID, err)
		}
		def := fsm.FunctionDef{ID: fc.ID, Name: fc.Name, URL: stepURL, Retries: -1, Config: raw}
		if def.Name == "" {
			def.Name = fc.ID
		}
		if step.Retries != nil && step.Retries.Attempts != nil {
			n := *step.Retries.Attempts
			if n < 0 || n > maxRetries {
				return nil, errf(http.StatusBadRequest, "invalid_function",
					"function %q: retries must be between 0 and %d, got %d", fc.ID, maxRetries, n)
			}
			def.Retries = n
		}
		if err := parseFlow(&fc, &def); err != nil {
			return nil, err
		}
		if err := parseFlowControl(&fc, &def); err != nil {
			return nil, err
		}
		if err := checkFunction(&def); err != nil {
			return nil, err
		}
		rec.Functions = append(rec.Functions, def)
	}
	sum := sha256.New()
	json.NewEncoder(sum).Encode([]any{rec.URL, rec.Functions})
	rec.Checksum = hex.EncodeToString(sum.Sum(nil))
	return rec, nil
}

// checkAppHosts refuses app URLs outside the allowed app hosts.
func (s *Server) checkAppHosts(rec *fsm.AppSynced) error {
	if err := s.cfg.AppHosts.CheckURL(rec.URL); err != nil {
		return errf(http.StatusBadRequest, "invalid_url", "\"url\": %v", err)
	}
	for _, fn := range rec.Functions {
		if err := s.cfg.AppHosts.CheckURL(fn.URL); err != nil {
			return errf(http.StatusBadRequest, "invalid_url", "function %q: step url: %v", fn.ID, err)
		}
	}
	return nil
}

// cleanURL checks an app URL and drops the deployId and probe parameters the
// SDK leaves in it, so later calls don't carry a stale deploy id.
func cleanURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errf(http.StatusBadRequest, "invalid_url", "%q is not an absolute http(s) URL", raw)
	}
	q := u.Query()
	q.Del("deployId")
	q.Del("probe")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// maxTriggers and maxCancels are the official server's limits.
const (
	maxTriggers = 10
	maxCancels  = 5
)

// parseFlow reads triggers, cancelOn, timeouts and idempotency, compiling
// every expression and schedule now, so that a function that cannot work is
// refused at registration rather than failing at run time.
func parseFlow(fc *functionConfig, def *fsm.FunctionDef) error {
	bad := func(format string, args ...any) error {
		return errf(http.StatusBadRequest, "invalid_function", "function %q: %s", fc.ID, fmt.Sprintf(format, args...))
	}
	if len(fc.Triggers) > maxTriggers {
		return bad("%d triggers; at most %d", len(fc.Triggers), maxTriggers)
	}
	for j, t := range fc.Triggers {
		switch {
		case t.Event == "" && t.Cron == "":
			return bad("trigger %d needs an event or a cron", j)
		case t.Event != "" && t.Cron != "":
			return bad("trigger %d has both an event and a cron", j)
		case t.Cron != "":
			if _, err := cronschedule.Parse(t.Cron); err != nil {
				return bad("trigger %d: %v", j, err)
			}
		}
		if t.Expression != "" {
			if _, err := expr.Compile(t.Expression); err != nil {
				return bad("trigger %d: %v", j, err)
			}
		}
		def.Triggers = append(def.Triggers, fsm.Trigger{Event: t.Event, Expression: t.Expression, Cron: t.Cron})
	}
	if len(fc.Cancel) > maxCancels {
		return bad("%d cancel conditions; at most %d", len(fc.Cancel), maxCancels)
	}
	for j, c := range fc.Cancel {
		if c.Event == "" {
			return bad("cancel %d needs an event", j)
		}
		if c.If != "" {
			if _, err := expr.Compile(c.If); err != nil {
				return bad("cancel %d: %v", j, err)
			}
		}
		on := fsm.CancelOn{Event: c.Event, If: c.If}
		if c.Timeout != "" {
			ms, err := fsm.ParseDurationMs(c.Timeout)
			if err != nil {
				return bad("cancel %d timeout: %v", j, err)
			}
			on.TimeoutMs = ms
		}
		def.Cancel = append(def.Cancel, on)
	}
	if fc.Timeouts != nil {
		for _, x := range []struct {
			name string
			val  string
			dst  *int64
		}{{"start", fc.Timeouts.Start, &def.StartTimeoutMs}, {"finish", fc.Timeouts.Finish, &def.FinishTimeoutMs}} {
			if x.val == "" {
				continue
			}
			ms, err := fsm.ParseDurationMs(x.val)
			if err != nil {
				return bad("timeouts.%s: %v", x.name, err)
			}
			*x.dst = ms
		}
	}
	if fc.Idempotency != "" {
		if _, err := expr.Compile(fc.Idempotency); err != nil {
			return bad("idempotency: %v", err)
		}
		def.Idempotency = fc.Idempotency
	}
	return nil
}

// parseFlowControl reads concurrency, throttle, rate limit, debounce,
// batching, priority and singleton, with the official server's checks:
// at most two concurrency limits; batching excludes cancel, debounce,
// singleton and priority; debounce periods from 1 s to 7 d.
func parseFlowControl(fc *functionConfig, def *fsm.FunctionDef) error {
	bad := func(format string, args ...any) error {
		return errf(http.StatusBadRequest, "invalid_function", "function %q: %s", fc.ID, fmt.Sprintf(format, args...))
	}
	compiles := func(what, src string) error {
		if src == "" {
			return nil
		}
		if _, err := expr.Compile(src); err != nil {
			return bad("%s: %v", what, err)
		}
		return nil
	}
	period := func(what, s string) (int64, error) {
		ms, err := fsm.ParseDurationMs(s)
		if err != nil || ms <= 0 {
			return 0, bad("%s: %q is not a duration", what, s)
		}
		return ms, nil
	}
	if c := bytes.TrimSpace(fc.Concurrency); len(c) > 0 && string(c) != "null" {
		var limits []fsm.ConcurrencyLimit
		type obj struct {
			Limit int    `json:"limit"`
			Key   string `json:"key"`
			Scope string `json:"scope"`
		}
		var n int
		var one obj
		var many []obj
		switch {
		case json.Unmarshal(c, &n) == nil:
			limits = append(limits, fsm.ConcurrencyLimit{Limit: n})
		case json.Unmarshal(c, &one) == nil:
			many = []obj{one}
		case json.Unmarshal(c, &many) == nil:
		default:
			return bad("concurrency must be a number, an object or a list of objects")
		}
		for _, o := range many {
			limits = append(limits, fsm.ConcurrencyLimit{Limit: o.Limit, Key: o.Key, Scope: o.Scope})
		}
		if len(limits) > 2 {
			return bad("at most 2 concurrency limits, got %d", len(limits))
		}
		for i, l := range limits {
			if l.Limit <= 0 {
				return bad("concurrency %d: limit must be positive", i)
			}
			if l.Scope != "" && l.Scope != "fn" && l.Scope != "env" && l.Scope != "account" {
				return bad("concurrency %d: scope %q is not fn, env or account", i, l.Scope)
			}
			if err := compiles(fmt.Sprintf("concurrency %d key", i), l.Key); err != nil {
				return err
			}
		}
		def.Concurrency = limits
	}
	if th := fc.Throttle; th != nil {
		if th.Limit <= 0 {
			return bad("throttle limit must be positive")
		}
		p, err := period("throttle period", th.Period)
		if err != nil {
			return err
		}
		if err := compiles("throttle key", th.Key); err != nil {
			return err
		}
		if th.Burst < 0 || th.Burst > maxFlowLimit {
			return bad("throttle burst must be between 0 and %d, got %d", maxFlowLimit, th.Burst)
		}
		def.Throttle = fsm.Throttle(th.Limit, p, th.Key, th.Burst)
	}
	if rl := fc.RateLimit; rl != nil {
		if rl.Limit <= 0 {
			return bad("rateLimit limit must be positive")
		}
		p, err := period("rateLimit period", rl.Period)
		if err != nil {
			return err
		}
		if err := compiles("rateLimit key", rl.Key); err != nil {
			return err
		}
		def.RateLimit = &fsm.RateSpec{Limit: rl.Limit, PeriodMs: p, Key: rl.Key}
	}
	if d := fc.Debounce; d != nil {
		p, err := period("debounce period", d.Period)
		if err != nil {
			return err
		}
		if p < 1000 || p > 7*24*3600*1000 {
			return bad("debounce period must be between 1s and 7d")
		}
		spec := &fsm.DebounceSpec{PeriodMs: p, Key: d.Key}
		if d.Timeout != "" {
			if spec.TimeoutMs, err = period("debounce timeout", d.Timeout); err != nil {
				return err
			}
		}
		if err := compiles("debounce key", d.Key); err != nil {
			return err
		}
		def.Debounce = spec
	}
	if b := fc.BatchEvents; b != nil {
		if b.MaxSize <= 0 {
			return bad("batchEvents maxSize must be positive")
		}
		to, err := period("batchEvents timeout", b.Timeout)
		if err != nil {
			return err
		}
		if err := compiles("batchEvents key", b.Key); err != nil {
			return err
		}
		if err := compiles("batchEvents if", b.If); err != nil {
			return err
		}
		if len(fc.Cancel) > 0 || fc.Debounce != nil || fc.Singleton != nil || (fc.Priority != nil && fc.Priority.Run != "") {
			return bad("batchEvents cannot be combined with cancelOn, debounce, singleton or priority")
		}
		def.Batch = &fsm.BatchSpec{MaxSize: b.MaxSize, TimeoutMs: to, Key: b.Key, If: b.If}
	}
	if p := fc.Priority; p != nil && p.Run != "" {
		if err := compiles("priority.run", p.Run); err != nil {
			return err
		}
		def.Priority = p.Run
	}
	if s := fc.Singleton; s != nil {
		if s.Mode != "skip" && s.Mode != "cancel" {
			return bad("singleton mode must be skip or cancel, got %q", s.Mode)
		}
		if err := compiles("singleton key", s.Key); err != nil {
			return err
		}
		def.Singleton = &fsm.SingletonSpec{Key: s.Key, Mode: s.Mode}
	}
	return nil
}

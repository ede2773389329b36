package api

import (
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
	Idempotency string `json:"idempotency"`
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
	rec.At = time.Now().UnixMilli()
	res, err := s.propose(c, rec)
	if err != nil {
		return err
	}
	s.log.Info("app synced", "app", rec.AppID, "functions", len(rec.Functions), "modified", res[0].Modified)
	return c.JSON(http.StatusOK, map[string]any{"ok": true, "modified": res[0].Modified, "app_id": rec.AppID})
}

// parseRegister validates a register body and normalizes it into a record.
func parseRegister(body []byte) (*fsm.AppSynced, error) {
	var rb registerBody
	if err := json.Unmarshal(body, &rb); err != nil {
		return nil, errf(http.StatusBadRequest, "invalid_json", "register body: %v", err)
	}
	if strings.TrimSpace(rb.AppName) == "" {
		return nil, errf(http.StatusBadRequest, "invalid_app", "\"appName\" is required")
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
		rec.Functions = append(rec.Functions, def)
	}
	sum := sha256.New()
	json.NewEncoder(sum).Encode([]any{rec.URL, rec.Functions})
	rec.Checksum = hex.EncodeToString(sum.Sum(nil))
	return rec, nil
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

package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/sdk/signing"
)

// reentry builds the call that continues a durable endpoint's run on the
// engine (protocol §9.2 step 5): the end user's request again (method, URL
// with its query, body and content type) with X-Run-ID and
// X-Inngest-Signature, which is how the SDK tells a re-entry from a user's
// request. The SDK fetches the run's events and steps itself
// (/v0/runs/:id/batch, /actions), so the body carries no state.
func (e *Executor) reentry(ctx context.Context, run *fsm.Run, fn *fsm.Function, c fsm.Call) (*http.Request, error) {
	if len(run.EventIDs) == 0 {
		return nil, fmt.Errorf("endpoint run %s has no event", run.ID)
	}
	raw, err := e.fsm.Event(run.EventIDs[0])
	if err != nil || raw == nil {
		return nil, fmt.Errorf("event of run %s: %v", run.ID, err)
	}
	var ev struct {
		Data struct {
			ContentType string `json:"content_type"`
			QueryParams string `json:"query_params"`
			Body        string `json:"body"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("event of run %s: %w", run.ID, err)
	}
	u, err := url.Parse(fn.URL)
	if err != nil {
		return nil, fmt.Errorf("bad endpoint URL %q: %w", fn.URL, err)
	}
	u.RawQuery = ev.Data.QueryParams
	body := []byte(ev.Data.Body)
	sig := ""
	if e.cfg.Keys.Enabled() {
		sig = signReentry(e.cfg.Keys.Primary, body, time.Now())
	}
	var rd io.Reader // none for an empty body: a GET has no body
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, run.Endpoint, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if ev.Data.ContentType != "" {
		req.Header.Set("Content-Type", ev.Data.ContentType)
	}
	req.Header.Set("X-Run-ID", run.ID)
	// Present even when empty (dev mode): the SDK needs both headers to
	// know it is called by the engine.
	req.Header[signing.Header] = []string{sig}
	version := run.Version
	if version < 1 {
		version = 2
	}
	req.Header.Set("X-Inngest-Req-Version", strconv.Itoa(version))
	req.Header.Set("X-Inngest-Server-Kind", e.cfg.ServerKind)
	if c.ID != fsm.DiscoveryCall {
		req.Header.Set("X-Inngest-Step-ID", c.ID)
	}
	if run.ForcePlan {
		req.Header.Set("X-Inngest-Force-Step-Plan", "true")
	}
	req.Header.Set("User-Agent", "cairn")
	replayable(req)
	return req, nil
}

// signReentry signs a re-entry's body as the SDK checks it: over the
// canonical form of the parsed JSON when the body is JSON, over the bytes
// otherwise (an empty body for a GET).
func signReentry(k signing.Key, body []byte, now time.Time) string {
	if len(body) > 0 && json.Valid(body) {
		if _, sig, err := k.SignJSON(body, now); err == nil {
			return sig
		}
	}
	return k.Sign(body, now)
}

package executor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/fsm"
)

// response is an app's answer, after unwrapping a streamed (201) reply.
type response struct {
	status int
	header http.Header
	body   []byte
}

// streamed is the final object of a 201 streaming response (protocol §5.3).
type streamed struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

func unwrapStream(r *response) error {
	var s streamed
	if err := json.Unmarshal(bytes.TrimSpace(r.body), &s); err != nil {
		return fmt.Errorf("bad streaming response: %w", err)
	}
	h := http.Header{}
	for k, v := range s.Headers {
		h.Set(k, v)
	}
	body := []byte(s.Body)
	var str string
	if json.Unmarshal(s.Body, &str) == nil {
		body = []byte(str) // the body is usually a JSON string holding JSON
	}
	r.status, r.header, r.body = s.Status, h, body
	return nil
}

// parseOps reads a 206 body: an array of ops, or (durable endpoints) one op.
func parseOps(body []byte) ([]fsm.Op, error) { return fsm.ParseOps(body) }

// finishedFrom builds the record of an app's answer.
func finishedFrom(r *response, now time.Time) *fsm.CallFinished {
	f := &fsm.CallFinished{Status: r.status, SDK: r.header.Get("X-Inngest-SDK") != ""}
	f.Version, _ = strconv.Atoi(r.header.Get("X-Inngest-Req-Version"))
	if v := r.header.Get("X-Inngest-No-Retry"); v != "" {
		nr := strings.EqualFold(v, "true")
		f.NoRetry = &nr
	}
	f.RetryAt = retryAfter(r.header.Get("Retry-After"), now)
	if f.NoRetry != nil && *f.NoRetry && r.status == http.StatusBadRequest && staleDispatch(r.body) {
		// The SDK gave this dispatch up because a checkpoint was answered
		// 409. Its claim is superseded then, and Apply records the answer
		// as stale; should the claim be current after all (a 409 from a
		// proxy), the call is tried again rather than the run failed.
		no := false
		f.NoRetry = &no
	}
	switch {
	case f.SDK && r.status == 206:
		ops, err := parseOps(r.body)
		if err != nil {
			f.SDK = false // unusable: treat as a failed attempt
			f.Err = "bad ops in 206 response: " + err.Error()
		}
		f.Ops = ops
	case !f.SDK && r.status >= 200 && r.status < 300:
		f.Err = fmt.Sprintf("HTTP %d without X-Inngest-SDK: not an SDK response (wrong URL or a proxy?)", r.status)
	}
	if len(f.Ops) == 0 {
		if json.Valid(r.body) {
			f.Body = r.body
		} else if len(r.body) > 0 {
			b, _ := json.Marshal(string(truncate(r.body, 4096)))
			f.Body = b
		}
	}
	return f
}

// maxRetryAfterS bounds a Retry-After in seconds (a year).
const maxRetryAfterS = 366 * 24 * 3600

// retryAfter parses Retry-After: seconds or a date.
func retryAfter(v string, now time.Time) int64 {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		// Bounded, or a huge value overflows into the past (Apply caps the
		// wait at a day anyway).
		s = min(max(s, 0), maxRetryAfterS)
		return now.Add(time.Duration(s) * time.Second).UnixMilli()
	}
	for _, layout := range []string{time.RFC3339, http.TimeFormat} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UnixMilli()
		}
	}
	return 0
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// staleDispatch reports whether an error answer is the SDK's
// StaleDispatchError (protocol §9.1).
func staleDispatch(body []byte) bool {
	var e struct {
		Name string `json:"name"`
	}
	return json.Unmarshal(body, &e) == nil && e.Name == "StaleDispatchError"
}

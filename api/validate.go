package api

import (
	"fmt"
	"net/http"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/cairn-dev/cairn/expr"
	"github.com/cairn-dev/cairn/fsm"
)

// Input limits. Each is checked before anything is proposed, so an input
// refused for one writes nothing to the log, and the error names the limit.
const (
	// maxEventNameBytes bounds an event name (sent, or named by a trigger or
	// a cancelOn): names are parts of projection keys.
	maxEventNameBytes = 256
	// maxIDBytes bounds a function id and an app name, for the same reason.
	maxIDBytes = 256

	// An event's "ts" is milliseconds since the Unix epoch: not negative (0
	// or absent means "now"), and at most a year ahead of this server's
	// clock, like the longest sleep. Further than that is a unit mistake
	// (µs, ns) or garbage.
	maxEventAheadMs = 366 * day

	// maxFlowLimit bounds concurrency, throttle and rate-limit limits and
	// the throttle burst; a bigger number is no limit at all.
	maxFlowLimit = 100_000
	// maxBatchSize bounds batchEvents.maxSize (the official server's
	// default cap): a batch's events travel in one call body.
	maxBatchSize = 100
	// maxTimeoutMs bounds cancelOn and debounce timeouts and
	// timeouts.start/finish, like the longest sleep.
	maxTimeoutMs = 366 * day

	day = 24 * 3600 * 1000
)

// Period ranges, as Inngest documents them for its functions.
var (
	throttlePeriod  = msRange{1000, 7 * day}
	rateLimitPeriod = msRange{1000, day}
	batchTimeout    = msRange{1000, 60 * 1000}
)

type msRange struct{ min, max int64 }

// checkName refuses an event name (limit maxEventNameBytes) or an id
// (maxIDBytes) the engine cannot keep in its keys: too long, or with a
// control character (a NUL would run into the key separator). Its answer
// completes "name ..." in an error; "" means fine. (Decoded JSON strings
// are valid UTF-8 already: invalid bytes are caught in the raw body.)
func checkName(s string, limit int) string {
	switch {
	case len(s) > limit:
		return fmt.Sprintf("is %d bytes; the limit is %d", len(s), limit)
	case hasControl(s):
		return "contains a control character"
	}
	return ""
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// checkTS checks an event's "ts" (milliseconds, see maxEventAheadMs) and
// returns it, 0 when the event gave none.
func checkTS(raw []byte, nowMs int64) (int64, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, ""
	}
	ts, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, "must be a number of ms since the Unix epoch"
	}
	switch {
	case ts < 0:
		return 0, fmt.Sprintf("is %s: must not be negative (ms since the Unix epoch)", raw)
	case ts > float64(nowMs+maxEventAheadMs):
		return 0, fmt.Sprintf("is %s: more than a year ahead of the server clock (%d); is it in ms?", raw, nowMs)
	}
	return int64(ts), ""
}

// checkFunction checks the numbers and conditions of a parsed function
// against the limits above: parseFlow and parseFlowControl already refused
// what cannot be parsed or is not positive.
func checkFunction(def *fsm.FunctionDef) error {
	bad := func(format string, args ...any) error {
		return errf(http.StatusBadRequest, "invalid_function", "function %q: %s", def.ID, fmt.Sprintf(format, args...))
	}
	between := func(what string, v, lo, hi int64) error {
		if v < lo || v > hi {
			return bad("%s must be between %d and %d, got %d", what, lo, hi, v)
		}
		return nil
	}
	inRange := func(what string, ms int64, r msRange) error {
		if ms < r.min || ms > r.max {
			return bad("%s must be between %s and %s, got %dms", what, fmtMs(r.min), fmtMs(r.max), ms)
		}
		return nil
	}
	condition := func(what, src string) error {
		if src == "" {
			return nil
		}
		if _, err := expr.CompileCondition(src); err != nil {
			return bad("%s: %v", what, err)
		}
		return nil
	}
	var errs []error
	for i, t := range def.Triggers {
		if t.Event != "" {
			if msg := checkName(t.Event, maxEventNameBytes); msg != "" {
				errs = append(errs, bad("trigger %d: event name %s", i, msg))
			}
		}
		errs = append(errs, condition(fmt.Sprintf("trigger %d expression", i), t.Expression))
	}
	for i, c := range def.Cancel {
		if msg := checkName(c.Event, maxEventNameBytes); msg != "" {
			errs = append(errs, bad("cancel %d: event name %s", i, msg))
		}
		errs = append(errs, condition(fmt.Sprintf("cancel %d if", i), c.If),
			between(fmt.Sprintf("cancel %d timeout (ms)", i), c.TimeoutMs, 0, maxTimeoutMs))
	}
	errs = append(errs,
		between("timeouts.start (ms)", def.StartTimeoutMs, 0, maxTimeoutMs),
		between("timeouts.finish (ms)", def.FinishTimeoutMs, 0, maxTimeoutMs))
	for i, c := range def.Concurrency {
		errs = append(errs, between(fmt.Sprintf("concurrency %d limit", i), int64(c.Limit), 1, maxFlowLimit))
	}
	if th := def.Throttle; th != nil {
		errs = append(errs, between("throttle limit", int64(th.Limit), 1, maxFlowLimit),
			// Burst here counts runs past the first that start at once
			// (fsm.Throttle); the SDK's burst was checked when parsed.
			between("throttle runs at once", int64(th.Burst)+1, 1, int64(th.Limit)*maxFlowLimit),
			inRange("throttle period", th.PeriodMs, throttlePeriod))
	}
	if rl := def.RateLimit; rl != nil {
		errs = append(errs, between("rateLimit limit", int64(rl.Limit), 1, maxFlowLimit),
			inRange("rateLimit period", rl.PeriodMs, rateLimitPeriod))
	}
	if d := def.Debounce; d != nil {
		errs = append(errs, between("debounce timeout (ms)", d.TimeoutMs, 0, maxTimeoutMs))
	}
	if b := def.Batch; b != nil {
		errs = append(errs, between("batchEvents maxSize", int64(b.MaxSize), 1, maxBatchSize),
			inRange("batchEvents timeout", b.TimeoutMs, batchTimeout),
			condition("batchEvents if", b.If))
	}
	for _, err := range errs {
		if err != nil {
			return err // the first, in the order of the config
		}
	}
	return nil
}

// fmtMs writes a limit the way SDK configs spell durations.
func fmtMs(ms int64) string {
	switch {
	case ms%day == 0:
		return fmt.Sprintf("%dd", ms/day)
	case ms%3600_000 == 0:
		return fmt.Sprintf("%dh", ms/3600_000)
	case ms%1000 == 0:
		return fmt.Sprintf("%ds", ms/1000)
	}
	return fmt.Sprintf("%dms", ms)
}

// invalidUTF8At returns the offset of the first byte of b that is not part
// of valid UTF-8, or -1. JSON decoding would silently turn such bytes into
// U+FFFD in strings and keep them in raw values, so they are refused first.
func invalidUTF8At(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

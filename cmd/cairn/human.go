package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// now is the clock human times are relative to (fixed in tests).
var now = time.Now

// ago says when a unix-ms time is relative to now, as a person says it:
// "just now", "20 s ago", "in 3 min", "2 h ago"; a time more than a week
// away is a date. 0 is "-" (never).
func ago(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	t := time.UnixMilli(ms)
	d := t.Sub(now())
	future := d > 0
	if !future {
		d = -d
	}
	if d < time.Second {
		return "just now"
	}
	if d >= 7*24*time.Hour {
		return t.UTC().Format("2006-01-02 15:04 UTC")
	}
	s := span(d)
	if future {
		return "in " + s
	}
	return s + " ago"
}

// span is a duration rounded to its largest unit: "20 s", "3 min", "2 h",
// "4 d".
func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return fmt.Sprintf("%d d", int(d/(24*time.Hour)))
}

// took is how long something lasted, to the millisecond below a minute
// ("1.25s") and to the second above ("3m20s"); "-" when it has not ended.
func took(from, to int64) string {
	if to <= 0 || from <= 0 {
		return "-"
	}
	d := time.Duration(to-from) * time.Millisecond
	if d >= time.Minute {
		d = d.Round(time.Second)
	}
	return d.String()
}

// waitingText is the WAITING column: what the API says a run waits for,
// its time relative ("sleeping, wakes in 59 min"; "throttled, starts in
// 20 s (key "k")"), from waiting_reason and waiting_until.
func waitingText(reason string, until int64, fallback string) string {
	if reason == "" {
		return fallback
	}
	if until <= 0 {
		return reason
	}
	head, tail, _ := strings.Cut(reason, " (")
	verb := "until"
	switch {
	case head == "sleeping":
		verb = "wakes"
	case strings.HasPrefix(head, "waiting for"):
		verb = "times out"
	case strings.HasPrefix(head, "throttled"), strings.HasPrefix(head, "debounced"), strings.HasPrefix(head, "batching"):
		verb = "starts"
	}
	out := head + ", " + verb + " " + ago(until)
	if tail != "" {
		out += " (" + tail
	}
	return out
}

// rfc3339Millis is how --json prints times: RFC 3339, UTC, milliseconds.
const rfc3339Millis = "2006-01-02T15:04:05.000Z07:00"

// timeKeys are the fields of API answers that hold unix-ms times: --json
// prints them as RFC 3339.
var timeKeys = map[string]bool{
	"created_at": true, "started_at": true, "ended_at": true, "synced_at": true, "received_at": true,
	"waiting_until": true, "at": true, "from": true, "to": true,
}

// rfc3339Times rewrites the unix-ms times of a JSON document (timeKeys,
// at any depth) as RFC 3339 UTC strings with milliseconds, for --json:
// what a script reads should not depend on knowing the unit.
func rfc3339Times(raw json.RawMessage) (json.RawMessage, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(convertTimes(v)); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func convertTimes(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if n, ok := val.(json.Number); ok && timeKeys[k] {
				if ms, err := n.Int64(); err == nil && ms > 0 {
					x[k] = time.UnixMilli(ms).UTC().Format(rfc3339Millis)
					continue
				}
			}
			x[k] = convertTimes(val)
		}
	case []any:
		for i := range x {
			x[i] = convertTimes(x[i])
		}
	}
	return v
}

// epochUntil is a unix-ms time in text the engine stored ("throttled
// until 1796061505567 (key ...)" in a run.throttled entry).
var epochUntil = regexp.MustCompile(` until (\d{12,})`)

// untilHuman rewrites " until <unix ms>" in stored text as RFC 3339 and
// relative to now.
func untilHuman(s string) string {
	return epochUntil.ReplaceAllStringFunc(s, func(m string) string {
		ms, err := strconv.ParseInt(strings.TrimPrefix(m, " until "), 10, 64)
		if err != nil {
			return m
		}
		return " until " + time.UnixMilli(ms).UTC().Format(time.RFC3339) + " (" + ago(ms) + ")"
	})
}

package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/cairn-dev/cairn/fsm"
)

// How times are shown: a fixed UTC form everywhere (pages are the same for
// every reader and every node), with the distance from now beside it.
const timeFormat = "2006-01-02 15:04:05 UTC"

var sprintf = fmt.Sprintf

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"ago":     ago,
	"when":    when,
	"iso":     iso,
	"dur":     dur,
	"took":    took,
	"pretty":  pretty,
	"errmsg":  errMessage,
	"pct":     func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
	"runsURL": runsURL,
	"done":    func(status string) bool { return status != fsm.StatusRunning },
	"failed":  func(status string) bool { return status == fsm.StatusFailed },
	"running": func(status string) bool { return status == fsm.StatusRunning },
	"durp": func(p *int64) string {
		if p == nil {
			return ""
		}
		return dur(*p)
	},
	"sub":     func(a, b int64) int64 { return a - b },
	"nav":     func() any { return navItems },
	"has":     func(list []string, v string) bool { return slices.Contains(list, v) },
	"retries": func(f *fsm.Function) int { return f.MaxAttempts() - 1 },
	"dict": func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	},
	"json": func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
	"syncFor": func(sync []apiSync, u string) *apiSync {
		for i := range sync {
			if sync[i].URL == u {
				return &sync[i]
			}
		}
		return nil
	},
}

// when is a unix-ms time as pages show it ("" for 0).
func when(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(timeFormat)
}

// iso is a unix-ms time for <time datetime=...>.
func iso(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

// ago is how far a unix-ms time is from now: "12 s ago", "in 3 min".
func ago(ms int64) string {
	if ms == 0 {
		return ""
	}
	d := time.Since(time.UnixMilli(ms))
	if d < 0 {
		return "in " + roughly(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return roughly(d) + " ago"
}

func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + " h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + " days"
}

// dur is a duration in ms, short: "850 ms", "1.2 s", "3 min 20 s".
func dur(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second:
		return strconv.FormatInt(ms, 10) + " ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func durNZ(ms int64) string {
	if ms == 0 {
		return ""
	}
	return dur(ms)
}

// took is how long a run took, or has been running.
func took(r fsm.Run) string {
	start := r.CreatedAt
	end := r.EndedAt
	if end == 0 {
		end = time.Now().UnixMilli()
	}
	return dur(max(end-start, 0))
}

func itoaNZ(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// opt is prefix+v, or "" when v is.
func opt(prefix, v string) string {
	if v == "" {
		return ""
	}
	return prefix + v
}

func keyed(key string) string { return opt(" by ", key) }

// pretty indents JSON for a <pre>, cut at maxPayloadShown.
func pretty(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	if b.Len() > maxPayloadShown {
		return b.String()[:maxPayloadShown] + "\n… (cut: " + strconv.Itoa(b.Len()) + " bytes)"
	}
	return b.String()
}

// errMessage is the message of an SDK error ({"name", "message", ...}), or
// the JSON itself.
func errMessage(raw []byte) string {
	var e struct {
		Name    string `json:"name"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Message != "" {
		if e.Name != "" {
			return e.Name + ": " + e.Message
		}
		return e.Message
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// runsURL links to the runs page for a function and status.
func runsURL(function, status string) string {
	q := url.Values{}
	if function != "" {
		q.Set(qFunction, function)
	}
	if status != "" {
		q.Set(qStatus, status)
	}
	return "/runs?" + q.Encode()
}

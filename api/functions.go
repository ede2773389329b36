package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/labstack/echo/v4"
)

// functionView is a registered function as GET /v1/functions shows it.
type functionView struct {
	ID      string `json:"id"`       // as runs and the API name it: "<app>-<fn>"
	ShortID string `json:"short_id"` // the id the app gave it; names it where unique
	Name    string `json:"name"`
	AppID   string `json:"app_id"`
	// Triggers: "event NAME [if EXPR]" or "cron SPEC".
	Triggers []string `json:"triggers"`
	Retries  int      `json:"retries"`
	// Flow is the flow control a function declares, one phrase per
	// setting ("concurrency 5", "throttle 10/1m0s"); the definition itself
	// is the app's config.
	Flow []string `json:"flow"`
}

// listFunctions lists every registered function, by app.
func (s *Server) listFunctions(c echo.Context) error {
	apps, err := s.fsm.Apps()
	if err != nil {
		return err
	}
	out := []functionView{}
	for _, a := range apps {
		for _, id := range a.Functions {
			fn, err := s.fsm.Function(id)
			if err != nil {
				return err
			}
			if fn != nil {
				out = append(out, viewFunction(fn))
			}
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

func viewFunction(fn *fsm.Function) functionView {
	v := functionView{ID: fn.ID, ShortID: strings.TrimPrefix(fn.ID, fn.AppID+"-"), Name: fn.Name, AppID: fn.AppID,
		Retries: fn.MaxAttempts() - 1, Triggers: []string{}, Flow: flowSummary(&fn.FunctionDef)}
	for _, t := range fn.Triggers {
		switch {
		case t.Cron != "":
			v.Triggers = append(v.Triggers, "cron "+t.Cron)
		case t.Expression != "":
			v.Triggers = append(v.Triggers, "event "+t.Event+" if "+t.Expression)
		default:
			v.Triggers = append(v.Triggers, "event "+t.Event)
		}
	}
	return v
}

// flowSummary phrases a function's flow control settings.
func flowSummary(d *fsm.FunctionDef) []string {
	out := []string{}
	keyed := func(s, key string) string {
		if key != "" {
			return s + " by " + key
		}
		return s
	}
	ms := func(v int64) string { return (time.Duration(v) * time.Millisecond).String() }
	for _, c := range d.Concurrency {
		s := fmt.Sprintf("concurrency %d", c.Limit)
		if c.Scope != "" && c.Scope != "fn" {
			s += " (" + c.Scope + ")"
		}
		out = append(out, keyed(s, c.Key))
	}
	if t := d.Throttle; t != nil {
		s := fmt.Sprintf("throttle %d/%s", t.Limit, ms(t.PeriodMs))
		// Stored as GCRA's burst (fsm.Throttle): limit×burst − 1.
		if b := (t.Burst + 1) / max(t.Limit, 1); b > 1 {
			s += fmt.Sprintf(" burst %d", b)
		}
		out = append(out, keyed(s, t.Key))
	}
	if r := d.RateLimit; r != nil {
		out = append(out, keyed(fmt.Sprintf("rate limit %d/%s", r.Limit, ms(r.PeriodMs)), r.Key))
	}
	if b := d.Debounce; b != nil {
		out = append(out, keyed("debounce "+ms(b.PeriodMs), b.Key))
	}
	if b := d.Batch; b != nil {
		out = append(out, keyed(fmt.Sprintf("batch %d/%s", b.MaxSize, ms(b.TimeoutMs)), b.Key))
	}
	if d.Priority != "" {
		out = append(out, "priority "+d.Priority)
	}
	if sg := d.Singleton; sg != nil {
		out = append(out, keyed("singleton "+sg.Mode, sg.Key))
	}
	if d.Idempotency != "" {
		out = append(out, "idempotency "+d.Idempotency)
	}
	if len(d.Cancel) > 0 {
		out = append(out, fmt.Sprintf("cancel on %d event(s)", len(d.Cancel)))
	}
	return out
}

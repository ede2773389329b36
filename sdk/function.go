package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/sdk/protocol"
)

// Trigger starts a function: an event or a cron schedule. Combine several
// with Triggers.
type Trigger interface{ triggers() []trigger }

type trigger struct {
	Event      string `json:"event,omitempty"`
	Expression string `json:"expression,omitempty"`
	Cron       string `json:"cron,omitempty"`
}

type triggerList []trigger

func (l triggerList) triggers() []trigger { return l }

// EventTrigger starts the function on each event named name. An optional
// expression filters them (e.g. "event.data.plan != 'free'").
func EventTrigger(name string, expression ...string) Trigger {
	return triggerList{{Event: name, Expression: strings.Join(expression, " && ")}}
}

// CronTrigger starts the function on a schedule: five cron fields,
// optionally prefixed "TZ=Europe/Paris ".
func CronTrigger(schedule string) Trigger { return triggerList{{Cron: schedule}} }

// Triggers combines triggers; a function may have up to 10.
func Triggers(ts ...Trigger) Trigger {
	var all triggerList
	for _, t := range ts {
		if t != nil {
			all = append(all, t.triggers()...)
		}
	}
	return all
}

// FunctionOpts configures a function; the flow-control fields mirror the
// TS SDK's options of the same names.
type FunctionOpts struct {
	ID   string // unique within the app
	Name string // shown in the UI; defaults to ID
	// Retries is the number of retries per step (and of the function's own
	// code between steps); nil means the server's default, 4.
	Retries     *int
	Concurrency []Concurrency
	Throttle    *Throttle
	RateLimit   *RateLimit
	Debounce    *Debounce
	BatchEvents *BatchEvents
	Priority    *Priority
	Singleton   *Singleton
	Timeouts    *Timeouts
	CancelOn    []Cancel
	// Idempotency is an expression: one run per distinct value in 24 h.
	Idempotency string
	// OnFailure runs, as its own function, after a run of this one fails
	// for good.
	OnFailure func(ctx context.Context, in Input[FailureData]) (any, error)
}

// Retries is a helper for FunctionOpts.Retries.
func Retries(n int) *int { return &n }

// Concurrency limits how many steps run at once, per key and scope.
type Concurrency struct {
	Limit int    `json:"limit"`
	Key   string `json:"key,omitempty"`
	Scope string `json:"scope,omitempty"` // "fn" (default), "env" or "account"
}

// Throttle limits how many runs start per period, per key; excess runs wait.
type Throttle struct {
	Limit  int           `json:"limit"`
	Period time.Duration `json:"-"`
	Key    string        `json:"key,omitempty"`
	Burst  int           `json:"burst,omitempty"`
}

// RateLimit drops runs beyond Limit per Period, per key.
type RateLimit struct {
	Limit  int           `json:"limit"`
	Period time.Duration `json:"-"`
	Key    string        `json:"key,omitempty"`
}

// Debounce delays a run until no matching event came for Period; Timeout
// caps the delay.
type Debounce struct {
	Period  time.Duration `json:"-"`
	Key     string        `json:"key,omitempty"`
	Timeout time.Duration `json:"-"`
}

// BatchEvents starts one run per MaxSize events, or after Timeout.
type BatchEvents struct {
	MaxSize int           `json:"maxSize"`
	Timeout time.Duration `json:"-"`
	Key     string        `json:"key,omitempty"`
	If      string        `json:"if,omitempty"`
}

// Priority moves runs up or down the queue: Run is an expression giving
// seconds (-600 to 600).
type Priority struct {
	Run string `json:"run"`
}

// Singleton allows one run per key at a time: Mode "skip" drops new runs,
// "cancel" cancels the running one.
type Singleton struct {
	Key  string `json:"key,omitempty"`
	Mode string `json:"mode"`
}

// Timeouts cancel a run that waits too long to start (Start) or runs too
// long once started (Finish).
type Timeouts struct {
	Start  time.Duration
	Finish time.Duration
}

// Cancel cancels running runs when a matching event arrives. If compares
// the run's event (event) with the new one (async).
type Cancel struct {
	Event   string
	If      string
	Timeout time.Duration
}

// Function is a function registered on a client.
type Function struct {
	client   *Client
	opts     FunctionOpts
	triggers []trigger
	call     func(ctx context.Context, body *protocol.CallRequest) (any, error)
}

// ID is the function's id in its app, as given.
func (f *Function) ID() string { return f.opts.ID }

// FullID is the id the server knows it by: "<app id>-<id>". step.Invoke takes it.
func (f *Function) FullID() string { return f.client.appID + "-" + f.opts.ID }

// CreateFunction registers a function on client. Its handler gets the
// triggering events decoded as E and returns a result of type R (sent as
// JSON) or an error.
func CreateFunction[E, R any](c *Client, opts FunctionOpts, on Trigger, handler func(ctx context.Context, in Input[E]) (R, error)) (*Function, error) {
	if opts.ID == "" {
		return nil, errors.New("sdk: a function needs an ID")
	}
	var ts []trigger
	if on != nil {
		ts = on.triggers()
	}
	if len(ts) > 10 {
		return nil, fmt.Errorf("sdk: function %q has %d triggers; the limit is 10", opts.ID, len(ts))
	}
	f := &Function{client: c, opts: opts, triggers: ts}
	f.call = func(ctx context.Context, body *protocol.CallRequest) (any, error) {
		in, err := decodeInput[E](body)
		if err != nil {
			return nil, NonRetriable(err)
		}
		return handler(ctx, in)
	}
	if err := c.add(f); err != nil {
		return nil, err
	}
	if opts.OnFailure != nil {
		failure := &Function{
			client: c,
			opts:   FunctionOpts{ID: opts.ID + "-failure", Name: f.name() + " (failure)", Retries: Retries(1)},
			triggers: []trigger{{
				Event:      "inngest/function.failed",
				Expression: "event.data.function_id == '" + f.FullID() + "'",
			}},
		}
		onFailure := opts.OnFailure
		failure.call = func(ctx context.Context, body *protocol.CallRequest) (any, error) {
			in, err := decodeInput[FailureData](body)
			if err != nil {
				return nil, NonRetriable(err)
			}
			return onFailure(ctx, in)
		}
		if err := c.add(failure); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (f *Function) name() string {
	if f.opts.Name != "" {
		return f.opts.Name
	}
	return f.opts.ID
}

func decodeInput[E any](body *protocol.CallRequest) (Input[E], error) {
	in := Input[E]{RunID: body.Ctx.RunID, Attempt: body.Ctx.Attempt}
	if len(body.Event) > 0 {
		if err := json.Unmarshal(body.Event, &in.Event); err != nil {
			return in, fmt.Errorf("decoding the event: %w", err)
		}
	}
	for _, raw := range body.Events {
		var e Event[E]
		if err := json.Unmarshal(raw, &e); err != nil {
			return in, fmt.Errorf("decoding the events: %w", err)
		}
		in.Events = append(in.Events, e)
	}
	if len(in.Events) == 0 && len(body.Event) > 0 {
		in.Events = []Event[E]{in.Event}
	}
	return in, nil
}

// config is the function as the register body describes it (protocol note §3.4).
func (f *Function) config(stepURL string) map[string]any {
	triggers := f.triggers
	if triggers == nil {
		triggers = []trigger{}
	}
	step := map[string]any{
		"id": "step", "name": "step",
		"runtime": map[string]any{"type": "http", "url": stepURL},
	}
	if f.opts.Retries != nil {
		step["retries"] = map[string]any{"attempts": *f.opts.Retries}
	}
	c := map[string]any{
		"id":       f.FullID(),
		"name":     f.name(),
		"triggers": triggers,
		"steps":    map[string]any{"step": step},
	}
	o := f.opts
	switch len(o.Concurrency) {
	case 0:
	case 1:
		if o.Concurrency[0].Key == "" && o.Concurrency[0].Scope == "" {
			c["concurrency"] = o.Concurrency[0].Limit
		} else {
			c["concurrency"] = o.Concurrency
		}
	default:
		c["concurrency"] = o.Concurrency
	}
	if t := o.Throttle; t != nil {
		c["throttle"] = withPeriod(t, "period", t.Period)
	}
	if r := o.RateLimit; r != nil {
		c["rateLimit"] = withPeriod(r, "period", r.Period)
	}
	if d := o.Debounce; d != nil {
		m := withPeriod(d, "period", d.Period)
		if d.Timeout > 0 {
			m["timeout"] = TimeString(d.Timeout)
		}
		c["debounce"] = m
	}
	if b := o.BatchEvents; b != nil {
		c["batchEvents"] = withPeriod(b, "timeout", b.Timeout)
	}
	if o.Priority != nil {
		c["priority"] = o.Priority
	}
	if o.Singleton != nil {
		c["singleton"] = o.Singleton
	}
	if t := o.Timeouts; t != nil {
		m := map[string]string{}
		if t.Start > 0 {
			m["start"] = TimeString(t.Start)
		}
		if t.Finish > 0 {
			m["finish"] = TimeString(t.Finish)
		}
		c["timeouts"] = m
	}
	if o.Idempotency != "" {
		c["idempotency"] = o.Idempotency
	}
	if len(o.CancelOn) > 0 {
		var cs []map[string]string
		for _, x := range o.CancelOn {
			m := map[string]string{"event": x.Event}
			if x.If != "" {
				m["if"] = x.If
			}
			if x.Timeout > 0 {
				m["timeout"] = TimeString(x.Timeout)
			}
			cs = append(cs, m)
		}
		c["cancel"] = cs
	}
	return c
}

// withPeriod is v's JSON fields plus a time string under name.
func withPeriod(v any, name string, d time.Duration) map[string]any {
	b, _ := json.Marshal(v)
	m := map[string]any{}
	json.Unmarshal(b, &m)
	if d > 0 {
		m[name] = TimeString(d)
	}
	return m
}

// TimeString writes d the way the SDKs send durations: weeks, days, hours,
// minutes and seconds ("1w", "1h30m"), rounded up to whole seconds.
func TimeString(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs <= 0 {
		return "1s"
	}
	var b strings.Builder
	for _, u := range []struct {
		unit string
		secs int64
	}{{"w", 7 * 86400}, {"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}} {
		if n := secs / u.secs; n > 0 {
			b.WriteString(strconv.FormatInt(n, 10) + u.unit)
			secs -= n * u.secs
		}
	}
	return b.String()
}

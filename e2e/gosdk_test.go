package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/sdk"
	"github.com/cairn-dev/cairn/sdk/step"
	"github.com/cairn-dev/cairn/server"
)

// The Go SDK (sdk/, a module of its own) end to end: an app built with it,
// served by httptest in this process, on a real in-process Cairn in every
// mode (dev and production, with and without async checkpointing). Every
// step tool and every flow-control option, with the observable checks of
// the TS suite (steps_test.go, flow_test.go). The app's step bodies count
// their executions in memory, and hold on gates the test opens, so nothing
// depends on how fast the machine is.

// goData is the data of every event the Go test app's functions take.
type goData struct {
	Key     string `json:"key,omitempty"`
	N       int    `json:"n,omitempty"`
	I       int    `json:"i,omitempty"`
	Fail    bool   `json:"fail,omitempty"`
	Gate    string `json:"gate,omitempty"`
	Until   string `json:"until,omitempty"`
	Value   string `json:"value,omitempty"`
	Batch   string `json:"batch,omitempty"`
	Plan    string `json:"plan,omitempty"`
	Timeout string `json:"timeout,omitempty"`
	Label   string `json:"label,omitempty"`
}

// goApp is the Go SDK test app and what its step bodies saw.
type goApp struct {
	URL    string
	client *sdk.Client

	mu          sync.Mutex
	execs       map[string]map[string]int // run id → step id → executions
	attempts    map[string][]int          // run id → Input.Attempt of each flaky execution
	retryAt     map[string]int64          // run id → unix ms the step asked to be retried at
	inflight    map[string]int            // concurrency key → step bodies running
	maxInflight map[string]int
	gates       map[string]*goGate
	order       []string // labels of prioritized runs, in the order their step started
}

// goGate holds a step body until the test opens it.
type goGate struct {
	enter, open     sync.Once
	entered, opened chan struct{}
}

func (a *goApp) gate(name string) *goGate {
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.gates[name]
	if g == nil {
		g = &goGate{entered: make(chan struct{}), opened: make(chan struct{})}
		a.gates[name] = g
	}
	return g
}

// hold is a step body's wait at the gate name.
func (a *goApp) hold(ctx context.Context, name string) {
	g := a.gate(name)
	g.enter.Do(func() { close(g.entered) })
	select {
	case <-g.opened:
	case <-ctx.Done():
	}
}

// waitEntered waits until a step body reached the gate.
func (a *goApp) waitEntered(t *testing.T, name string) {
	t.Helper()
	select {
	case <-a.gate(name).entered:
	case <-time.After(30 * time.Second):
		t.Fatalf("no step reached gate %s", name)
	}
}

func (a *goApp) release(name string) {
	g := a.gate(name)
	g.open.Do(func() { close(g.opened) })
}

// exec counts one execution of a step body and returns how many there were.
func (a *goApp) exec(runID, stepID string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.execs[runID] == nil {
		a.execs[runID] = map[string]int{}
	}
	a.execs[runID][stepID]++
	return a.execs[runID][stepID]
}

func (a *goApp) executions(runID string) map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.execs[runID])
}

// goTimeout reads a duration an event names, or def.
func goTimeout(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	return def
}

type jsonObj = map[string]any

// startGoApp serves the Go test app (id "goapp") on httptest, pointed at
// the Cairn at cairnURL, in production mode (signed) when prod is set.
func startGoApp(t *testing.T, cairnURL string, prod bool) *goApp {
	t.Helper()
	dev := !prod
	opts := sdk.ClientOpts{AppID: "goapp", Dev: &dev, BaseURL: cairnURL,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if prod {
		opts.SigningKey, opts.EventKey = prodSigningKey, prodEventKey
	}
	client, err := sdk.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	a := &goApp{client: client, execs: map[string]map[string]int{}, attempts: map[string][]int{},
		retryAt: map[string]int64{}, inflight: map[string]int{}, maxInflight: map[string]int{}, gates: map[string]*goGate{}}
	a.register(t)
	mux := http.NewServeMux()
	mux.Handle("/api/inngest", client.Serve())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		// Open every gate first: Close waits for the calls in flight.
		a.mu.Lock()
		names := make([]string, 0, len(a.gates))
		for n := range a.gates {
			names = append(names, n)
		}
		a.mu.Unlock()
		for _, n := range names {
			a.release(n)
		}
		srv.Close()
	})
	a.URL = srv.URL + "/api/inngest"
	return a
}

// goFn registers a function of the test app or fails the test.
func goFn[E, R any](t *testing.T, a *goApp, opts sdk.FunctionOpts, on sdk.Trigger, h func(context.Context, sdk.Input[E]) (R, error)) *sdk.Function {
	t.Helper()
	f, err := sdk.CreateFunction(a.client, opts, on, h)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (a *goApp) register(t *testing.T) {
	ev := sdk.EventTrigger
	type input = sdk.Input[goData]

	// --- step tools ---

	goFn(t, a, sdk.FunctionOpts{ID: "retry"}, ev("go/retry"), func(ctx context.Context, in input) (jsonObj, error) {
		if _, err := step.Run(ctx, "before", func(context.Context) (string, error) {
			a.exec(in.RunID, "before")
			return "ok", nil
		}); err != nil {
			return nil, err
		}
		flaky, err := step.Run(ctx, "flaky", func(context.Context) (string, error) {
			n := a.exec(in.RunID, "flaky")
			a.mu.Lock()
			a.attempts[in.RunID] = append(a.attempts[in.RunID], in.Attempt)
			a.mu.Unlock()
			if n <= 2 {
				return "", errors.New("boom")
			}
			return "recovered", nil
		})
		if err != nil {
			return nil, err
		}
		if _, err := step.Run(ctx, "after", func(context.Context) (string, error) {
			a.exec(in.RunID, "after")
			return "done", nil
		}); err != nil {
			return nil, err
		}
		return jsonObj{"flaky": flaky}, nil
	})

	goFn(t, a, sdk.FunctionOpts{ID: "non-retriable"}, ev("go/nonretriable"), func(ctx context.Context, in input) (jsonObj, error) {
		first, err := step.Run(ctx, "first", func(context.Context) (int, error) {
			a.exec(in.RunID, "first")
			return 1, nil
		})
		if err != nil {
			return nil, err
		}
		if _, err := step.Run(ctx, "fatal", func(context.Context) (int, error) {
			a.exec(in.RunID, "fatal")
			return 0, sdk.NonRetriable(errors.New("stop now"))
		}); err != nil {
			return nil, err
		}
		return jsonObj{"first": first}, nil // never reached
	})

	goFn(t, a, sdk.FunctionOpts{ID: "retry-after"}, ev("go/retryafter"), func(ctx context.Context, in input) (jsonObj, error) {
		ran, err := step.Run(ctx, "not-yet", func(context.Context) (int64, error) {
			if a.exec(in.RunID, "not-yet") == 1 {
				a.mu.Lock()
				a.retryAt[in.RunID] = time.Now().Add(2500 * time.Millisecond).UnixMilli()
				a.mu.Unlock()
				// Later than the default backoff's first retry (≤ 1.25 s).
				return 0, sdk.RetryAfter(errors.New("try again later"), 2500*time.Millisecond)
			}
			return time.Now().UnixMilli(), nil
		})
		if err != nil {
			return nil, err
		}
		return jsonObj{"ran": ran}, nil
	})

	// A step that keeps failing uses its one retry, then the function
	// catches its *sdk.StepError and carries on.
	goFn(t, a, sdk.FunctionOpts{ID: "caught-error", Retries: sdk.Retries(1)}, ev("go/caught"), func(ctx context.Context, in input) (jsonObj, error) {
		_, err := step.Run(ctx, "breaks", func(context.Context) (string, error) {
			a.exec(in.RunID, "breaks")
			return "", errors.New("service down")
		})
		var se *sdk.StepError
		if !errors.As(err, &se) {
			return nil, sdk.NonRetriable(errors.New("want a *sdk.StepError"))
		}
		then, err := step.Run(ctx, "fallback", func(context.Context) (string, error) {
			a.exec(in.RunID, "fallback")
			return "cached", nil
		})
		if err != nil {
			return nil, err
		}
		return jsonObj{"caught": se.Name, "message": se.Message, "then": then}, nil
	})

	goFn(t, a, sdk.FunctionOpts{ID: "fn-throws", Retries: sdk.Retries(1)}, ev("go/fnthrow"), func(ctx context.Context, in input) (string, error) {
		a.exec(in.RunID, "fn-throws")
		return "", errors.New("function level boom")
	})

	goFn(t, a, sdk.FunctionOpts{ID: "sleeper"}, ev("go/sleep"), func(ctx context.Context, in input) (int64, error) {
		if _, err := step.Run(ctx, "before", func(context.Context) (string, error) {
			a.exec(in.RunID, "before")
			return "before", nil
		}); err != nil {
			return 0, err
		}
		if err := step.Sleep(ctx, "nap", time.Second); err != nil {
			return 0, err
		}
		return step.Run(ctx, "after", func(context.Context) (int64, error) {
			a.exec(in.RunID, "after")
			return time.Now().UnixMilli(), nil
		})
	})

	goFn(t, a, sdk.FunctionOpts{ID: "sleep-until"}, ev("go/sleepuntil"), func(ctx context.Context, in input) (int64, error) {
		until, err := time.Parse(time.RFC3339Nano, in.Event.Data.Until)
		if err != nil {
			return 0, sdk.NonRetriable(err)
		}
		if err := step.SleepUntil(ctx, "until", until); err != nil {
			return 0, err
		}
		return step.Run(ctx, "woke", func(context.Context) (int64, error) { return time.Now().UnixMilli(), nil })
	})

	goFn(t, a, sdk.FunctionOpts{ID: "waiter"}, ev("go/wait"), func(ctx context.Context, in input) (jsonObj, error) {
		reply, err := step.WaitForEvent[goData](ctx, "wait-for-reply", step.WaitForEventOpts{
			Event: "go/reply", Timeout: goTimeout(in.Event.Data.Timeout, 20*time.Second),
			If: "async.data.key == event.data.key",
		})
		if errors.Is(err, step.ErrEventNotReceived) {
			return jsonObj{"got": nil}, nil
		}
		if err != nil {
			return nil, err
		}
		return jsonObj{"got": reply.Data.Value}, nil
	})

	goFn(t, a, sdk.FunctionOpts{ID: "signal-waiter"}, ev("go/signal"), func(ctx context.Context, in input) (jsonObj, error) {
		sig, err := step.WaitForSignal[map[string]any](ctx, "wait-for-signal", step.WaitForSignalOpts{
			Signal: "go-sig-" + in.Event.Data.Key, Timeout: goTimeout(in.Event.Data.Timeout, 20*time.Second),
		})
		if errors.Is(err, step.ErrSignalNotReceived) {
			return jsonObj{"sig": nil}, nil
		}
		if err != nil {
			return nil, err
		}
		return jsonObj{"sig": sig}, nil
	})

	goFn(t, a, sdk.FunctionOpts{ID: "signaller"}, ev("go/signal.send"), func(ctx context.Context, in input) (jsonObj, error) {
		resumed, err := step.SendSignal(ctx, "notify", "go-sig-"+in.Event.Data.Key, jsonObj{"from": "signaller"})
		if err != nil {
			return nil, err
		}
		nobody, err := step.SendSignal(ctx, "notify-nobody", "go-sig-nobody-"+in.Event.Data.Key, nil)
		if err != nil {
			return nil, err
		}
		return jsonObj{"resumed": resumed, "nobody": nobody}, nil
	})

	child := goFn(t, a, sdk.FunctionOpts{ID: "child", Retries: sdk.Retries(0)}, nil, func(ctx context.Context, in input) (jsonObj, error) {
		if in.Event.Data.Fail {
			return nil, sdk.NonRetriable(errors.New("child failed"))
		}
		return step.Run(ctx, "double", func(context.Context) (jsonObj, error) {
			return jsonObj{"doubled": in.Event.Data.N * 2}, nil
		})
	})

	goFn(t, a, sdk.FunctionOpts{ID: "invoker"}, ev("go/invoke"), func(ctx context.Context, in input) (jsonObj, error) {
		r, err := step.Invoke[map[string]int](ctx, "call-child", step.InvokeOpts{
			Function: child, Data: jsonObj{"n": in.Event.Data.N, "fail": in.Event.Data.Fail}, Timeout: 30 * time.Second,
		})
		var se *sdk.StepError
		if errors.As(err, &se) {
			return jsonObj{"error": se.Message}, nil
		}
		if err != nil {
			return nil, err
		}
		return jsonObj{"ok": r}, nil
	})

	goFn(t, a, sdk.FunctionOpts{ID: "fan-out"}, ev("go/fanout"), func(ctx context.Context, in input) (jsonObj, error) {
		ids, err := step.SendEvent(ctx, "fan",
			sdk.Event[jsonObj]{Name: "go/fanout.item", Data: jsonObj{"i": 1, "batch": in.Event.Data.Batch}},
			sdk.Event[jsonObj]{Name: "go/fanout.item", Data: jsonObj{"i": 2, "batch": in.Event.Data.Batch}})
		if err != nil {
			return nil, err
		}
		return jsonObj{"ids": ids}, nil
	})

	goFn(t, a, sdk.FunctionOpts{ID: "fan-item"}, ev("go/fanout.item"), func(ctx context.Context, in input) (int, error) {
		return step.Run(ctx, "item", func(context.Context) (int, error) { return in.Event.Data.I, nil })
	})

	goFn(t, a, sdk.FunctionOpts{ID: "parallel"}, ev("go/parallel"), func(ctx context.Context, in input) (jsonObj, error) {
		var x, y string
		provision := func(id, v string, into *string) func(context.Context) error {
			return func(ctx context.Context) (err error) {
				*into, err = step.Run(ctx, id, func(context.Context) (string, error) {
					a.exec(in.RunID, id)
					return v, nil
				})
				return err
			}
		}
		if err := step.Parallel(ctx, provision("provision-a", "A", &x), provision("provision-b", "B", &y)); err != nil {
			return nil, err
		}
		combined, err := step.Run(ctx, "combine", func(context.Context) (string, error) {
			a.exec(in.RunID, "combine")
			return x + y, nil
		})
		if err != nil {
			return nil, err
		}
		return jsonObj{"combined": combined}, nil
	})

	// The reply is sent by the run itself, in parallel with the wait: the
	// engine registers the wait before it runs the send.
	goFn(t, a, sdk.FunctionOpts{ID: "race-waiter"}, ev("go/race"), func(ctx context.Context, in input) (jsonObj, error) {
		var reply sdk.Event[goData]
		err := step.Parallel(ctx,
			func(ctx context.Context) (err error) {
				reply, err = step.WaitForEvent[goData](ctx, "wait-for-own-reply", step.WaitForEventOpts{
					Event: "go/race.reply", Timeout: 20 * time.Second, If: "async.data.key == event.data.key",
				})
				return err
			},
			func(ctx context.Context) error {
				_, err := step.SendEvent(ctx, "send-own-reply", sdk.Event[jsonObj]{Name: "go/race.reply", Data: jsonObj{"key": in.Event.Data.Key}})
				return err
			})
		if errors.Is(err, step.ErrEventNotReceived) {
			return jsonObj{"got": nil}, nil
		}
		if err != nil {
			return nil, err
		}
		return jsonObj{"got": reply.Data.Key}, nil
	})

	// One step id used in a loop: each use is its own step (id, id:1, ...).
	goFn(t, a, sdk.FunctionOpts{ID: "loop"}, ev("go/loop"), func(ctx context.Context, in input) ([]int, error) {
		out := []int{}
		for i := range 3 {
			v, err := step.Run(ctx, "item", func(context.Context) (int, error) {
				a.exec(in.RunID, "item")
				return 10 * i, nil
			})
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	})

	// --- flow control ---

	// work is a step that counts the bodies running per key, and holds at
	// the event's gate if it names one.
	work := func(ctx context.Context, in input) (string, error) {
		return step.Run(ctx, "work", func(ctx context.Context) (string, error) {
			d := in.Event.Data
			a.mu.Lock()
			a.inflight[d.Key]++
			a.maxInflight[d.Key] = max(a.maxInflight[d.Key], a.inflight[d.Key])
			if d.Label != "" {
				a.order = append(a.order, d.Label)
			}
			a.mu.Unlock()
			if d.Gate != "" {
				a.hold(ctx, d.Gate)
			} else {
				time.Sleep(100 * time.Millisecond)
			}
			a.mu.Lock()
			a.inflight[d.Key]--
			a.mu.Unlock()
			return d.Key, nil
		})
	}

	goFn(t, a, sdk.FunctionOpts{ID: "conc", Concurrency: []sdk.Concurrency{{Limit: 1, Key: "event.data.key"}}}, ev("go/conc"), work)

	goFn(t, a, sdk.FunctionOpts{ID: "throttled", Throttle: &sdk.Throttle{Limit: 2, Period: 4 * time.Second, Key: "event.data.key"}},
		ev("go/throttle"), func(ctx context.Context, in input) (string, error) {
			return step.Run(ctx, "go", func(context.Context) (string, error) { return in.Event.Data.Key, nil })
		})

	goFn(t, a, sdk.FunctionOpts{ID: "rate-limited", RateLimit: &sdk.RateLimit{Limit: 1, Period: time.Minute, Key: "event.data.key"}},
		ev("go/ratelimit"), func(ctx context.Context, in input) (string, error) {
			return step.Run(ctx, "go", func(context.Context) (string, error) { return in.Event.Data.Key, nil })
		})

	goFn(t, a, sdk.FunctionOpts{ID: "debounced", Debounce: &sdk.Debounce{Period: 2 * time.Second, Key: "event.data.key"}},
		ev("go/debounce"), func(ctx context.Context, in input) (int, error) {
			return step.Run(ctx, "go", func(context.Context) (int, error) { return in.Event.Data.N, nil })
		})

	goFn(t, a, sdk.FunctionOpts{ID: "batched", BatchEvents: &sdk.BatchEvents{MaxSize: 3, Timeout: 10 * time.Second}},
		ev("go/batch"), func(ctx context.Context, in input) ([]int, error) {
			return step.Run(ctx, "go", func(context.Context) ([]int, error) {
				ns := []int{}
				for _, e := range in.Events {
					ns = append(ns, e.Data.N)
				}
				return ns, nil
			})
		})

	goFn(t, a, sdk.FunctionOpts{ID: "prioritized", Concurrency: []sdk.Concurrency{{Limit: 1}},
		Priority: &sdk.Priority{Run: "event.data.label == 'vip' ? 600 : 0"}}, ev("go/priority"), work)

	for _, mode := range []string{"skip", "cancel"} {
		goFn(t, a, sdk.FunctionOpts{ID: "singleton-" + mode, Singleton: &sdk.Singleton{Key: "event.data.key", Mode: mode}},
			ev("go/singleton."+mode), func(ctx context.Context, in input) (string, error) {
				if err := step.Sleep(ctx, "hold", time.Second); err != nil {
					return "", err
				}
				return "ran " + in.Event.Data.Label, nil
			})
	}

	goFn(t, a, sdk.FunctionOpts{ID: "cancellable", CancelOn: []sdk.Cancel{{Event: "go/cancel.it", If: "async.data.key == event.data.key"}}},
		ev("go/cancellable"), func(ctx context.Context, in input) (string, error) {
			if _, err := step.Run(ctx, "first", func(context.Context) (int, error) { return a.exec(in.RunID, "first"), nil }); err != nil {
				return "", err
			}
			if err := step.Sleep(ctx, "long-nap", 2*time.Second); err != nil {
				return "", err
			}
			if _, err := step.Run(ctx, "second", func(context.Context) (int, error) { return a.exec(in.RunID, "second"), nil }); err != nil {
				return "", err
			}
			return "not cancelled", nil
		})

	goFn(t, a, sdk.FunctionOpts{ID: "times-out", Timeouts: &sdk.Timeouts{Finish: time.Second}},
		ev("go/timeout"), func(ctx context.Context, in input) (string, error) {
			if _, err := step.Run(ctx, "first", func(context.Context) (int, error) { return a.exec(in.RunID, "first"), nil }); err != nil {
				return "", err
			}
			if err := step.Sleep(ctx, "too-long", 3*time.Second); err != nil {
				return "", err
			}
			if _, err := step.Run(ctx, "never", func(context.Context) (int, error) { return a.exec(in.RunID, "never"), nil }); err != nil {
				return "", err
			}
			return "finished", nil
		})

	goFn(t, a, sdk.FunctionOpts{ID: "start-timeout", Concurrency: []sdk.Concurrency{{Limit: 1}}, Timeouts: &sdk.Timeouts{Start: time.Second}},
		ev("go/timeout.start"), work)

	goFn(t, a, sdk.FunctionOpts{ID: "idempotent", Idempotency: "event.data.key"}, ev("go/idem"), func(ctx context.Context, in input) (string, error) {
		return step.Run(ctx, "once", func(context.Context) (string, error) { return in.Event.Data.Key, nil })
	})

	goFn(t, a, sdk.FunctionOpts{ID: "filtered"}, ev("go/filtered", "event.data.plan != 'free'"), func(ctx context.Context, in input) (string, error) {
		return step.Run(ctx, "paid", func(context.Context) (string, error) { return in.Event.Data.Plan, nil })
	})

	goFn(t, a, sdk.FunctionOpts{
		ID: "fails-with-handler", Retries: sdk.Retries(0),
		OnFailure: func(ctx context.Context, in sdk.Input[sdk.FailureData]) (any, error) {
			return step.Run(ctx, "report", func(context.Context) (jsonObj, error) {
				d := in.Event.Data
				return jsonObj{"fn": d.FunctionID, "run": d.RunID, "msg": d.Error.Message, "event": d.Event.Name}, nil
			})
		},
	}, ev("go/fail.handled"), func(ctx context.Context, in input) (string, error) {
		return step.Run(ctx, "doomed", func(context.Context) (string, error) {
			return "", sdk.NonRetriable(errors.New("doomed on purpose"))
		})
	})

	type cronData struct {
		ScheduledAt string `json:"scheduledAt"`
	}
	goFn(t, a, sdk.FunctionOpts{ID: "cron-fn"}, sdk.CronTrigger("TZ=Europe/Paris 0 3 * * *"),
		func(ctx context.Context, in sdk.Input[cronData]) (string, error) {
			return step.Run(ctx, "tick", func(context.Context) (string, error) { return in.Event.Data.ScheduledAt, nil })
		})
}

// cronClock is the cron clock of a suite's Cairn: 02:59 in Paris until a
// test moves it.
type cronClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *cronClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *cronClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

var parisTZ, _ = time.LoadLocation("Europe/Paris")

func TestGoSDK(t *testing.T) { inModes(t, testGoSDK) }

// goTest is one check of the Go SDK suite.
type goTest struct {
	name string
	run  func(t *testing.T, c client, app *goApp, clock *cronClock)
}

func testGoSDK(t *testing.T, opts ...func(*server.Config)) {
	clock := &cronClock{now: time.Date(2026, 3, 10, 2, 59, 0, 0, parisTZ)}
	opts = append(opts, func(cfg *server.Config) { cfg.CronClock, cfg.CronTick = clock.Now, 50*time.Millisecond })
	srv, c := startCairn(t, opts...)
	app := startGoApp(t, srv.URL(), c.bearer != "")
	srv.Syncer.Add(app.URL)
	c.waitSynced("goapp", 60*time.Second)

	// The checks are independent (each its own functions and events), and
	// mostly wait: they run at once, each in its own subtest.
	var wg sync.WaitGroup
	for _, tc := range goSDKTests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(tc.name, func(t *testing.T) {
				c := c
				c.t = t
				tc.run(t, c, app, clock)
			})
		}()
	}
	wg.Wait()
}

var goSDKTests = []goTest{
	{"Registered", testGoRegistered},
	{"RunRetriesAStep", testGoRunRetries},
	{"NonRetriableFailsAtOnce", testGoNonRetriable},
	{"RetryAfter", testGoRetryAfter},
	{"CaughtStepError", testGoCaughtStepError},
	{"FunctionErrorRetriedThenFails", testGoFunctionError},
	{"Sleep", testGoSleep},
	{"SleepUntil", testGoSleepUntil},
	{"WaitForEventMatches", testGoWaitForEventMatches},
	{"WaitForEventTimesOut", testGoWaitForEventTimesOut},
	{"WaitForSignal", testGoWaitForSignal},
	{"WaitForSignalTimesOut", testGoWaitForSignalTimesOut},
	{"SendSignalStep", testGoSendSignalStep},
	{"InvokeResult", testGoInvokeResult},
	{"InvokeError", testGoInvokeError},
	{"SendEventFansOut", testGoSendEvent},
	{"Parallel", testGoParallel},
	{"RepeatedStepIDs", testGoLoop},
	{"ClientSend", testGoClientSend},
	{"ParallelWaitAndOwnReply", testGoParallelWait},
	{"ConcurrencyPerKey", testGoConcurrency},
	{"Throttle", testGoThrottle},
	{"RateLimit", testGoRateLimit},
	{"Debounce", testGoDebounce},
	{"BatchEvents", testGoBatch},
	{"Priority", testGoPriority},
	{"SingletonSkip", testGoSingletonSkip},
	{"SingletonCancel", testGoSingletonCancel},
	{"CancelOn", testGoCancelOn},
	{"FinishTimeout", testGoFinishTimeout},
	{"StartTimeout", testGoStartTimeout},
	{"Idempotency", testGoIdempotency},
	{"TriggerIf", testGoTriggerIf},
	{"OnFailure", testGoOnFailure},
	{"Cron", testGoCron},
}

// historyCounts counts a run's history entries by type.
func (c client) historyCounts(runID string) map[string]int {
	c.t.Helper()
	out := map[string]int{}
	for _, h := range c.history(runID) {
		out[h.Type]++
	}
	return out
}

// The register body carries every option as the server reads it.
func testGoRegistered(t *testing.T, c client, _ *goApp, _ *cronClock) {
	var out struct {
		Data []functionInfo `json:"data"`
	}
	if code, err := c.do("GET", "/v1/functions", nil, &out); err != nil || code != 200 {
		t.Fatalf("functions: %d %v", code, err)
	}
	got := map[string]functionInfo{}
	for _, f := range out.Data {
		if f.AppID == "goapp" {
			got[f.ID] = f
		}
	}
	for id, want := range map[string]string{
		"conc":               "concurrency 1 by event.data.key",
		"throttled":          "throttle 2/4s by event.data.key",
		"rate-limited":       "rate limit 1/1m0s by event.data.key",
		"debounced":          "debounce 2s by event.data.key",
		"batched":            "batch 3/10s",
		"prioritized":        "concurrency 1,priority event.data.label == 'vip' ? 600 : 0",
		"singleton-skip":     "singleton skip by event.data.key",
		"singleton-cancel":   "singleton cancel by event.data.key",
		"idempotent":         "idempotency event.data.key",
		"cancellable":        "cancel on 1 event(s)",
		"fails-with-handler": "",
	} {
		f, ok := got["goapp-"+id]
		if !ok {
			t.Errorf("function goapp-%s is not registered", id)
			continue
		}
		if flow := strings.Join(f.Flow, ","); flow != want {
			t.Errorf("goapp-%s: flow %q, want %q", id, flow, want)
		}
	}
	for id, want := range map[string]string{
		"cron-fn":                    "cron TZ=Europe/Paris 0 3 * * *",
		"filtered":                   "event go/filtered if event.data.plan != 'free'",
		"fails-with-handler-failure": "event inngest/function.failed if event.data.function_id == 'goapp-fails-with-handler'",
		"child":                      "",
	} {
		if f := got["goapp-"+id]; strings.Join(f.Triggers, ",") != want {
			t.Errorf("goapp-%s: triggers %q, want %q", id, f.Triggers, want)
		}
	}
	if r := got["goapp-caught-error"].Retries; r != 1 {
		t.Errorf("goapp-caught-error: %d retries, want 1", r)
	}
	if r := got["goapp-retry"].Retries; r != 4 {
		t.Errorf("goapp-retry: %d retries, want the default 4", r)
	}
}

type functionInfo struct {
	ID       string   `json:"id"`
	AppID    string   `json:"app_id"`
	Triggers []string `json:"triggers"`
	Retries  int      `json:"retries"`
	Flow     []string `json:"flow"`
}

// A failing step is retried alone, with its attempt number, until it succeeds.
func testGoRunRetries(t *testing.T, c client, app *goApp, _ *cronClock) {
	r := c.waitRun(c.send("go/retry", nil), 60*time.Second)
	mustOutput(t, r, `{"flaky":"recovered"}`)
	if ex := app.executions(r.ID); ex["before"] != 1 || ex["flaky"] != 3 || ex["after"] != 1 {
		t.Errorf("executions %v: want before=1 flaky=3 after=1", ex)
	}
	app.mu.Lock()
	attempts := slices.Clone(app.attempts[r.ID])
	app.mu.Unlock()
	if !slices.Equal(attempts, []int{0, 1, 2}) {
		t.Errorf("the flaky step saw attempts %v, want [0 1 2]", attempts)
	}
	if n := c.historyCounts(r.ID)["step.errored"]; n != 2 {
		t.Errorf("history has %d step.errored entries, want 2", n)
	}
}

func testGoNonRetriable(t *testing.T, c client, app *goApp, _ *cronClock) {
	r := c.waitRun(c.send("go/nonretriable", nil), 60*time.Second)
	if r.Status != "failed" || !strings.Contains(string(r.Error), "stop now") {
		t.Fatalf("status %s error %s", r.Status, r.Error)
	}
	if ex := app.executions(r.ID); ex["first"] != 1 || ex["fatal"] != 1 {
		t.Errorf("executions %v: want first=1 fatal=1", ex)
	}
	h := c.historyCounts(r.ID)
	if h["step.errored"] != 0 || h["step.failed"] != 1 {
		t.Errorf("history %v: want one step.failed and no retry", h)
	}
}

// RetryAfter moves the step's next attempt: never before the time it asked.
func testGoRetryAfter(t *testing.T, c client, app *goApp, _ *cronClock) {
	r := c.waitRun(c.send("go/retryafter", nil), 60*time.Second)
	var out struct {
		Ran int64 `json:"ran"`
	}
	if r.Status != "completed" || json.Unmarshal(r.Output, &out) != nil {
		t.Fatalf("status %s output %s error %s", r.Status, r.Output, r.Error)
	}
	app.mu.Lock()
	at := app.retryAt[r.ID]
	app.mu.Unlock()
	if at == 0 || out.Ran < at {
		t.Errorf("the retry ran at %d, before the time the step asked for (%d)", out.Ran, at)
	}
	if ex := app.executions(r.ID); ex["not-yet"] != 2 {
		t.Errorf("executions %v: want not-yet=2", ex)
	}
}

func testGoCaughtStepError(t *testing.T, c client, app *goApp, _ *cronClock) {
	r := c.waitRun(c.send("go/caught", nil), 60*time.Second)
	mustOutput(t, r, `{"caught":"Error","message":"service down","then":"cached"}`)
	if ex := app.executions(r.ID); ex["breaks"] != 2 || ex["fallback"] != 1 {
		t.Errorf("executions %v: want breaks=2 (retries: 1) fallback=1", ex)
	}
	if h := c.historyCounts(r.ID); h["step.errored"] != 1 || h["step.failed"] != 1 {
		t.Errorf("history %v: want one step.errored then one step.failed", h)
	}
}

// An error the function returns (not a step's) is retried as a whole.
func testGoFunctionError(t *testing.T, c client, app *goApp, _ *cronClock) {
	r := c.waitRun(c.send("go/fnthrow", nil), 60*time.Second)
	if r.Status != "failed" || !strings.Contains(string(r.Error), "function level boom") {
		t.Fatalf("status %s error %s", r.Status, r.Error)
	}
	if n := app.executions(r.ID)["fn-throws"]; n != 2 {
		t.Errorf("the function ran %d times, want 2 (retries: 1)", n)
	}
	if n := c.historyCounts(r.ID)["call.claimed"]; n != 2 {
		t.Errorf("function called %d times, want 2", n)
	}
}

func testGoSleep(t *testing.T, c client, app *goApp, _ *cronClock) {
	r := c.waitRun(c.send("go/sleep", nil), 60*time.Second)
	if r.Status != "completed" {
		t.Fatalf("status %s error %s", r.Status, r.Error)
	}
	var until, woke int64
	for _, h := range c.history(r.ID) {
		switch h.Type {
		case "step.sleeping":
			_, ms, _ := strings.Cut(h.Detail, " until ")
			json.Unmarshal([]byte(ms), &until)
		case "step.woke":
			woke = h.At
		}
	}
	var after int64
	json.Unmarshal(r.Output, &after)
	if until == 0 || woke < until || after < until {
		t.Errorf("sleep until %d: woke at %d, next step ran at %d", until, woke, after)
	}
	if ex := app.executions(r.ID); ex["before"] != 1 || ex["after"] != 1 {
		t.Errorf("executions %v: want before=1 after=1", ex)
	}
}

func testGoSleepUntil(t *testing.T, c client, _ *goApp, _ *cronClock) {
	until := time.Now().Add(1500 * time.Millisecond).UTC()
	r := c.waitRun(c.send("go/sleepuntil", jsonObj{"until": until.Format(time.RFC3339Nano)}), 60*time.Second)
	if r.Status != "completed" {
		t.Fatalf("status %s error %s", r.Status, r.Error)
	}
	for _, h := range c.history(r.ID) {
		if h.Type == "step.woke" && h.At < until.UnixMilli() {
			t.Errorf("woke at %d, before %d", h.At, until.UnixMilli())
		}
	}
	var woke int64
	if json.Unmarshal(r.Output, &woke); woke < until.UnixMilli() {
		t.Errorf("the step after the sleep ran at %d, before %d", woke, until.UnixMilli())
	}
}

func testGoWaitForEventMatches(t *testing.T, c client, _ *goApp, _ *cronClock) {
	ev := c.send("go/wait", jsonObj{"key": "k1"})
	c.waitHistory(c.runOf(ev), "step.waiting.event")
	c.send("go/reply", jsonObj{"key": "other", "value": "not me"})
	c.send("go/reply", jsonObj{"key": "k1", "value": "hello"})
	mustOutput(t, c.waitRun(ev, 30*time.Second), `{"got":"hello"}`)
}

func testGoWaitForEventTimesOut(t *testing.T, c client, _ *goApp, _ *cronClock) {
	r := c.waitRun(c.send("go/wait", jsonObj{"key": "k2", "timeout": "1s"}), 30*time.Second)
	mustOutput(t, r, `{"got":null}`)
	if n := c.historyCounts(r.ID)["step.wait.timeout"]; n != 1 {
		t.Errorf("history has %d step.wait.timeout entries, want 1", n)
	}
}

// The test sends the signal with client.SendSignal.
func testGoWaitForSignal(t *testing.T, c client, app *goApp, _ *cronClock) {
	ctx := context.Background()
	if _, err := app.client.SendSignal(ctx, "go-sig-nobody", nil); !errors.Is(err, sdk.ErrNoSignalWaiter) {
		t.Fatalf("a signal nobody waits for: %v, want sdk.ErrNoSignalWaiter", err)
	}
	ev := c.send("go/signal", jsonObj{"key": "s1"})
	runID := c.runOf(ev)
	c.waitHistory(runID, "step.waiting.signal")
	got, err := app.client.SendSignal(ctx, "go-sig-s1", jsonObj{"ok": true})
	if err != nil || got != runID {
		t.Fatalf("SendSignal: run %q, %v; want run %s", got, err, runID)
	}
	mustOutput(t, c.waitRun(ev, 30*time.Second), `{"sig":{"signal":"go-sig-s1","data":{"ok":true}}}`)
}

func testGoWaitForSignalTimesOut(t *testing.T, c client, _ *goApp, _ *cronClock) {
	mustOutput(t, c.waitRun(c.send("go/signal", jsonObj{"key": "s2", "timeout": "1s"}), 30*time.Second), `{"sig":null}`)
}

// step.SendSignal resumes another run, and says so; a signal nobody
// waits for is not an error.
func testGoSendSignalStep(t *testing.T, c client, _ *goApp, _ *cronClock) {
	waiter := c.send("go/signal", jsonObj{"key": "s3"})
	waiterRun := c.runOf(waiter)
	c.waitHistory(waiterRun, "step.waiting.signal")
	mustOutput(t, c.waitRun(c.send("go/signal.send", jsonObj{"key": "s3"}), 30*time.Second),
		`{"resumed":"`+waiterRun+`","nobody":""}`)
	mustOutput(t, c.waitRun(waiter, 30*time.Second), `{"sig":{"signal":"go-sig-s3","data":{"from":"signaller"}}}`)
}

func testGoInvokeResult(t *testing.T, c client, _ *goApp, _ *cronClock) {
	mustOutput(t, c.waitRun(c.send("go/invoke", jsonObj{"n": 21}), 30*time.Second), `{"ok":{"doubled":42}}`)
}

func testGoInvokeError(t *testing.T, c client, _ *goApp, _ *cronClock) {
	mustOutput(t, c.waitRun(c.send("go/invoke", jsonObj{"n": 1, "fail": true}), 30*time.Second), `{"error":"child failed"}`)
}

// step.SendEvent returns the ids of the events it sent; each starts a run
// of the per-item function.
func testGoSendEvent(t *testing.T, c client, _ *goApp, _ *cronClock) {
	r := c.waitRun(c.send("go/fanout", jsonObj{"batch": "fan-1"}), 30*time.Second)
	var out struct {
		IDs []string `json:"ids"`
	}
	if r.Status != "completed" || json.Unmarshal(r.Output, &out) != nil || len(out.IDs) != 2 {
		t.Fatalf("status %s output %s error %s", r.Status, r.Output, r.Error)
	}
	for i, id := range out.IDs {
		item := c.waitRun(id, 30*time.Second)
		mustOutput(t, item, []string{"1", "2"}[i])
		if item.FunctionID != "goapp-fan-item" {
			t.Errorf("event %s started %s", id, item.FunctionID)
		}
	}
}

func testGoParallel(t *testing.T, c client, app *goApp, _ *cronClock) {
	r := c.waitRun(c.send("go/parallel", nil), 30*time.Second)
	mustOutput(t, r, `{"combined":"AB"}`)
	if ex := app.executions(r.ID); ex["provision-a"] != 1 || ex["provision-b"] != 1 || ex["combine"] != 1 {
		t.Errorf("executions %v: want each step once", ex)
	}
	if n := c.historyCounts(r.ID)["step.planned"]; n < 2 {
		t.Errorf("history has %d step.planned entries, want the two parallel steps planned", n)
	}
}

func testGoLoop(t *testing.T, c client, app *goApp, _ *cronClock) {
	r := c.waitRun(c.send("go/loop", nil), 30*time.Second)
	mustOutput(t, r, "[0,10,20]")
	if ex := app.executions(r.ID); ex["item"] != 3 || len(r.Steps) != 3 {
		t.Errorf("executions %v, %d memoized steps: want 3 of each", ex, len(r.Steps))
	}
}

// client.Send sends events (with the event key in production mode) and
// returns their ids, in order.
func testGoClientSend(t *testing.T, c client, app *goApp, _ *cronClock) {
	ids, err := app.client.Send(context.Background(),
		sdk.Event[goData]{Name: "go/filtered", Data: goData{Plan: "team"}},
		sdk.Event[jsonObj]{Name: "go/filtered", Data: jsonObj{"plan": "enterprise"}})
	if err != nil || len(ids) != 2 {
		t.Fatalf("Send: %v %v", ids, err)
	}
	mustOutput(t, c.waitRun(ids[0], 30*time.Second), `"team"`)
	mustOutput(t, c.waitRun(ids[1], 30*time.Second), `"enterprise"`)
}

func testGoParallelWait(t *testing.T, c client, _ *goApp, _ *cronClock) {
	mustOutput(t, c.waitRun(c.send("go/race", jsonObj{"key": "race-1"}), 30*time.Second), `{"got":"race-1"}`)
}

// Concurrency 1 per key: while a run of key a holds its slot, the other
// runs of a wait and the runs of b go on, one at a time.
func testGoConcurrency(t *testing.T, c client, app *goApp, _ *cronClock) {
	a1 := c.send("go/conc", jsonObj{"key": "ca", "gate": "conc-a1"})
	app.waitEntered(t, "conc-a1")
	a2 := c.send("go/conc", jsonObj{"key": "ca"})
	a3 := c.send("go/conc", jsonObj{"key": "ca"})
	b1 := c.send("go/conc", jsonObj{"key": "cb"})
	b2 := c.send("go/conc", jsonObj{"key": "cb"})
	c.waitHistory(c.runOf(a2), "call.waiting")
	c.waitHistory(c.runOf(a3), "call.waiting")
	for _, ev := range []string{b1, b2} {
		mustOutput(t, c.waitRun(ev, 30*time.Second), `"cb"`)
	}
	app.release("conc-a1")
	for _, ev := range []string{a1, a2, a3} {
		mustOutput(t, c.waitRun(ev, 30*time.Second), `"ca"`)
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if app.maxInflight["ca"] != 1 || app.maxInflight["cb"] != 1 {
		t.Errorf("step bodies at once per key: %v, want 1", app.maxInflight)
	}
}

// Throttle 2 per 4 s by key: two runs of a key start at once, the third
// waits; another key is not held back.
func testGoThrottle(t *testing.T, c client, _ *goApp, _ *cronClock) {
	var evs []string
	for _, k := range []string{"t1", "t1", "t1", "t2"} {
		evs = append(evs, c.send("go/throttle", jsonObj{"key": k}))
	}
	throttled := map[string]int{}
	for i, ev := range evs {
		r := c.waitRun(ev, 60*time.Second)
		key := []string{"t1", "t1", "t1", "t2"}[i]
		mustOutput(t, r, `"`+key+`"`)
		throttled[key] += c.historyCounts(r.ID)["run.throttled"]
	}
	if throttled["t1"] != 1 || throttled["t2"] != 0 {
		t.Errorf("throttled runs by key %v, want t1:1 (limit 2 starts 2 at once) and none of t2", throttled)
	}
}

func testGoRateLimit(t *testing.T, c client, _ *goApp, _ *cronClock) {
	evs := []string{
		c.send("go/ratelimit", jsonObj{"key": "r1"}),
		c.send("go/ratelimit", jsonObj{"key": "r1"}),
		c.send("go/ratelimit", jsonObj{"key": "r2"}),
	}
	var statuses []string
	for _, ev := range evs {
		statuses = append(statuses, c.waitRun(ev, 60*time.Second).Status)
	}
	if !slices.Equal(statuses, []string{"completed", "skipped", "completed"}) {
		t.Fatalf("statuses %v, want completed, skipped, completed", statuses)
	}
	if n := c.historyCounts(c.runOf(evs[1]))["run.skipped"]; n != 1 {
		t.Errorf("the skip is not in the run's history")
	}
}

func testGoDebounce(t *testing.T, c client, _ *goApp, _ *cronClock) {
	var evs []string
	for n := 1; n <= 3; n++ {
		evs = append(evs, c.send("go/debounce", jsonObj{"key": "d1", "n": n}))
	}
	r := c.waitRun(evs[2], 60*time.Second)
	mustOutput(t, r, "3")
	for _, ev := range evs[:2] {
		if other := c.runOf(ev); other != r.ID {
			t.Errorf("event %s has its own run %s; want the debounced run %s", ev, other, r.ID)
		}
	}
}

// The batch run gets all three events in Input.Events.
func testGoBatch(t *testing.T, c client, _ *goApp, _ *cronClock) {
	var evs []string
	for n := 1; n <= 3; n++ {
		evs = append(evs, c.send("go/batch", jsonObj{"n": n}))
	}
	r := c.waitRun(evs[0], 60*time.Second)
	mustOutput(t, r, "[1,2,3]")
	if c.runOf(evs[2]) != r.ID {
		t.Error("the third event is not in the batch run")
	}
}

// Concurrency 1 with a priority: of two runs waiting for the slot, the
// vip one (sent last) starts first.
func testGoPriority(t *testing.T, c client, app *goApp, _ *cronClock) {
	blocker := c.send("go/priority", jsonObj{"label": "blocker", "gate": "prio-block"})
	app.waitEntered(t, "prio-block")
	normal := c.send("go/priority", jsonObj{"label": "normal"})
	c.waitHistory(c.runOf(normal), "call.waiting")
	vip := c.send("go/priority", jsonObj{"label": "vip"})
	c.waitHistory(c.runOf(vip), "call.waiting")
	app.release("prio-block")
	for _, ev := range []string{blocker, normal, vip} {
		if r := c.waitRun(ev, 60*time.Second); r.Status != "completed" {
			t.Fatalf("run %s: %s %s", r.ID, r.Status, r.Error)
		}
	}
	app.mu.Lock()
	order := slices.Clone(app.order)
	app.mu.Unlock()
	if !slices.Equal(order, []string{"blocker", "vip", "normal"}) {
		t.Errorf("steps started in order %v, want blocker, vip, normal", order)
	}
}

func testGoSingletonSkip(t *testing.T, c client, _ *goApp, _ *cronClock) {
	first := c.send("go/singleton.skip", jsonObj{"key": "s1", "label": "first"})
	c.waitHistory(c.runOf(first), "step.sleeping")
	second := c.send("go/singleton.skip", jsonObj{"key": "s1", "label": "second"})
	if r := c.waitRun(second, 30*time.Second); r.Status != "skipped" {
		t.Fatalf("second singleton run: %s", r.Status)
	}
	mustOutput(t, c.waitRun(first, 30*time.Second), `"ran first"`)
}

func testGoSingletonCancel(t *testing.T, c client, _ *goApp, _ *cronClock) {
	first := c.send("go/singleton.cancel", jsonObj{"key": "s1", "label": "first"})
	c.waitHistory(c.runOf(first), "step.sleeping")
	second := c.send("go/singleton.cancel", jsonObj{"key": "s1", "label": "second"})
	if r := c.waitRun(first, 30*time.Second); r.Status != "cancelled" {
		t.Fatalf("first singleton run: %s, want cancelled by the second", r.Status)
	}
	mustOutput(t, c.waitRun(second, 30*time.Second), `"ran second"`)
}

func testGoCancelOn(t *testing.T, c client, app *goApp, _ *cronClock) {
	ev := c.send("go/cancellable", jsonObj{"key": "c1"})
	runID := c.runOf(ev)
	c.waitHistory(runID, "step.sleeping")
	c.send("go/cancel.it", jsonObj{"key": "someone-else"})
	c.send("go/cancel.it", jsonObj{"key": "c1"})
	r := c.waitRun(ev, 30*time.Second)
	if r.Status != "cancelled" {
		t.Fatalf("status %s", r.Status)
	}
	// Past the sleep: nothing more may run.
	var until int64
	for _, h := range c.history(runID) {
		if h.Type == "step.sleeping" {
			_, ms, _ := strings.Cut(h.Detail, " until ")
			json.Unmarshal([]byte(ms), &until)
		}
	}
	time.Sleep(time.Until(time.UnixMilli(until)) + 500*time.Millisecond)
	if ex := app.executions(runID); ex["first"] != 1 || ex["second"] != 0 {
		t.Errorf("executions %v: want first=1 second=0", ex)
	}
}

func testGoFinishTimeout(t *testing.T, c client, app *goApp, _ *cronClock) {
	r := c.waitRun(c.send("go/timeout", nil), 30*time.Second)
	if r.Status != "cancelled" || !strings.Contains(string(r.Error), "timeouts.finish") {
		t.Fatalf("status %s error %s", r.Status, r.Error)
	}
	if ex := app.executions(r.ID); ex["first"] != 1 || ex["never"] != 0 {
		t.Errorf("executions %v", ex)
	}
}

// A run that waits for a concurrency slot longer than timeouts.start is
// cancelled; the run that held the slot is not.
func testGoStartTimeout(t *testing.T, c client, app *goApp, _ *cronClock) {
	blocker := c.send("go/timeout.start", jsonObj{"key": "st", "gate": "start-block"})
	app.waitEntered(t, "start-block")
	late := c.send("go/timeout.start", jsonObj{"key": "st"})
	r := c.waitRun(late, 30*time.Second)
	if r.Status != "cancelled" || !strings.Contains(string(r.Error), "timeouts.start") {
		t.Fatalf("late run: status %s error %s", r.Status, r.Error)
	}
	app.release("start-block")
	mustOutput(t, c.waitRun(blocker, 30*time.Second), `"st"`)
}

func testGoIdempotency(t *testing.T, c client, _ *goApp, _ *cronClock) {
	first := c.send("go/idem", jsonObj{"key": "once-1"})
	second := c.send("go/idem", jsonObj{"key": "once-1"})
	other := c.send("go/idem", jsonObj{"key": "once-2"})
	mustOutput(t, c.waitRun(first, 30*time.Second), `"once-1"`)
	mustOutput(t, c.waitRun(other, 30*time.Second), `"once-2"`)
	var out struct {
		Data []run `json:"data"`
	}
	c.do("GET", "/v1/events/"+second+"/runs", nil, &out)
	if len(out.Data) != 0 {
		t.Errorf("a second event with the same idempotency key started %d runs", len(out.Data))
	}
}

func testGoTriggerIf(t *testing.T, c client, _ *goApp, _ *cronClock) {
	free := c.send("go/filtered", jsonObj{"plan": "free"})
	paid := c.send("go/filtered", jsonObj{"plan": "pro"})
	mustOutput(t, c.waitRun(paid, 30*time.Second), `"pro"`)
	var out struct {
		Data []run `json:"data"`
	}
	c.do("GET", "/v1/events/"+free+"/runs", nil, &out)
	if len(out.Data) != 0 {
		t.Errorf("the trigger's if filter let a free plan through")
	}
}

// The OnFailure handler runs as its own function with the failed run's
// function, run, error and event.
func testGoOnFailure(t *testing.T, c client, _ *goApp, _ *cronClock) {
	r := c.waitRun(c.send("go/fail.handled", nil), 30*time.Second)
	if r.Status != "failed" || !strings.Contains(string(r.Error), "doomed on purpose") {
		t.Fatalf("status %s error %s", r.Status, r.Error)
	}
	want := `{"fn":"goapp-fails-with-handler","run":"` + r.ID + `","msg":"doomed on purpose","event":"go/fail.handled"}`
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, h := range c.runsOf("goapp-fails-with-handler-failure") {
			if h.Status == "completed" && strings.Contains(string(h.Output), r.ID) {
				mustOutput(t, h, want)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no completed onFailure run for %s (want output %s)", r.ID, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A cron trigger with a controlled clock: nothing before the scheduled
// time, exactly one run at it, with the scheduled time in its event.
func testGoCron(t *testing.T, c client, _ *goApp, clock *cronClock) {
	time.Sleep(500 * time.Millisecond) // several ticks at 02:59: nothing is due
	if runs := c.runsOf("goapp-cron-fn"); len(runs) != 0 {
		t.Fatalf("cron fired early: %d runs", len(runs))
	}
	clock.set(time.Date(2026, 3, 10, 3, 0, 30, 0, parisTZ))
	deadline := time.Now().Add(30 * time.Second)
	var runs []run
	for time.Now().Before(deadline) {
		if runs = c.runsOf("goapp-cron-fn"); len(runs) == 1 && runs[0].Status == "completed" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(runs) != 1 {
		t.Fatalf("cron runs: %+v", runs)
	}
	mustOutput(t, runs[0], `"2026-03-10T02:00:00Z"`) // 03:00 in Paris (CET) is 02:00 UTC
	time.Sleep(300 * time.Millisecond)               // more ticks at the same time: still one run
	if runs := c.runsOf("goapp-cron-fn"); len(runs) != 1 {
		t.Fatalf("cron fired %d times for one scheduled time", len(runs))
	}
}

// TestSeedExample builds examples/seed and runs it as its own process, as
// a user would, configured only by the INNGEST_* variables: the seed
// function gives the TS app's result, sync-systems registers its throttle,
// and SIGTERM stops the app gracefully. In dev mode, then in production
// mode with keys (the app then refuses unsigned calls).
func TestSeedExample(t *testing.T) {
	bin := buildExample(t, "seed")
	t.Run("dev", func(t *testing.T) { testSeedExample(t, bin) })
	t.Run("production", func(t *testing.T) { testSeedExample(t, bin, production) })
}

// buildExample builds examples/<name> into the test's temp dir.
func buildExample(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	out, err := exec.Command("go", "build", "-o", bin, "../examples/"+name).CombinedOutput()
	if err != nil {
		t.Fatalf("go build examples/%s: %v\n%s", name, err, out)
	}
	return bin
}

// exampleProc is an example app running as a child process.
type exampleProc struct {
	URL  string
	cmd  *exec.Cmd
	logf *os.File
	done chan error
}

// startExample runs an example binary on a free port, pointed at the Cairn
// at cairnURL, in production mode with the test keys when prod is set. The
// environment holds no other INNGEST_* variable.
func startExample(t *testing.T, bin, cairnURL string, prod bool) *exampleProc {
	t.Helper()
	port := freePort(t)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INNGEST_") && !strings.HasPrefix(kv, "PORT=") {
			env = append(env, kv)
		}
	}
	env = append(env, fmt.Sprintf("PORT=%d", port), "INNGEST_BASE_URL="+cairnURL)
	if prod {
		env = append(env, "INNGEST_DEV=0", "INNGEST_SIGNING_KEY="+prodSigningKey, "INNGEST_EVENT_KEY="+prodEventKey)
	} else {
		env = append(env, "INNGEST_DEV=1")
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(bin)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &exampleProc{URL: fmt.Sprintf("http://127.0.0.1:%d/api/inngest", port), cmd: cmd, logf: logf, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(bin), tail(p.log(), 4000))
		}
		logf.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.URL)
		if err == nil {
			resp.Body.Close()
			// In production mode an unsigned GET learns only that an SDK answered.
			if resp.Header.Get("X-Inngest-Sdk") == "" && resp.Header.Get("X-Inngest-Sdk-Handled") != "true" {
				t.Fatalf("GET %s: no X-Inngest-Sdk or X-Inngest-Sdk-Handled header", p.URL)
			}
			return p
		}
		select {
		case err := <-p.done:
			t.Fatalf("%s exited: %v\n%s", bin, err, p.log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s", bin, p.URL)
		}
	}
}

func (p *exampleProc) log() string {
	b, _ := os.ReadFile(p.logf.Name())
	return string(b)
}

// stop sends SIGTERM and checks that the app shuts down cleanly.
func (p *exampleProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the app did not stop after SIGTERM")
	}
	if !strings.Contains(p.log(), "shutting down") {
		t.Errorf("the app did not log its shutdown:\n%s", p.log())
	}
}

func testSeedExample(t *testing.T, bin string, opts ...func(*server.Config)) {
	srv, c := startCairn(t, opts...)
	prod := c.bearer != ""
	app := startExample(t, bin, srv.URL(), prod)
	srv.Syncer.Add(app.URL)
	c.waitSynced("seed-go", 60*time.Second)

	if prod {
		resp, err := http.Post(app.URL+"?fnId=seed-go-import-contacts&stepId=step", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("an unsigned call: %d, want 401", resp.StatusCode)
		}
	}

	// The TS app's import-contacts gives the same for the same csv (TestTSApp).
	r := c.waitRun(c.send("contacts/csv.uploaded", jsonObj{"csv": "email,name\nA@x.io, Ann\nb@x.io,Bob\na@x.io,Ann again"}), 60*time.Second)
	mustOutput(t, r, `{"results":{"imported":2,"emails":["a@x.io","b@x.io"]}}`)
	if r.FunctionID != "seed-go-import-contacts" || len(r.Steps) != 3 {
		t.Errorf("run of %s with %d memoized steps, want seed-go-import-contacts with 3", r.FunctionID, len(r.Steps))
	}
	var completed []string
	for _, h := range c.history(r.ID) {
		if h.Type == "step.completed" {
			completed = append(completed, h.Name)
		}
	}
	if strings.Join(completed, ",") != "parse-csv,normalize-raw-csv,input-contacts" {
		t.Errorf("history step.completed entries: %v", completed)
	}
	// Without a csv, the default one.
	mustOutput(t, c.waitRun(c.send("contacts/csv.uploaded", jsonObj{}), 60*time.Second),
		`{"results":{"imported":2,"emails":["ann@example.com","bob@example.com"]}}`)

	mustOutput(t, c.waitRun(c.send("contacts/sync.requested", jsonObj{"account": "acme", "emails": []string{"A@x.io", " a@x.io", "b@x.io"}}), 60*time.Second),
		`{"contacts":2,"systems":[{"system":"crm","synced":2},{"system":"mailing-list","synced":2}]}`)
	var fns struct {
		Data []functionInfo `json:"data"`
	}
	c.do("GET", "/v1/functions", nil, &fns)
	found := false
	for _, f := range fns.Data {
		if f.ID == "seed-go-sync-systems" {
			found = true
			if flow := strings.Join(f.Flow, ","); flow != "throttle 2/10s by event.data.account" {
				t.Errorf("sync-systems flow %q", flow)
			}
		}
	}
	if !found {
		t.Error("seed-go-sync-systems is not registered")
	}
	app.stop(t)
}

// TestApprovalAndFanoutExamples runs examples/approval and examples/fanout
// as processes against one Cairn in dev mode, as their doc comments say.
func TestApprovalAndFanoutExamples(t *testing.T) {
	approvalBin, fanoutBin := buildExample(t, "approval"), buildExample(t, "fanout")
	srv, c := startCairn(t)
	approval := startExample(t, approvalBin, srv.URL(), false)
	fanout := startExample(t, fanoutBin, srv.URL(), false)
	srv.Syncer.Add(approval.URL)
	srv.Syncer.Add(fanout.URL)
	c.waitSynced("approval", 60*time.Second)
	c.waitSynced("fanout", 60*time.Second)

	var wg sync.WaitGroup
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, c client)
	}{
		{"ApprovalPaid", func(t *testing.T, c client) {
			ev := c.send("expense/submitted", jsonObj{"id": "exp-1", "amount": 250, "submitter": "ann"})
			c.waitHistory(c.runOf(ev), "step.waiting.event")
			c.send("expense/decided", jsonObj{"expense_id": "exp-other", "approved": false, "by": "eve"})
			c.send("expense/decided", jsonObj{"expense_id": "exp-1", "approved": true, "by": "bob"})
			mustOutput(t, c.waitRun(ev, 30*time.Second), `{"status":"paid","by":"bob"}`)
		}},
		{"ApprovalRejected", func(t *testing.T, c client) {
			ev := c.send("expense/submitted", jsonObj{"id": "exp-2", "amount": 500})
			c.waitHistory(c.runOf(ev), "step.waiting.event")
			c.send("expense/decided", jsonObj{"expense_id": "exp-2", "approved": false, "by": "bob", "reason": "no receipt"})
			mustOutput(t, c.waitRun(ev, 30*time.Second), `{"status":"rejected","by":"bob","reason":"no receipt"}`)
		}},
		{"ApprovalEscalated", func(t *testing.T, c client) {
			mustOutput(t, c.waitRun(c.send("expense/submitted", jsonObj{"id": "exp-3", "amount": 900, "window": "1s"}), 30*time.Second),
				`{"status":"escalated"}`)
		}},
		{"ApprovalAuto", func(t *testing.T, c client) {
			mustOutput(t, c.waitRun(c.send("expense/submitted", jsonObj{"id": "exp-4", "amount": 20}), 30*time.Second),
				`{"status":"auto-approved"}`)
		}},
		{"FanOutFanIn", func(t *testing.T, c client) {
			files := []string{"a.csv", "bb.csv", "ccc.csv"}
			mustOutput(t, c.waitRun(c.send("import/requested", jsonObj{"import_id": "imp-1", "files": files}), 30*time.Second), `{"queued":3}`)
			// Every file is processed once, and the summaries (one batch,
			// or more if a file straggled) account for all of them.
			deadline := time.Now().Add(60 * time.Second)
			for {
				var seen []string
				rows := 0
				for _, r := range c.runsOf("fanout-summarize-import") {
					var s struct {
						Files []string `json:"files"`
						Rows  int      `json:"rows"`
					}
					if r.Status == "completed" && json.Unmarshal(r.Output, &s) == nil {
						seen, rows = append(seen, s.Files...), rows+s.Rows
					}
				}
				slices.Sort(seen)
				if slices.Equal(seen, files) && rows == 60 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("summaries saw files %v, %d rows; want %v, 60 rows", seen, rows, files)
				}
				time.Sleep(100 * time.Millisecond)
			}
			done := 0
			for _, r := range c.runsOf("fanout-process-file") {
				if r.Status == "completed" {
					done++
				}
			}
			if done != 3 {
				t.Errorf("%d process-file runs completed, want 3", done)
			}
		}},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(tc.name, func(t *testing.T) {
				c := c
				c.t = t
				tc.run(t, c)
			})
		}()
	}
	wg.Wait()
	approval.stop(t)
	fanout.stop(t)
}

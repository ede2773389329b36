package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cairn-dev/cairn/sdk"
	"github.com/cairn-dev/cairn/sdk/step"
)

// probeApp is, in Go, the app the protocol fixtures were captured from
// (../shared/protocol/fixtures/probe-app.mjs): same ids, same steps, same
// results, so its answers can be compared with the official SDK's.
func probeApp(opts sdk.ClientOpts) (*sdk.Client, error) {
	opts.AppID = "probe-app"
	c, err := sdk.NewClient(opts)
	if err != nil {
		return nil, err
	}
	type data = map[string]any
	type row struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	}
	fns := []func() error{
		func() error {
			_, err := sdk.CreateFunction(c, sdk.FunctionOpts{ID: "import-contacts"}, sdk.EventTrigger("contacts/csv.uploaded"),
				func(ctx context.Context, in sdk.Input[data]) (any, error) {
					rows, err := step.Run(ctx, "parse-csv", func(context.Context) ([]row, error) {
						return []row{{"a@example.com", "Ann"}, {"b@example.com", "Bob"}, {"a@example.com", "Ann (dup)"}}, nil
					})
					if err != nil {
						return nil, err
					}
					unique, err := step.Run(ctx, "dedupe-contacts", func(context.Context) ([]row, error) {
						seen := map[string]bool{}
						var out []row
						for _, r := range rows {
							if !seen[r.Email] {
								seen[r.Email] = true
								out = append(out, r)
							}
						}
						return out, nil
					})
					if err != nil {
						return nil, err
					}
					type saved struct {
						Saved int `json:"saved"`
						File  any `json:"file"`
					}
					s, err := step.Run(ctx, "save-contacts", func(context.Context) (saved, error) {
						return saved{len(unique), in.Event.Data["file_id"]}, nil
					})
					if err != nil {
						return nil, err
					}
					return data{"imported": s.Saved, "file": s.File}, nil
				})
			return err
		},
	}
	var sendWelcome *sdk.Function
	fns = append(fns, func() (err error) {
		sendWelcome, err = sdk.CreateFunction(c, sdk.FunctionOpts{ID: "send-welcome-email", Retries: sdk.Retries(1)}, nil,
			func(ctx context.Context, in sdk.Input[data]) (data, error) {
				r, err := step.Run(ctx, "render-and-send", func(context.Context) (data, error) {
					return data{"sent_to": in.Event.Data["user_id"]}, nil
				})
				if err != nil {
					return nil, err
				}
				return data{"ok": true, "sent_to": r["sent_to"]}, nil
			})
		return err
	})
	fns = append(fns, func() error {
		_, err := sdk.CreateFunction(c, sdk.FunctionOpts{
			ID: "user-onboarding", Name: "User onboarding", Retries: sdk.Retries(2),
			Concurrency: []sdk.Concurrency{{Limit: 5, Key: "event.data.account_id"}, {Limit: 100, Key: `"onboarding"`, Scope: "account"}},
			Throttle:    &sdk.Throttle{Limit: 10, Period: time.Minute, Key: "event.data.account_id", Burst: 2},
			Debounce:    &sdk.Debounce{Period: 5 * time.Second, Key: "event.data.user_id", Timeout: time.Minute},
			RateLimit:   &sdk.RateLimit{Limit: 100, Period: time.Hour, Key: "event.data.user_id"},
			Priority:    &sdk.Priority{Run: "event.data.plan == 'enterprise' ? 120 : 0"},
			Timeouts:    &sdk.Timeouts{Start: 10 * time.Minute, Finish: 7 * 24 * time.Hour},
			CancelOn: []sdk.Cancel{
				{Event: "app/user.deleted", If: "async.data.user_id == event.data.user_id", Timeout: 7 * 24 * time.Hour},
				{Event: "app/user.banned", If: "event.data.user_id == async.data.user_id"},
			},
		}, sdk.Triggers(sdk.EventTrigger("app/user.signup", "event.data.plan != 'free'"), sdk.EventTrigger("app/user.reactivated")),
			func(ctx context.Context, in sdk.Input[data]) (data, error) {
				type user struct {
					ID    string `json:"id"`
					Email string `json:"email"`
				}
				u, err := step.Run(ctx, "load-user", func(context.Context) (user, error) {
					id := fmt.Sprint(in.Event.Data["user_id"])
					return user{id, id + "@example.com"}, nil
				})
				if err != nil {
					return nil, err
				}
				step.Sleep(ctx, "wait-a-moment", 30*time.Second)
				step.SleepUntil(ctx, "wait-until-2030", time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC))
				_, err = step.WaitForEvent[data](ctx, "wait-for-profile", step.WaitForEventOpts{
					Event: "app/profile.completed", Timeout: 72 * time.Hour, If: "async.data.user_id == event.data.user_id",
				})
				profileCompleted := err == nil
				welcome, err := step.Invoke[data](ctx, "send-welcome", step.InvokeOpts{Function: sendWelcome, Data: data{"user_id": u.ID}, Timeout: time.Hour})
				if err != nil {
					return nil, err
				}
				approval, _ := step.WaitForSignal[data](ctx, "wait-for-approval", step.WaitForSignalOpts{Signal: "approval-" + u.ID, Timeout: 24 * time.Hour})
				if _, err := step.SendSignal(ctx, "notify-partner", "partner-"+u.ID, data{"onboarded": true}); err != nil {
					return nil, err
				}
				ids, err := step.SendEvent(ctx, "emit-onboarded", sdk.Event[data]{Name: "app/user.onboarded", Data: data{"user_id": u.ID}})
				if err != nil {
					return nil, err
				}
				var a, b string
				err = step.Parallel(ctx,
					func(ctx context.Context) (err error) {
						a, err = step.Run(ctx, "provision-a", func(context.Context) (string, error) { return "A-ready", nil })
						return err
					},
					func(ctx context.Context) (err error) {
						b, err = step.Run(ctx, "provision-b", func(context.Context) (string, error) { return "B-ready", nil })
						return err
					})
				if err != nil {
					return nil, err
				}
				return data{"user": u, "profileCompleted": profileCompleted, "welcome": welcome, "approval": approval, "sentIds": ids, "a": a, "b": b}, nil
			})
		return err
	})
	fns = append(fns, func() error {
		_, err := sdk.CreateFunction(c, sdk.FunctionOpts{
			ID: "flaky-task", Retries: sdk.Retries(2),
			OnFailure: func(ctx context.Context, in sdk.Input[sdk.FailureData]) (any, error) {
				_, err := step.Run(ctx, "report-failure", func(context.Context) (data, error) {
					return data{"failedFn": in.Event.Data.FunctionID, "msg": in.Event.Data.Error.Message}, nil
				})
				return nil, err
			},
		}, sdk.EventTrigger("app/flaky.requested"),
			func(ctx context.Context, in sdk.Input[data]) (any, error) {
				mode := in.Event.Data["mode"]
				r, err := step.Run(ctx, "call-api", func(context.Context) (string, error) {
					switch mode {
					case "step-retry":
						return "", fmt.Errorf("upstream 503 (attempt %d)", in.Attempt)
					case "step-nonretriable":
						return "", sdk.NonRetriable(errors.New("bad input; do not retry"))
					case "step-retry-after":
						return "", sdk.RetryAfter(errors.New("rate limited"), 30*time.Second)
					}
					return "api-ok", nil
				})
				if err != nil {
					return nil, err
				}
				switch mode {
				case "fn-throw":
					return nil, errors.New("function-level boom")
				case "fn-nonretriable":
					return nil, sdk.NonRetriable(errors.New("function-level fatal"))
				}
				return data{"r": r}, nil
			})
		return err
	})
	fns = append(fns, func() error {
		_, err := sdk.CreateFunction(c, sdk.FunctionOpts{ID: "caught-step-error", Retries: sdk.Retries(0)}, sdk.EventTrigger("app/caught.requested"),
			func(ctx context.Context, in sdk.Input[data]) (data, error) {
				_, err := step.Run(ctx, "risky", func(context.Context) (any, error) { return nil, errors.New("risky failed") })
				var se *sdk.StepError
				if errors.As(err, &se) {
					return data{"recovered": true, "name": se.Name, "message": se.Message}, nil
				}
				return data{"recovered": false}, nil
			})
		return err
	})
	fns = append(fns, func() error {
		_, err := sdk.CreateFunction(c, sdk.FunctionOpts{
			ID:          "digest-batch",
			BatchEvents: &sdk.BatchEvents{MaxSize: 50, Timeout: 10 * time.Second, Key: "event.data.account_id", If: "event.data.kind == 'click'"},
			Concurrency: []sdk.Concurrency{{Limit: 3}},
			Throttle:    &sdk.Throttle{Limit: 1, Period: 10 * time.Second},
		}, sdk.EventTrigger("app/activity.logged"),
			func(ctx context.Context, in sdk.Input[data]) (data, error) {
				return step.Run(ctx, "summarise", func(context.Context) (data, error) { return data{"count": len(in.Events)}, nil })
			})
		return err
	})
	fns = append(fns, func() error {
		_, err := sdk.CreateFunction(c, sdk.FunctionOpts{
			ID: "nightly-report", Retries: sdk.Retries(0),
			Singleton:   &sdk.Singleton{Key: "event.data.account_id", Mode: "skip"},
			Idempotency: "event.data.report_id",
		}, sdk.Triggers(sdk.CronTrigger("TZ=Europe/Paris 0 3 * * *"), sdk.EventTrigger("app/report.requested")),
			func(ctx context.Context, in sdk.Input[data]) (string, error) { return "report-done", nil })
		return err
	})
	fns = append(fns, func() error {
		_, err := sdk.CreateFunction(c, sdk.FunctionOpts{ID: "loop-steps"}, sdk.EventTrigger("app/loop.requested"),
			func(ctx context.Context, in sdk.Input[data]) ([]string, error) {
				var out []string
				for i := 0; i < 3; i++ {
					v, err := step.Run(ctx, "process-item", func(context.Context) (string, error) { return fmt.Sprintf("item-%d", i), nil })
					if err != nil {
						return nil, err
					}
					out = append(out, v)
				}
				return out, nil
			})
		return err
	})
	for _, f := range fns {
		if err := f(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// probeEndpoint is the capture's durable endpoint (/api/durable).
func probeEndpoint(c *sdk.Client) http.Handler {
	return c.Endpoint(sdk.EndpointOpts{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, q := r.Context(), r.URL.Query()
		type user struct {
			ID string `json:"id"`
		}
		u, err := step.Run(ctx, "fetch-user", func(context.Context) (user, error) {
			if id := q.Get("user"); id != "" {
				return user{id}, nil
			}
			return user{"anon"}, nil
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if q.Get("sleep") != "" {
			step.Sleep(ctx, "pause", 10*time.Second)
		}
		greeting, err := step.Run(ctx, "compute-greeting", func(context.Context) (string, error) {
			if q.Get("fail") != "" {
				return "", errors.New("greeting service down")
			}
			return "hello " + u.ID, nil
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		body, _ := json.Marshal(struct {
			User     user   `json:"user"`
			Greeting string `json:"greeting"`
		}{u, greeting})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Probe", "1")
		w.Write(body)
	}))
}

// Command approval is an approval flow with the Go SDK: an expense waits
// for a manager's decision, an event matched to it by id, and is escalated
// if none comes in time. Nothing runs and nothing is held while it waits:
// the run is parked in Cairn, for days if need be.
//
// Run it against the dev server:
//
//	make dev                                # Cairn on :8288; it finds apps on localhost:3000-3010
//	INNGEST_DEV=1 go run ./examples/approval   # listens on :3001 (PORT)
//	./bin/cairn send expense/submitted '{"id":"exp-1","amount":250,"submitter":"ann"}'
//	./bin/cairn runs                        # waiting for event expense/decided
//	./bin/cairn send expense/decided '{"expense_id":"exp-1","approved":true,"by":"bob"}'
//	./bin/cairn send expense/submitted '{"id":"exp-2","amount":900,"window":"10s"}'   # escalated after 10 s
//
// What it shows:
//   - step.WaitForEvent with If: of all expense/decided events, the run takes
//     the one whose expense_id is its expense's id (event is the run's
//     event, async the candidate).
//   - Timeout is required; when it passes, WaitForEvent returns
//     step.ErrEventNotReceived and the code takes the other branch.
//   - The wait starts when the run reaches it: a decision sent before is not
//     seen. Here the approver is asked in the step before the wait, so
//     cannot answer earlier.
//   - Code between steps runs again on every call, so it only decides from
//     the event and step results (no clock, no I/O): the time the window
//     ends is computed by Cairn, not here.
package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cairn-dev/cairn/sdk"
	"github.com/cairn-dev/cairn/sdk/step"
)

// Expense is the data of expense/submitted. Window is how long the
// approver has, as a Go duration ("48h"); 24 h when empty.
type Expense struct {
	ID        string  `json:"id"`
	Amount    float64 `json:"amount"`
	Submitter string  `json:"submitter"`
	Window    string  `json:"window,omitempty"`
}

// Decision is the data of expense/decided.
type Decision struct {
	ExpenseID string `json:"expense_id"`
	Approved  bool   `json:"approved"`
	By        string `json:"by"`
	Reason    string `json:"reason,omitempty"`
}

// Outcome is the run's result.
type Outcome struct {
	Status string `json:"status"` // auto-approved, paid, rejected or escalated
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// autoApproveBelow is the amount under which nobody needs to decide.
const autoApproveBelow = 100

func approve(log *slog.Logger) func(context.Context, sdk.Input[Expense]) (Outcome, error) {
	return func(ctx context.Context, in sdk.Input[Expense]) (Outcome, error) {
		e := in.Event.Data
		if e.ID == "" {
			return Outcome{}, sdk.NonRetriable(errors.New("expense/submitted needs an id"))
		}
		window := 24 * time.Hour
		if e.Window != "" {
			d, err := time.ParseDuration(e.Window)
			if err != nil || d <= 0 {
				return Outcome{}, sdk.NonRetriable(errors.New("window is not a duration: " + e.Window))
			}
			window = d
		}
		if e.Amount < autoApproveBelow {
			return step.Run(ctx, "auto-approve", func(context.Context) (Outcome, error) {
				return Outcome{Status: "auto-approved"}, nil
			})
		}

		// A step, so the approver is asked once even if the run is retried.
		if _, err := step.Run(ctx, "request-approval", func(context.Context) (bool, error) {
			log.Info("approval requested (send expense/decided to answer)", "expense", e.ID, "amount", e.Amount, "window", window)
			return true, nil
		}); err != nil {
			return Outcome{}, err
		}

		d, err := step.WaitForEvent[Decision](ctx, "wait-for-decision", step.WaitForEventOpts{
			Event:   "expense/decided",
			If:      "async.data.expense_id == event.data.id",
			Timeout: window,
		})
		switch {
		case errors.Is(err, step.ErrEventNotReceived):
			return step.Run(ctx, "escalate", func(context.Context) (Outcome, error) {
				log.Warn("no decision in time: escalated", "expense", e.ID)
				return Outcome{Status: "escalated"}, nil
			})
		case err != nil:
			return Outcome{}, err
		case d.Data.Approved:
			return step.Run(ctx, "pay", func(context.Context) (Outcome, error) {
				log.Info("paying", "expense", e.ID, "to", e.Submitter, "approved_by", d.Data.By)
				return Outcome{Status: "paid", By: d.Data.By}, nil
			})
		default:
			return step.Run(ctx, "notify-rejection", func(context.Context) (Outcome, error) {
				log.Info("rejected", "expense", e.ID, "by", d.Data.By, "reason", d.Data.Reason)
				return Outcome{Status: "rejected", By: d.Data.By, Reason: d.Data.Reason}, nil
			})
		}
	}
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("approval app stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	client, err := sdk.NewClient(sdk.ClientOpts{AppID: "approval", Logger: log})
	if err != nil {
		return err
	}
	if _, err := sdk.CreateFunction(client, sdk.FunctionOpts{ID: "expense-approval"},
		sdk.EventTrigger("expense/submitted"), approve(log)); err != nil {
		return err
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "3001"
	}
	mux := http.NewServeMux()
	mux.Handle("/api/inngest", client.Serve())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving functions", "url", "http://"+ln.Addr().String()+"/api/inngest", "dev", client.Dev())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Command fanout splits a job into items with the Go SDK: one function
// sends an event per item (fan-out), a per-item function processes each in
// its own run, with its own retries and a concurrency limit, and a third
// function collects what the items report (fan-in).
//
// Run it against the dev server:
//
//	make dev                              # Cairn on :8288; it finds apps on localhost:3000-3010
//	INNGEST_DEV=1 go run ./examples/fanout   # listens on :3002 (PORT)
//	./bin/cairn send import/requested '{"import_id":"imp-1","files":["a.csv","b.csv","c.csv"]}'
//	./bin/cairn runs                      # start-import, 3 × process-file, then summarize-import
//
// What it shows:
//   - step.SendEvent sends all the item events in one step: the step's
//     result (their ids) is kept, so a retried run does not send them twice.
//   - Each item is a run of its own: a failing file is retried alone, and
//     Concurrency caps how many are processed at once (per import here).
//   - Fan-in with BatchEvents keyed by import: the done events of one import
//     are handed to one run of summarize-import, once 100 arrived or 5 s
//     after the first. Items that finish later make a second batch: the
//     summary says whether it saw them all. When the parent needs the
//     results itself, call the per-item function with step.Invoke inside
//     step.Parallel instead: the parent then waits for every child.
package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-dev/cairn/sdk"
	"github.com/cairn-dev/cairn/sdk/step"
)

// ImportRequested is the data of import/requested.
type ImportRequested struct {
	ImportID string   `json:"import_id"`
	Files    []string `json:"files"`
}

// FileQueued is the data of import/file.queued: one item.
type FileQueued struct {
	ImportID string `json:"import_id"`
	File     string `json:"file"`
	Total    int    `json:"total"` // items in the import
}

// FileDone is the data of import/file.done: what an item reports.
type FileDone struct {
	ImportID string `json:"import_id"`
	File     string `json:"file"`
	Rows     int    `json:"rows"`
	Total    int    `json:"total"`
}

// Summary is summarize-import's result.
type Summary struct {
	ImportID string   `json:"import_id"`
	Files    []string `json:"files"`
	Rows     int      `json:"rows"`
	Complete bool     `json:"complete"` // every file of the import is in this batch
}

func register(c *sdk.Client, log *slog.Logger) error {
	_, err := sdk.CreateFunction(c, sdk.FunctionOpts{ID: "start-import"}, sdk.EventTrigger("import/requested"),
		func(ctx context.Context, in sdk.Input[ImportRequested]) (map[string]int, error) {
			d := in.Event.Data
			if d.ImportID == "" || len(d.Files) == 0 {
				return nil, sdk.NonRetriable(errors.New("import/requested needs an import_id and files"))
			}
			events := make([]any, len(d.Files))
			for i, f := range d.Files {
				events[i] = sdk.Event[FileQueued]{Name: "import/file.queued", Data: FileQueued{ImportID: d.ImportID, File: f, Total: len(d.Files)}}
			}
			ids, err := step.SendEvent(ctx, "queue-files", events...)
			if err != nil {
				return nil, err
			}
			return map[string]int{"queued": len(ids)}, nil
		})
	if err != nil {
		return err
	}

	_, err = sdk.CreateFunction(c, sdk.FunctionOpts{
		ID:          "process-file",
		Concurrency: []sdk.Concurrency{{Limit: 2, Key: "event.data.import_id"}},
	}, sdk.EventTrigger("import/file.queued"),
		func(ctx context.Context, in sdk.Input[FileQueued]) (int, error) {
			d := in.Event.Data
			rows, err := step.Run(ctx, "process", func(context.Context) (int, error) {
				log.Info("processing", "import", d.ImportID, "file", d.File)
				return 10 * len(strings.TrimSuffix(d.File, ".csv")), nil // stands for the real work
			})
			if err != nil {
				return 0, err
			}
			if _, err := step.SendEvent(ctx, "report-done", sdk.Event[FileDone]{Name: "import/file.done",
				Data: FileDone{ImportID: d.ImportID, File: d.File, Rows: rows, Total: d.Total}}); err != nil {
				return 0, err
			}
			return rows, nil
		})
	if err != nil {
		return err
	}

	_, err = sdk.CreateFunction(c, sdk.FunctionOpts{
		ID:          "summarize-import",
		BatchEvents: &sdk.BatchEvents{MaxSize: 100, Timeout: 5 * time.Second, Key: "event.data.import_id"},
	}, sdk.EventTrigger("import/file.done"),
		func(ctx context.Context, in sdk.Input[FileDone]) (Summary, error) {
			return step.Run(ctx, "summarize", func(context.Context) (Summary, error) {
				s := Summary{ImportID: in.Event.Data.ImportID, Files: []string{}}
				for _, e := range in.Events {
					s.Files = append(s.Files, e.Data.File)
					s.Rows += e.Data.Rows
				}
				s.Complete = len(in.Events) == in.Event.Data.Total
				log.Info("import summarized", "import", s.ImportID, "files", len(s.Files), "rows", s.Rows, "complete", s.Complete)
				return s, nil
			})
		})
	return err
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("fanout app stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	client, err := sdk.NewClient(sdk.ClientOpts{AppID: "fanout", Logger: log})
	if err != nil {
		return err
	}
	if err := register(client, log); err != nil {
		return err
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "3002"
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

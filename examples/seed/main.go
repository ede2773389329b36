// Command seed serves Cairn's seed functions with the Go SDK: the Go twin
// of the TS test app's import-contacts (e2e/tsapp/app.mjs: the same event,
// step ids and result), and sync-systems, a throttled function that pushes
// contacts to external systems.
//
// Run it against the dev server:
//
//	make dev                           # Cairn on :8288; it finds apps on localhost:3000 by itself
//	INNGEST_DEV=1 go run ./examples/seed
//	./bin/cairn send contacts/csv.uploaded '{"csv":"email,name\nAnn@x.io, Ann\nann@x.io,Ann again"}'
//	./bin/cairn send contacts/sync.requested '{"emails":["ann@x.io"],"systems":["crm"]}'
//	./bin/cairn runs
//
// It listens on 127.0.0.1:$PORT (default 3000) at /api/inngest and is
// configured only by the SDK's INNGEST_* variables: INNGEST_DEV,
// INNGEST_BASE_URL (default http://localhost:8288 in dev mode),
// INNGEST_SIGNING_KEY and INNGEST_EVENT_KEY in production mode.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-dev/cairn/sdk"
	"github.com/cairn-dev/cairn/sdk/step"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("seed app stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	client, err := sdk.NewClient(sdk.ClientOpts{AppID: "seed-go", Logger: log})
	if err != nil {
		return err
	}
	if err := register(client); err != nil {
		return err
	}

	port := os.Getenv("PORT")
	if port == "" {
		port = "3000"
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
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func register(c *sdk.Client) error {
	if _, err := sdk.CreateFunction(c, sdk.FunctionOpts{ID: "import-contacts"},
		sdk.EventTrigger("contacts/csv.uploaded"), importContacts); err != nil {
		return err
	}
	_, err := sdk.CreateFunction(c, sdk.FunctionOpts{
		ID: "sync-systems",
		// External systems take a few requests a minute: at most 2 syncs
		// start per 10 s for each account; the others wait their turn
		// (a rate limit would drop them instead).
		Throttle: &sdk.Throttle{Limit: 2, Period: 10 * time.Second, Key: "event.data.account"},
	}, sdk.EventTrigger("contacts/sync.requested"), syncSystems)
	return err
}

// --- import-contacts ---------------------------------------------------------

// defaultCSV is imported when the event carries no csv.
const defaultCSV = "email,name\n" +
	"Ann@Example.com,  Ann \n" +
	"bob@example.com,Bob\n" +
	"ann@example.com,Ann again"

// CSVUploaded is the data of contacts/csv.uploaded. Its csv is used when
// it is a string, as the TS function does; anything else imports defaultCSV.
type CSVUploaded struct {
	CSV json.RawMessage `json:"csv"`
}

// Contact is one row: as in the file after parse-csv, cleaned after
// normalize-raw-csv.
type Contact struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// ImportResults is what input-contacts reports.
type ImportResults struct {
	Imported int      `json:"imported"`
	Emails   []string `json:"emails"`
}

// ImportOutput is the run's result.
type ImportOutput struct {
	Results ImportResults `json:"results"`
}

func importContacts(ctx context.Context, in sdk.Input[CSVUploaded]) (ImportOutput, error) {
	csv := csvOf(in.Event.Data.CSV)
	rows, err := step.Run(ctx, "parse-csv", func(context.Context) ([]Contact, error) {
		return parseCSV(csv), nil
	})
	if err != nil {
		return ImportOutput{}, err
	}
	contacts, err := step.Run(ctx, "normalize-raw-csv", func(context.Context) ([]Contact, error) {
		return normalize(rows), nil
	})
	if err != nil {
		return ImportOutput{}, err
	}
	results, err := step.Run(ctx, "input-contacts", func(context.Context) (ImportResults, error) {
		emails := make([]string, 0, len(contacts))
		for _, c := range contacts {
			emails = append(emails, c.Email)
		}
		return ImportResults{Imported: len(contacts), Emails: emails}, nil
	})
	if err != nil {
		return ImportOutput{}, err
	}
	return ImportOutput{Results: results}, nil
}

// csvOf is the event's csv when it is a string, else defaultCSV.
func csvOf(raw json.RawMessage) string {
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return defaultCSV
}

var newline = regexp.MustCompile(`\r?\n`)

// parseCSV keeps the cells as they appear in the file; normalize cleans them.
func parseCSV(text string) []Contact {
	var lines []string
	for _, l := range newline.Split(text, -1) {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	rows := []Contact{}
	if len(lines) == 0 {
		return rows
	}
	header := strings.Split(lines[0], ",")
	for i, h := range header {
		header[i] = strings.ToLower(strings.TrimSpace(h))
	}
	for _, line := range lines[1:] {
		cells := strings.Split(line, ",")
		row := map[string]string{}
		for i, col := range header {
			if i < len(cells) {
				row[col] = cells[i]
			} else {
				row[col] = ""
			}
		}
		rows = append(rows, Contact{Email: row["email"], Name: row["name"]})
	}
	return rows
}

// normalize trims and lowercases emails, drops empty ones and keeps the
// first row of each email.
func normalize(rows []Contact) []Contact {
	seen := map[string]bool{}
	out := []Contact{}
	for _, r := range rows {
		email := strings.ToLower(strings.TrimSpace(r.Email))
		if email == "" || seen[email] {
			continue
		}
		seen[email] = true
		out = append(out, Contact{Email: email, Name: strings.TrimSpace(r.Name)})
	}
	return out
}

// --- sync-systems ------------------------------------------------------------

// SyncRequested is the data of contacts/sync.requested.
type SyncRequested struct {
	Account string   `json:"account"`
	Emails  []string `json:"emails"`
	Systems []string `json:"systems"` // default: crm and mailing-list
}

// Synced is what one system took.
type Synced struct {
	System string `json:"system"`
	Synced int    `json:"synced"`
}

// SyncOutput is sync-systems' result.
type SyncOutput struct {
	Contacts int      `json:"contacts"`
	Systems  []Synced `json:"systems"`
}

func syncSystems(ctx context.Context, in sdk.Input[SyncRequested]) (SyncOutput, error) {
	d := in.Event.Data
	emails, err := step.Run(ctx, "load-contacts", func(context.Context) ([]string, error) {
		return normalizeEmails(d.Emails), nil
	})
	if err != nil {
		return SyncOutput{}, err
	}
	systems := d.Systems
	if len(systems) == 0 {
		systems = []string{"crm", "mailing-list"}
	}
	out := SyncOutput{Contacts: len(emails), Systems: []Synced{}}
	// One step per system: a system that fails is retried alone, and the
	// systems already synced are not pushed again.
	for _, system := range systems {
		s, err := step.Run(ctx, "sync-"+system, func(ctx context.Context) (Synced, error) {
			return push(ctx, system, emails)
		})
		if err != nil {
			return SyncOutput{}, err
		}
		out.Systems = append(out.Systems, s)
	}
	return out, nil
}

func normalizeEmails(in []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, e := range in {
		e = strings.ToLower(strings.TrimSpace(e))
		if e != "" && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

// push stands for the external system's API.
func push(_ context.Context, system string, emails []string) (Synced, error) {
	if strings.TrimSpace(system) == "" {
		return Synced{}, sdk.NonRetriable(errors.New("a system needs a name"))
	}
	return Synced{System: system, Synced: len(emails)}, nil
}

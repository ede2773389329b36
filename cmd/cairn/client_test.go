package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/internal/testnet"
	"github.com/cairn-dev/cairn/server"
)

// Flags may follow the positional arguments of a client command.
func TestFlagsFirst(t *testing.T) {
	for _, c := range []struct {
		args, pos []string
		json      bool
		limit     int
	}{
		{[]string{"RUN", "--json"}, []string{"RUN"}, true, 20},
		{[]string{"--json", "RUN"}, []string{"RUN"}, true, 20},
		{[]string{"RUN", "--limit", "5", "-json=false", "X"}, []string{"RUN", "X"}, false, 5},
		{[]string{"RUN", "--limit=7", "-1"}, []string{"RUN", "-1"}, false, 7},
		{[]string{"NAME", "--", "--json"}, []string{"NAME", "--json"}, false, 20},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		asJSON := fs.Bool("json", false, "")
		limit := fs.Int("limit", 20, "")
		if err := fs.Parse(flagsFirst(fs, c.args)); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if !slices.Equal(fs.Args(), c.pos) || *asJSON != c.json || *limit != c.limit {
			t.Errorf("%v: args %v json %v limit %d; want %v %v %d", c.args, fs.Args(), *asJSON, *limit, c.pos, c.json, c.limit)
		}
	}
}

// capture runs a client command and returns what it printed.
func capture(t *testing.T, cmd func([]string) error, args ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	was := stdout
	stdout = &buf
	defer func() { stdout = was }()
	if err := cmd(args); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return buf.Bytes()
}

// A run cancelled from the CLI: "cairn history RUN --json" (flags after
// the argument) prints one JSON document that names the CLI as the
// canceller; the table shows it too, with RFC 3339 times.
func TestHistoryJSONNamesTheCLI(t *testing.T) {
	t.Setenv("CAIRN_ACTOR", "")
	t.Setenv("CAIRN_SIGNING_KEY", "")
	s, err := server.Start(server.Config{NodeID: "n1", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0",
		RaftAddr: testnet.FreeAddr(t, "127.0.0.1"), Bootstrap: true, ServerKind: "dev",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Actors are recorded once the cluster is known to read format 3: wait
	// for the leader's record of itself, and read the cluster's format anew.
	for deadline := time.Now().Add(10 * time.Second); s.Node.ClusterFormat(true) < fsm.FormatVersion; {
		if time.Now().After(deadline) {
			t.Fatal("the leader's format is not recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	base := s.URL()
	app := "http://" + testnet.FreeAddr(t, "127.0.0.1") + "/api/inngest" // nothing answers: the run waits to retry
	reg := fmt.Sprintf(`{"url":%q,"framework":"nodejs","appName":"cli-app","sdk":"js:v4.24.0","v":"0.1","functions":[`+
		`{"id":"cli-app-fn","name":"fn","triggers":[{"event":"cli/x"}],"steps":{"step":{"id":"step","name":"step",`+
		`"runtime":{"type":"http","url":%q}}}}]}`, app, app+"?fnId=cli-app-fn&stepId=step")
	resp, err := http.Post(base+"/fn/register", "application/json", strings.NewReader(reg))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("register: %v %v", resp, err)
	}
	resp.Body.Close()

	evID := strings.TrimSpace(string(capture(t, cmdSend, "cli/x", `{"n":1}`, "--url", base)))
	var runs []runJSON
	for deadline := time.Now().Add(10 * time.Second); len(runs) == 0 && time.Now().Before(deadline); {
		runs = nil
		json.Unmarshal(capture(t, cmdRuns, "--event", evID, "--url", base, "--json"), &runs)
		time.Sleep(20 * time.Millisecond)
	}
	if len(runs) != 1 {
		t.Fatalf("runs of event %q: %v", evID, runs)
	}
	capture(t, cmdCancel, runs[0].ID, "--reason", "enough", "--url", base)

	out := capture(t, cmdHistory, runs[0].ID, "--json", "--url", base)
	var hist []map[string]any
	if err := json.Unmarshal(out, &hist); err != nil || len(hist) == 0 {
		t.Fatalf("history --json is not a JSON array: %v\n%s", err, out)
	}
	var cancelled map[string]any
	for _, h := range hist {
		if h["type"] == fsm.HistRunEnded(fsm.StatusCancelled) {
			cancelled = h
		}
	}
	if cancelled == nil || cancelled["actor"] != "cli" || !strings.Contains(fmt.Sprint(cancelled["error"]), "enough") {
		t.Fatalf("the cancel's entry: %v", cancelled)
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(hist[0]["time"])); err != nil || hist[0]["input"] == nil {
		t.Fatalf("the first entry: %v", hist[0])
	}

	table := string(capture(t, cmdHistory, runs[0].ID, "--url", base))
	t.Logf("cairn history:\n%s", table)
	if !strings.Contains(table, "by cli") || !strings.Contains(table, "run.cancelled") ||
		!strings.Contains(table, time.Now().UTC().Format("2006-01-02T")) {
		t.Fatalf("history table:\n%s", table)
	}
	if events := string(capture(t, cmdEvents, "--url", base)); !strings.Contains(events, evID) || !strings.Contains(events, " cli ") {
		t.Fatalf("events table:\n%s", events)
	}
}

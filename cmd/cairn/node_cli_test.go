package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testnet"
	"github.com/cairn-dev/cairn/server"
)

// Against a real node: a run whose first step sleeps an hour says so in
// cairn runs (filtered by the function's short id and status) and in
// cairn run, with the step's name; cairn functions lists the function;
// cairn cancel --function takes its short id.
func TestCLIShowsWhatARunWaitsFor(t *testing.T) {
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
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Inngest-SDK", "js:v3.0.0")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusPartialContent)
		w.Write([]byte(`[{"op":"Sleep","id":"c0ffee","name":"1h","displayName":"wait-for-the-batch"}]`))
	}))
	t.Cleanup(app.Close)
	reg := fmt.Sprintf(`{"url":%q,"framework":"nodejs","appName":"crm","sdk":"js:v3.0.0","v":"0.1","functions":[`+
		`{"id":"crm-import-contacts","name":"Import contacts","triggers":[{"event":"crm/import"}],"throttle":{"limit":5,"period":"1m"},`+
		`"steps":{"step":{"id":"step","name":"step","runtime":{"type":"http","url":%q}}}}]}`, app.URL, app.URL+"?fnId=crm-import-contacts&stepId=step")
	resp, err := http.Post(s.URL()+"/fn/register", "application/json", strings.NewReader(reg))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("register: %v %v", resp, err)
	}
	resp.Body.Close()
	base := s.URL()
	capture(t, cmdSend, "crm/import", "--url", base)

	var runs []runJSON
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		runs = nil
		json.Unmarshal(capture(t, cmdRuns, "--function", "import-contacts", "--status", "running", "--since", "1m", "--url", base, "--json"), &runs)
		if len(runs) == 1 && runs[0].WaitingReason != "" {
			break
		}
	}
	if len(runs) != 1 || runs[0].WaitingReason != "sleeping" {
		t.Fatalf("running runs of import-contacts: %+v", runs)
	}
	table := string(capture(t, cmdRuns, "--url", base, "--function", "import-contacts"))
	if !strings.Contains(table, "sleeping, wakes in 59 min") && !strings.Contains(table, "sleeping, wakes in 60 min") {
		t.Fatalf("runs table:\n%s", table)
	}
	one := string(capture(t, cmdRun, runs[0].ID, "--url", base))
	if !strings.Contains(one, "(step wait-for-the-batch  c0ffee)") || !strings.Contains(one, "sleeping, wakes in") || !strings.Contains(one, "just now") {
		t.Fatalf("cairn run:\n%s", one)
	}
	fns := string(capture(t, cmdFunctions, "--url", base))
	t.Logf("cairn functions:\n%s", fns)
	if !strings.Contains(fns, "crm-import-contacts") || !strings.Contains(fns, "event crm/import") || !strings.Contains(fns, "throttle 5/1m0s") {
		t.Fatalf("cairn functions:\n%s", fns)
	}
	was := stderr
	stderr = io.Discard
	defer func() { stderr = was }()
	if out := string(capture(t, cmdCancel, "--function", "import-contacts", "--url", base)); !strings.Contains(out, "cancelled 1 runs") {
		t.Fatalf("cancel --function import-contacts: %s", out)
	}
}

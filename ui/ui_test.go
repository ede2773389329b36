package ui

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/raftnode"
	"github.com/labstack/echo/v4"
	"github.com/oklog/ulid/v2"
)

// openAuth is dev mode: every page open.
type openAuth struct{}

func (openAuth) Secured() bool                           { return false }
func (openAuth) Login(echo.Context, string) bool         { return false }
func (openAuth) Logout(echo.Context)                     {}
func (openAuth) PageSession(echo.Context) (string, bool) { return "", true }

type oneNode struct{}

func (oneNode) Stats() raftnode.Stats {
	return raftnode.Stats{NodeID: "n1", State: "Leader", LeaderID: "n1"}
}
func (oneNode) Members() ([]raftnode.Member, error) {
	return []raftnode.Member{{ID: "n1", RaftAddr: "127.0.0.1:1", Voter: true}}, nil
}

type noSync struct{}

func (noSync) Status() []api.SyncResult { return nil }

// seeded is a projection with an app of three functions and n runs, a
// tenth of them cancelled, created over the last n seconds.
func seeded(t testing.TB, n int) (*fsm.FSM, []string) {
	t.Helper()
	f, err := fsm.Open(t.TempDir(), fsm.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	idx := uint64(0)
	apply := func(recs ...fsm.Record) []fsm.Result {
		idx++
		data, err := fsm.EncodeEntry(recs...)
		if err != nil {
			t.Fatal(err)
		}
		return f.ApplyEntries([]fsm.Entry{{Index: idx, Data: data}})[0]
	}
	now := time.Now().Add(-time.Duration(n) * time.Second).UnixMilli()
	var fns []fsm.FunctionDef
	for i, ev := range []string{"shop/order", "shop/order", "shop/refund"} {
		fns = append(fns, fsm.FunctionDef{ID: fmt.Sprintf("shop-fn%d", i), Name: fmt.Sprintf("fn %d", i),
			URL: "http://app/api", Retries: -1, Triggers: []fsm.Trigger{{Event: ev}}})
	}
	fns[1].Throttle = &fsm.RateSpec{Limit: 10, PeriodMs: 60_000}
	apply(&fsm.AppSynced{At: now, AppID: "shop", URL: "http://app/api", Checksum: "x", Functions: fns})
	var events []string
	for i := 0; i < n; {
		var recs []fsm.Record
		for ; i < n && len(recs) < 500; i++ {
			at := now + int64(i)*1000
			id := ulid.MustNew(uint64(at), rand.Reader).String()
			name := "shop/order"
			if i%2 == 1 {
				name = "shop/refund"
			}
			raw, _ := json.Marshal(map[string]any{"name": name, "data": map[string]int{"i": i}, "id": id, "ts": at})
			recs = append(recs, &fsm.EventAccepted{At: at, ID: id, Name: name, JSON: raw})
			events = append(events, id)
		}
		apply(recs...)
	}
	runs, err := f.RunsBefore("", n)
	if err != nil {
		t.Fatal(err)
	}
	var cancels []fsm.Record
	for i := 0; i < len(runs); i += 10 {
		cancels = append(cancels, &fsm.CancelRequested{At: time.Now().UnixMilli(), RunID: runs[i].ID})
	}
	apply(cancels...)
	return f, events
}

func newTestUI(t testing.TB, f *fsm.FSM) http.Handler {
	e := echo.New()
	Mount(e, Config{Auth: openAuth{}, FSM: f, Node: oneNode{}, Syncer: noSync{}})
	return e
}

func get(t testing.TB, h http.Handler, path string) (int, string, time.Duration) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), time.Since(start)
}

// TestUIPagesWith10kRuns: every page renders with 10,000 runs (here 15,000:
// three functions, two on the same event) and logs how long it took. The
// time is a figure, not an assertion (a busy 2-core machine would make it
// flaky); the budget is 100 ms, and the worst page measured ~40 ms.
func TestUIPagesWith10kRuns(t *testing.T) {
	f, events := seeded(t, 10_000)
	h := newTestUI(t, f)
	runs, _ := f.RunsBefore("", 1)
	paths := []string{"/", "/runs", "/runs?status=cancelled", "/runs?status=failed", "/runs?function=shop-fn1",
		"/runs?function=shop-fn2&status=running&since=1h", "/runs?since=15m", "/runs?before=" + runs[0].ID,
		"/runs/" + runs[0].ID, "/functions", "/events", "/events?name=shop/refund", "/events/" + events[0],
		"/send", "/replay", "/apps", "/cluster"}
	for _, p := range paths {
		get(t, h, p) // warm the caches, as a server that has been up a while has them
		best := time.Hour
		for range 5 {
			code, body, d := get(t, h, p)
			if code != http.StatusOK {
				t.Fatalf("GET %s: %d\n%s", p, code, body)
			}
			best = min(best, d)
		}
		t.Logf("GET %-50s %v", p, best)
	}
}

// TestUIRunsFilterAndPages: the runs page filters by function and status
// and its pages list every matching run once, also when the scan budget
// cuts pages short.
func TestUIRunsFilterAndPages(t *testing.T) {
	f, _ := seeded(t, 240)
	h := newTestUI(t, f)
	defer func(b int) { scanBudget = b }(scanBudget)
	for _, budget := range []int{6000, 60} {
		scanBudget = budget
		for _, tc := range []struct {
			query    string
			fns      []string
			statuses []string
		}{
			{"function=shop-fn0&status=running", []string{"shop-fn0"}, []string{fsm.StatusRunning}},
			{"status=cancelled", []string{"shop-fn0", "shop-fn1", "shop-fn2"}, []string{fsm.StatusCancelled}},
			{"since=24h", []string{"shop-fn0", "shop-fn1", "shop-fn2"}, nil},
		} {
			want := map[string]bool{}
			for _, fn := range tc.fns {
				all, _ := f.FunctionRuns(fsm.RunQuery{FnID: fn, To: time.Now().UnixMilli() + 1, Statuses: tc.statuses})
				for _, r := range all {
					want[r.ID] = true
				}
			}
			seen := map[string]bool{}
			path := "/runs?" + tc.query
			for pages := 0; path != ""; pages++ {
				code, body, _ := get(t, h, path)
				if code != http.StatusOK || pages > 100 {
					t.Fatalf("GET %s: %d (page %d)", path, code, pages)
				}
				for _, id := range runIDs.FindAllStringSubmatch(body, -1) {
					if seen[id[1]] || !want[id[1]] {
						t.Fatalf("budget %d, %s: run %s listed twice or not matching", budget, tc.query, id[1])
					}
					seen[id[1]] = true
				}
				path = ""
				if m := nextPage.FindStringSubmatch(body); m != nil {
					path = "/runs?" + strings.ReplaceAll(m[1], "&amp;", "&")
				}
			}
			if len(seen) != len(want) || len(want) == 0 {
				t.Fatalf("budget %d, %s: pages listed %d runs, %d match", budget, tc.query, len(seen), len(want))
			}
		}
	}
}

func TestUISafeNext(t *testing.T) {
	for in, want := range map[string]string{"/runs?x=1": "/runs?x=1", "//evil.com": "/", "https://evil.com": "/",
		"/\\evil.com": "/", "": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUITimeline(t *testing.T) {
	d := int64(40)
	hist := []api.HistoryView{
		{HistoryEntry: fsm.HistoryEntry{At: 1000, Type: fsm.HistRunScheduled}},
		{HistoryEntry: fsm.HistoryEntry{At: 1100, Type: fsm.HistStepCompleted}, Step: "a", StepName: "first", DurationMs: &d},
		{HistoryEntry: fsm.HistoryEntry{At: 1200, Type: fsm.HistStepErrored, Attempt: 0}, Step: "b", StepName: "second", Error: json.RawMessage(`{"message":"x"}`)},
		{HistoryEntry: fsm.HistoryEntry{At: 1300, Type: fsm.HistStepFailed, Attempt: 1}, Step: "b", Error: json.RawMessage(`{"message":"y"}`)},
		{HistoryEntry: fsm.HistoryEntry{At: 1350, Type: fsm.HistStepSleeping, Detail: "c until 9000"}, Step: "c", StepName: "nap"},
	}
	rows := timeline(hist, 1400, 0)
	if len(rows) != 3 || rows[2].State != stepSleeping || rows[2].Until != 9000 || rows[2].End != 0 {
		t.Fatalf("sleeping step %+v", rows[len(rows)-1])
	}
	if len(rows) != 3 || rows[0].Name != "first" || rows[0].Start != 1060 || rows[0].State != fsm.StatusCompleted {
		t.Fatalf("rows %+v", rows)
	}
	if rows[1].State != fsm.StatusFailed || rows[1].Attempts != 2 || string(rows[1].Error) != `{"message":"y"}` || rows[1].Name != "second" {
		t.Fatalf("failed step %+v", rows[1])
	}
	if rows[0].Left != 15 || rows[0].Width != 10 {
		t.Fatalf("bar of the first step: left %v width %v", rows[0].Left, rows[0].Width)
	}
}

var (
	runIDs   = regexp.MustCompile(`href="/runs/([0-9A-Z]{26})"`)
	nextPage = regexp.MustCompile(`<a href="\?([^"]+)" rel="next">`)
)

package api_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/server"
)

type logLine = api.LogRecord

// readLog pages through GET /v1/log from index 1 to the end.
func readLog(t *testing.T, base string, limit int) []logLine {
	t.Helper()
	var out []logLine
	for from := uint64(1); ; {
		r := get(t, fmt.Sprintf("%s/v1/log?from_index=%d&limit=%d", base, from, limit))
		if r.status != 200 {
			t.Fatalf("GET /v1/log from %d: %d %s", from, r.status, r.body)
		}
		var page struct {
			Data      []logLine `json:"data"`
			NextIndex uint64    `json:"next_index"`
		}
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Data...)
		if page.NextIndex == from {
			return out
		}
		from = page.NextIndex
	}
}

// sendEvents sends n events named log/test with data {"n": i}.
func sendLogEvents(t *testing.T, base string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if r := post(t, base+"/e/k", fmt.Sprintf(`{"name":"log/test","data":{"n":%d}}`, i), nil); r.status != 200 {
			t.Fatalf("send: %d %s", r.status, r.body)
		}
	}
}

// TestLogServesEveryRecordAfterCompaction: with a tiny snapshot threshold
// the log is compacted under the node again and again, and /v1/log still
// lists every record from index 1, in order, each event once.
func TestLogServesEveryRecordAfterCompaction(t *testing.T) {
	var dataDir string
	s := startNode(t, func(c *server.Config) { c.SnapshotThreshold, c.TrailingLogs, dataDir = 4, 2, c.DataDir })
	base := s.URL()
	for round := range 4 {
		sendLogEvents(t, base, round*10, round*10+10)
		if err := s.Node.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	if first, _ := s.Node.LogSource().FirstIndex(); first != 1 {
		t.Fatalf("first readable index %d", first)
	}
	lines := readLog(t, base, 7)
	var prev logLine
	var n []int
	kinds := map[string]int{}
	for i, l := range lines {
		if i > 0 && (l.Index < prev.Index || l.Index == prev.Index && l.Position != prev.Position+1) {
			t.Fatalf("out of order: %+v after %+v", l, prev)
		}
		prev = l
		kinds[l.Kind]++
		if l.Kind != "EventAccepted" {
			continue
		}
		var body struct {
			Name string
			JSON struct{ Data struct{ N int } } // the event, inline
		}
		if err := json.Unmarshal(l.Body, &body); err != nil || body.Name != "log/test" || l.Time == 0 {
			t.Fatalf("event record %s: %v", l.Body, err)
		}
		n = append(n, body.JSON.Data.N)
	}
	if len(n) != 40 {
		t.Fatalf("%d events in the log, want 40 (kinds %v)", len(n), kinds)
	}
	for i, v := range n {
		if v != i {
			t.Fatalf("event %d has n=%d", i, v)
		}
	}
	if kinds["NodeSeen"] == 0 || lines[0].Kind != "NodeSeen" {
		t.Fatalf("the log's first records are missing: kinds %v, first %+v", kinds, lines[0])
	}
	var st struct {
		Archive struct {
			Segments int    `json:"segments"`
			First    uint64 `json:"first_index"`
		} `json:"archive"`
	}
	json.Unmarshal(get(t, base+"/v1/status").body, &st)
	if st.Archive.Segments == 0 || st.Archive.First != 1 {
		t.Fatalf("status archive %+v", st.Archive)
	}

	// A damaged segment is reported (500 archive_corrupt), never served.
	segs, _ := filepath.Glob(filepath.Join(dataDir, "archive", "segment-*"))
	if len(segs) == 0 {
		t.Fatal("no segment on disk")
	}
	raw, _ := os.ReadFile(segs[0])
	raw[len(raw)/2] ^= 0xff
	os.Chmod(segs[0], 0o644)
	if err := os.WriteFile(segs[0], raw, 0o444); err != nil {
		t.Fatal(err)
	}
	r := get(t, base+"/v1/log?from_index=1")
	if m := r.json(t); r.status != 500 || m["code"] != "archive_corrupt" || m["data"] != nil {
		t.Fatalf("corrupt segment: %d %s", r.status, r.body)
	}
}

// TestLogBadParams: bad query parameters are a 400 that says what is
// wrong; an index before the first readable one is a 410.
func TestLogBadParams(t *testing.T) {
	s := startNode(t)
	for _, q := range []string{"from_index=0", "from_index=-1", "from_index=x", "limit=0", "limit=1001", "limit=ten", "from_index=1.5"} {
		r := get(t, s.URL()+"/v1/log?"+q)
		if m := r.json(t); r.status != 400 || m["code"] != "bad_request" || !strings.Contains(fmt.Sprint(m["error"]), strings.SplitN(q, "=", 2)[0]) {
			t.Errorf("%s: %d %s", q, r.status, r.body)
		}
	}
	r := get(t, s.URL()+"/v1/log?from_index=1000000")
	if m := r.json(t); r.status != 200 || m["next_index"] != float64(1000000) {
		t.Fatalf("past the end: %d %s", r.status, r.body)
	}
}

// syncBuf is a log destination tests read.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestArchiveRetentionInStatus: a byte limit drops the oldest segments;
// /v1/status says how many, through which index, and the log says so;
// /v1/log then starts after them and refuses earlier indexes with a 410.
func TestArchiveRetentionInStatus(t *testing.T) {
	var logs syncBuf
	s := startNode(t, func(c *server.Config) {
		c.SnapshotThreshold, c.TrailingLogs = 4, 2
		c.Archive.MaxBytes = 1 // keeps nothing: every segment goes as soon as it is written
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	base := s.URL()
	sendLogEvents(t, base, 0, 10)
	if err := s.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Archive struct {
			Segments int `json:"segments"`
			Dropped  struct {
				Segments int    `json:"segments"`
				Bytes    int64  `json:"bytes"`
				Through  uint64 `json:"through_index"`
				LastAt   int64  `json:"last_drop_at"`
			} `json:"dropped"`
		} `json:"archive"`
	}
	json.Unmarshal(get(t, base+"/v1/status").body, &st)
	d := st.Archive.Dropped
	if st.Archive.Segments != 0 || d.Segments == 0 || d.Bytes == 0 || d.Through == 0 || d.LastAt == 0 {
		t.Fatalf("status archive %+v", st.Archive)
	}
	if !strings.Contains(logs.String(), "archive retention dropped segments") {
		t.Fatal("retention did not log what it dropped")
	}
	first, _ := s.Node.LogSource().FirstIndex()
	if first <= d.Through {
		t.Fatalf("first readable %d, dropped through %d", first, d.Through)
	}
	r := get(t, base+"/v1/log?from_index=1")
	if m := r.json(t); r.status != 410 || m["code"] != "log_gone" {
		t.Fatalf("from a dropped index: %d %s", r.status, r.body)
	}
	if lines := readLogFrom(t, base, first); len(lines) == 0 {
		t.Fatal("nothing readable after the dropped segments")
	}
}

func readLogFrom(t *testing.T, base string, from uint64) []logLine {
	t.Helper()
	r := get(t, fmt.Sprintf("%s/v1/log?from_index=%d&limit=1000", base, from))
	if r.status != 200 {
		t.Fatalf("GET /v1/log: %d %s", r.status, r.body)
	}
	var page struct{ Data []logLine }
	json.Unmarshal(r.body, &page)
	return page.Data
}

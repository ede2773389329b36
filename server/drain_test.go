package server

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A leader stopped on purpose (rolling restart) finishes the app call it has
// in flight, records the answer and hands leadership over: the step runs
// once, and the run completes without anyone waiting out the call's lease
// (2 min 10 s here, far longer than waitUntil's 60 s).
func TestGracefulStopDrainsAndHandsOver(t *testing.T) {
	stepA := sha1.Sum([]byte("a"))
	idA := hex.EncodeToString(stepA[:])
	var execs atomic.Int32
	inStep := make(chan struct{}, 1)
	release := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Steps map[string]json.RawMessage `json:"steps"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("X-Inngest-SDK", "cairn-test:v0")
		w.Header().Set("Content-Type", "application/json")
		if _, ok := body.Steps[idA]; !ok {
			execs.Add(1)
			select {
			case inStep <- struct{}{}:
			default:
			}
			<-release // the step is slow: the leader is stopped meanwhile
			w.WriteHeader(206)
			fmt.Fprintf(w, `[{"id":%q,"op":"StepRun","name":"a","displayName":"a","data":1}]`, idA)
			return
		}
		w.WriteHeader(200)
		io.WriteString(w, `"done"`)
	}))
	defer app.Close()

	nodes := cluster(t, func(c *Config) { c.CallTimeout = 2 * time.Minute })
	old := leaderOf(nodes)
	var rest []*testNode
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	register(t, rest[0], app.URL)
	ev, code := sendEvent(t, rest[0])
	if code != 200 {
		t.Fatalf("event: %d", code)
	}
	<-inStep
	stopped := make(chan struct{})
	go func() { old.stop(); close(stopped) }()
	// The old leader drains: it is still waiting for the step's answer.
	time.Sleep(200 * time.Millisecond)
	close(release)
	<-stopped
	waitUntil(t, "a new leader", func() bool { return leaderOf(rest) != nil })
	waitUntil(t, "the run to complete", func() bool { return runStatus(rest[0], ev) == "completed" })
	if n := execs.Load(); n != 1 {
		t.Fatalf("step a ran %d times, want 1", n)
	}
}

package server

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testnet"
)

// These tests run real three-node clusters on loopback: Raft over TCP,
// each node's HTTP API, and a small app speaking the SDK protocol.

func freeAddr(t *testing.T) string {
	t.Helper()
	return testnet.FreeAddr(t, "127.0.0.1")
}

// protocolApp is a two-step function: step "a", then it returns "done".
func protocolApp(t *testing.T) *httptest.Server { return protocolAppWith(t, nil) }

// protocolAppWith calls inStep (if not nil) each time step "a" runs, before
// answering.
func protocolAppWith(t *testing.T, inStep func()) *httptest.Server {
	return oneStepApp(t, "a", `{"op":"StepRun","name":"a","displayName":"a","data":1}`, `"done"`, inStep)
}

// oneStepApp is an app whose function has one step, named step: a call
// without it memoized is answered 206 with op (its "id" is added) after
// calling inStep (if not nil), a call with it 200 with the result done.
func oneStepApp(t *testing.T, step, op, done string, inStep func()) *httptest.Server {
	sum := sha1.Sum([]byte(step))
	id := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Steps map[string]json.RawMessage `json:"steps"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("X-Inngest-SDK", "cairn-test:v0")
		w.Header().Set("Content-Type", "application/json")
		if _, ok := body.Steps[id]; !ok {
			if inStep != nil {
				inStep()
			}
			w.WriteHeader(206)
			fmt.Fprintf(w, `[{"id":%q,%s]`, id, op[1:])
			return
		}
		w.WriteHeader(200)
		io.WriteString(w, done)
	}))
	t.Cleanup(srv.Close)
	return srv
}

type testNode struct {
	srv  *Server
	cfg  Config
	once sync.Once
}

func (n *testNode) stop() { n.once.Do(func() { n.srv.Close() }) }

func startNode(t *testing.T, id, join string, tweak func(*Config)) *testNode {
	t.Helper()
	cfg := Config{NodeID: id, DataDir: t.TempDir(), HTTPAddr: freeAddr(t), RaftAddr: freeAddr(t),
		ServerKind: "cloud", Bootstrap: join == "", Join: join}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{srv: s, cfg: cfg}
	t.Cleanup(n.stop)
	return n
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func post(url string, body any) (int, []byte) {
	b, _ := json.Marshal(body)
	resp, err := testClient.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func get(url string, out any) int {
	resp, err := testClient.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(out)
	return resp.StatusCode
}

// cluster starts n1 (bootstrap) and two nodes that join it through n1's
// HTTP API, and waits until all three are voters.
func cluster(t *testing.T, tweak func(*Config)) []*testNode {
	n1 := startNode(t, "n1", "", tweak)
	waitUntil(t, "n1 to lead", n1.srv.Node.IsLeader)
	nodes := []*testNode{n1, startNode(t, "n2", n1.srv.Addr(), tweak), startNode(t, "n3", n1.srv.Addr(), tweak)}
	waitUntil(t, "three voters", func() bool {
		m, err := n1.srv.Node.Members()
		return err == nil && len(m) == 3
	})
	return nodes
}

// without returns nodes less n.
func without(nodes []*testNode, n *testNode) []*testNode {
	var out []*testNode
	for _, m := range nodes {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

// sendEvents sends count events through via, each of which must be accepted.
func sendEvents(t *testing.T, via *testNode, count int) []string {
	t.Helper()
	var ids []string
	for range count {
		id, code := sendEvent(t, via)
		if code != 200 {
			t.Fatalf("event through %s: %d", via.cfg.NodeID, code)
		}
		ids = append(ids, id)
	}
	return ids
}

func leaderOf(nodes []*testNode) *testNode {
	for _, n := range nodes {
		if n.srv.Node.IsLeader() {
			return n
		}
	}
	return nil
}

func register(t *testing.T, via *testNode, appURL string) {
	t.Helper()
	body := map[string]any{
		"url": appURL, "appName": "capp", "framework": "test", "sdk": "go:v0",
		"functions": []any{map[string]any{
			"id": "capp-two", "name": "two", "triggers": []any{map[string]any{"event": "c/go"}},
			"steps": map[string]any{"step": map[string]any{"id": "step", "name": "step",
				"runtime": map[string]any{"type": "http", "url": appURL + "?fnId=capp-two&stepId=step"}}},
		}},
	}
	// Registration goes to a follower on purpose: it must be forwarded.
	waitUntil(t, "registration through "+via.cfg.NodeID, func() bool {
		code, _ := post(via.srv.URL()+"/fn/register", body)
		return code == 200
	})
}

func sendEvent(t *testing.T, via *testNode) (string, int) {
	var out struct {
		IDs []string `json:"ids"`
	}
	code, raw := post(via.srv.URL()+"/e/key", map[string]any{"name": "c/go", "data": map[string]any{}})
	json.Unmarshal(raw, &out)
	if code == 200 && len(out.IDs) == 1 {
		return out.IDs[0], code
	}
	return "", code
}

func runStatus(via *testNode, eventID string) string {
	var out struct {
		Data []struct {
			Status string `json:"status"`
		} `json:"data"`
	}
	if get(via.srv.URL()+"/v1/events/"+eventID+"/runs", &out) != 200 || len(out.Data) == 0 {
		return ""
	}
	return out.Data[0].Status
}

func converged(t *testing.T, nodes []*testNode) {
	t.Helper()
	waitUntil(t, "every node to reach the same state", func() bool {
		a0, _ := nodes[0].srv.FSM.Applied()
		d0, _ := nodes[0].srv.FSM.StateDigest()
		for _, n := range nodes[1:] {
			a, _ := n.srv.FSM.Applied()
			d, _ := n.srv.FSM.StateDigest()
			if a != a0 || d != d0 {
				return false
			}
		}
		return true
	})
}

func TestClusterLeaderKillRunsFinish(t *testing.T) {
	app := protocolApp(t)
	// Calls in flight on the dead leader are re-sent once their lease ends:
	// a short call timeout keeps that lease short.
	nodes := cluster(t, func(c *Config) { c.CallTimeout = 2 * time.Second })
	var follower *testNode
	for _, n := range nodes {
		if !n.srv.Node.IsLeader() {
			follower = n
			break
		}
	}
	register(t, follower, app.URL)
	events := sendEvents(t, follower, 20)
	// Kill the leader mid-way; the survivors elect another and finish.
	old := leaderOf(nodes)
	old.stop()
	rest := without(nodes, old)
	waitUntil(t, "a new leader", func() bool { return leaderOf(rest) != nil })
	for range 10 {
		waitUntil(t, "an event accepted after failover", func() bool {
			id, code := sendEvent(t, rest[0])
			if code == 200 {
				events = append(events, id)
			}
			return code == 200
		})
	}
	for _, ev := range events {
		waitUntil(t, "run of "+ev+" to complete", func() bool { return runStatus(rest[1], ev) == "completed" })
	}
	converged(t, rest)
}

func TestClusterFollowerRedirectsOnRequest(t *testing.T) {
	nodes := cluster(t, nil)
	leader := leaderOf(nodes)
	var follower *testNode
	for _, n := range nodes {
		if n != leader {
			follower = n
		}
	}
	waitUntil(t, "the leader's address to be known", func() bool {
		info, _ := follower.srv.FSM.Node(leader.cfg.NodeID)
		return info != nil
	})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Post(follower.srv.URL()+"/e/key?redirect=true", "application/json", bytes.NewReader([]byte(`{"name":"x"}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != leader.srv.URL()+"/e/key?redirect=true" {
		t.Fatalf("follower answered %d %q, want 307 to %s", resp.StatusCode, resp.Header.Get("Location"), leader.srv.URL())
	}
	// Reads with consistency=local are served by the follower itself.
	var runs struct {
		Data []any `json:"data"`
	}
	if code := get(follower.srv.URL()+"/v1/runs?consistency=local", &runs); code != 200 {
		t.Fatalf("local read: %d", code)
	}
}

// TestFullPoolNeverStrandsACall runs many runs through a pool of two
// calls with the executor's safety-net full read turned off: every call
// must be found through the due-time hints alone (a missed hint would leave
// runs waiting forever, and the test would time out).
func TestFullPoolNeverStrandsACall(t *testing.T) {
	app := protocolApp(t)
	n := startNode(t, "solo", "", func(c *Config) { c.MaxInflight, c.FullScanEvery = 2, time.Hour })
	waitUntil(t, "leadership", n.srv.Node.IsLeader)
	register(t, n, app.URL)
	// Concurrent senders overfill the pool now and then, which is when an
	// answer cannot lease its run's next call and leaves it queued.
	var mu sync.Mutex
	var events []string
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if id, code := sendEvent(t, n); code == 200 {
					mu.Lock()
					events = append(events, id)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(events) != 400 {
		t.Fatalf("%d of 400 events accepted", len(events))
	}
	for _, ev := range events {
		deadline := time.Now().Add(60 * time.Second)
		for runStatus(n, ev) != "completed" {
			if time.Now().After(deadline) {
				// What the stranded run's calls look like, for whoever
				// chases it: queued (due), claimed (lease end, by whom).
				runs, _ := n.srv.FSM.RunsForEvent(ev)
				for _, id := range runs {
					calls, _ := n.srv.FSM.RunCalls(id)
					r, _ := n.srv.FSM.Run(id)
					t.Logf("run %s: %+v\ncalls: %+v", id, r, calls)
				}
				t.Fatalf("run of %s never completed", ev)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
}

func TestClusterMinorityNeverAcknowledges(t *testing.T) {
	nodes := cluster(t, nil)
	leader := leaderOf(nodes)
	for _, n := range nodes {
		if n != leader {
			n.stop()
		}
	}
	// The old leader is alone: a write may not be acknowledged.
	for range 3 {
		if id, code := sendEvent(t, leader); code == 200 {
			t.Fatalf("a one-node minority acknowledged event %s", id)
		}
	}
}

func TestClusterSnapshotInstallCatchesUpNewNode(t *testing.T) {
	app := protocolApp(t)
	small := func(c *Config) { c.SnapshotThreshold, c.TrailingLogs = 64, 16 }
	nodes := cluster(t, small)
	leader := leaderOf(nodes)
	register(t, leader, app.URL)
	events := sendEvents(t, leader, 200)
	for _, ev := range events {
		waitUntil(t, "runs to complete", func() bool { return runStatus(leader, ev) == "completed" })
	}
	if err := leader.srv.Node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	// The log behind the snapshot is gone: a new node can only catch up
	// through InstallSnapshot of the streamed projection.
	n4 := startNode(t, "n4", leader.srv.Addr(), small)
	nodes = append(nodes, n4)
	converged(t, nodes)
	if s := runStatus(n4, events[0]); s != "completed" {
		t.Fatalf("the new node's projection lacks old runs: %q", s)
	}
	var status struct {
		Members []struct {
			ID string `json:"id"`
		} `json:"members"`
	}
	get(n4.srv.URL()+"/v1/cluster", &status)
	if len(status.Members) != 4 {
		t.Fatalf("members seen by n4: %+v", status.Members)
	}
	_ = context.Background
}

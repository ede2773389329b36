package server

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
)

// A bulk replay started on a follower and carried across a leader change
// reruns every run of its window exactly once.
func TestClusterReplayAcrossLeaderChange(t *testing.T) {
	app := protocolApp(t)
	nodes := cluster(t, func(c *Config) { c.CallTimeout = 2 * time.Second })
	var follower *testNode
	for _, n := range nodes {
		if !n.srv.Node.IsLeader() {
			follower = n
			break
		}
	}
	register(t, follower, app.URL)
	from := time.Now().UnixMilli()
	events := sendEvents(t, follower, 300)
	for _, ev := range events {
		waitUntil(t, "run of "+ev+" to complete", func() bool { return runStatus(follower, ev) == "completed" })
	}
	to := time.Now().UnixMilli()

	code, raw := post(follower.srv.URL()+"/v1/replays", map[string]any{
		"function_id": "capp-two", "from": from, "to": to, "statuses": []string{"completed"}})
	var started struct {
		Data struct {
			ID   string `json:"replay_id"`
			Runs int    `json:"runs"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &started); err != nil || code != 201 || started.Data.Runs != len(events) {
		t.Fatalf("replay: %d %s", code, raw)
	}
	// Depose the leader while it starts the reruns.
	old := leaderOf(nodes)
	waitUntil(t, "the first reruns", func() bool {
		rp, _ := old.srv.FSM.Replay(started.Data.ID)
		return rp != nil && rp.Next > 0
	})
	old.stop()
	rest := without(nodes, old)
	waitUntil(t, "a new leader", func() bool { return leaderOf(rest) != nil })
	via := rest[0]
	waitUntil(t, "the replay to finish", func() bool {
		rp, err := via.srv.FSM.Replay(started.Data.ID)
		return err == nil && rp != nil && rp.Status == fsm.ReplayStatusCompleted
	})
	places, err := via.srv.FSM.ReplayRuns(started.Data.ID, 0, 0)
	if err != nil || len(places) != len(events) {
		t.Fatalf("%d places, %v", len(places), err)
	}
	runs, err := via.srv.FSM.FunctionRuns(fsm.RunQuery{FnID: "capp-two", From: from, To: time.Now().UnixMilli() + 1})
	if err != nil {
		t.Fatal(err)
	}
	reruns := map[string]int{} // old run -> its reruns
	for _, r := range runs {
		if r.RerunOf != "" {
			reruns[r.RerunOf]++
		}
	}
	seen := map[string]bool{}
	for i, p := range places {
		if p.New == "" || seen[p.Old] || reruns[p.Old] != 1 {
			t.Fatalf("place %d %+v: rerun %d times (seen before: %v)", i, p, reruns[p.Old], seen[p.Old])
		}
		seen[p.Old] = true
	}
	if len(reruns) != len(events) {
		t.Fatalf("%d runs were rerun, want %d", len(reruns), len(events))
	}
	for _, p := range places {
		waitUntil(t, fmt.Sprintf("rerun %s to complete", p.New), func() bool {
			r, _ := via.srv.FSM.Run(p.New)
			return r != nil && r.Status == fsm.StatusCompleted
		})
	}
	converged(t, rest)
}

package server

import (
	"fmt"
	"testing"
)

// The state at a past index is the same on every replica (each rebuilds
// it from its own log), and at the applied index it is the live state.
func TestClusterStateAtIndexIsTheSameOnEveryNode(t *testing.T) {
	app := protocolApp(t)
	nodes := cluster(t, nil)
	leader := leaderOf(nodes)
	register(t, leader, app.URL)
	events := sendEvents(t, leader, 10)
	for _, ev := range events {
		waitUntil(t, "run of "+ev+" to complete", func() bool { return runStatus(leader, ev) == "completed" })
	}
	converged(t, nodes)
	applied, _ := leader.srv.FSM.Applied()
	live, _ := leader.srv.FSM.StateDigest()
	type state struct {
		Data struct {
			Index  uint64         `json:"index"`
			Digest string         `json:"digest"`
			Runs   map[string]int `json:"runs"`
			Build  *struct {
				From string `json:"from"`
			} `json:"build"`
		} `json:"data"`
	}
	for _, index := range []uint64{applied / 2, applied - 1, applied} {
		var digests []string
		for _, n := range nodes {
			var st state
			// consistency=local: each node answers from its own log.
			if code := get(fmt.Sprintf("%s/v1/state?at_index=%d&consistency=local", n.srv.URL(), index), &st); code != 200 || st.Data.Build == nil {
				t.Fatalf("%s: state at %d: HTTP %d %+v", n.cfg.NodeID, index, code, st)
			}
			digests = append(digests, st.Data.Digest)
			if index == applied && (st.Data.Digest != live || st.Data.Runs["completed"] != len(events)) {
				t.Fatalf("%s: state at the applied index %d: %+v, live digest %s", n.cfg.NodeID, index, st.Data, live)
			}
		}
		for i, d := range digests {
			if d != digests[0] {
				t.Fatalf("state at %d: %s has digest %s, %s has %s", index, nodes[i].cfg.NodeID, d, nodes[0].cfg.NodeID, digests[0])
			}
		}
	}
}

package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/faultnet"
	"github.com/cairn-dev/cairn/internal/testnet"
)

// A leader cut off from both peers (silently: its packets vanish) must not
// acknowledge anything, the other two must elect a leader and go on, and
// after healing all three must agree. Each node listens on its own loopback
// IP and is reached by its peers through faultnet proxies, which can tell
// the nodes apart by source address.
func TestClusterPartitionedLeader(t *testing.T) {
	app := protocolApp(t)
	mesh := &faultnet.Mesh{}
	t.Cleanup(mesh.Close)
	// A call the cut-off leader had in flight and cannot forward is
	// re-sent once its lease (call timeout + 10 s) runs out.
	nodes := meshCluster(t, mesh, 60, 2*time.Second)
	register(t, nodes[1], app.URL)
	before, _ := sendEvent(t, nodes[2])
	if before == "" {
		t.Fatal("no event accepted before the partition")
	}

	oldIdx := -1
	waitUntil(t, "a leader", func() bool {
		for i, n := range nodes {
			if n.srv.Node.IsLeader() {
				oldIdx = i
				return true
			}
		}
		return false
	})
	old := nodes[oldIdx]
	var rest []*testNode
	var restIdx []int
	for i, n := range nodes {
		if i != oldIdx {
			rest, restIdx = append(rest, n), append(restIdx, i)
		}
	}
	// Cut the leader off both ways, Raft and forwarded HTTP alike.
	mesh.Cut(oldIdx, restIdx...)

	// Clients can still reach the old leader: it must refuse, not ack.
	client := &http.Client{Timeout: 45 * time.Second}
	for range 3 {
		resp, err := client.Post(old.srv.URL()+"/e/key", "application/json",
			strings.NewReader(`{"name":"c/go","data":{}}`))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Fatal("a cut-off leader acknowledged an event")
			}
		}
	}
	// The majority elects a leader among itself and goes on.
	waitUntil(t, "a leader in the majority", func() bool {
		return rest[0].srv.Node.IsLeader() || rest[1].srv.Node.IsLeader()
	})
	var during []string
	for _, m := range rest {
		waitUntil(t, "an event accepted by the majority", func() bool {
			id, code := sendEvent(t, m)
			if code == 200 {
				during = append(during, id)
			}
			return code == 200
		})
	}
	for _, id := range append([]string{before}, during...) {
		waitUntil(t, "run of "+id+" to complete", func() bool { return runStatus(rest[0], id) == "completed" })
	}

	mesh.Heal()
	converged(t, nodes)
	// The old leader has caught up with what the majority accepted.
	for _, id := range during {
		if ev, err := old.srv.FSM.Event(id); err != nil || ev == nil {
			t.Fatalf("old leader lacks event %s after healing (%v)", id, err)
		}
	}
}

func freeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	return testnet.FreeAddr(t, ip)
}

// meshCluster starts three nodes, n1 leading, each on its own loopback IP
// (127.0.0.<base+i>) and reached by its peers through mesh's proxies, so
// that one can be cut off; calls time out after callTimeout.
func meshCluster(t *testing.T, mesh *faultnet.Mesh, base int, callTimeout time.Duration) []*testNode {
	t.Helper()
	var nodes []*testNode
	for i := 1; i <= 3; i++ {
		ip := fmt.Sprintf("127.0.0.%d", base+i)
		httpAddr, raftAddr := freeAddrOn(t, ip), freeAddrOn(t, ip)
		px, err := mesh.Add(ip, raftAddr, httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		join := ""
		if i > 1 {
			join = nodes[0].srv.Addr()
		}
		n := startNode(t, fmt.Sprintf("n%d", i), join, func(c *Config) {
			c.HTTPAddr, c.RaftAddr = httpAddr, raftAddr
			c.RaftAdvertise, c.HTTPAdvertise = px[0], px[1]
			c.CallTimeout = callTimeout
		})
		if i == 1 {
			waitUntil(t, "n1 to lead", n.srv.Node.IsLeader)
		}
		nodes = append(nodes, n)
	}
	waitUntil(t, "three voters", func() bool {
		m, err := nodes[0].srv.Node.Members()
		return err == nil && len(m) == 3
	})
	return nodes
}

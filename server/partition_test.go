package server

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/faultnet"
)

// A leader cut off from both peers (silently: its packets vanish) must not
// acknowledge anything, the other two must elect a leader and go on, and
// after healing all three must agree. Each node listens on its own loopback
// IP and is reached by its peers through faultnet proxies, which can tell
// the nodes apart by source address.
func TestClusterPartitionedLeader(t *testing.T) {
	type member struct {
		node           *testNode
		ip             string
		raftPx, httpPx *faultnet.Proxy
	}
	app := protocolApp(t)
	var ms []*member
	for i := 1; i <= 3; i++ {
		ip := fmt.Sprintf("127.0.0.%d", 60+i)
		httpAddr, raftAddr := freeAddrOn(t, ip), freeAddrOn(t, ip)
		raftPx, err := faultnet.Listen("127.0.0.1:0", raftAddr)
		if err != nil {
			t.Fatal(err)
		}
		httpPx, err := faultnet.Listen("127.0.0.1:0", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raftPx.Close(); httpPx.Close() })
		join := ""
		if i > 1 {
			join = ms[0].node.srv.Addr()
		}
		n := startNode(t, fmt.Sprintf("n%d", i), join, func(c *Config) {
			c.HTTPAddr, c.RaftAddr = httpAddr, raftAddr
			c.RaftAdvertise, c.HTTPAdvertise = raftPx.Addr(), httpPx.Addr()
			// A call the cut-off leader had in flight is re-sent by the new
			// leader once its lease (call timeout + 10 s) runs out.
			c.CallTimeout = 2 * time.Second
		})
		if i == 1 {
			waitUntil(t, "n1 to lead", n.srv.Node.IsLeader)
		}
		ms = append(ms, &member{node: n, ip: ip, raftPx: raftPx, httpPx: httpPx})
	}
	nodes := []*testNode{ms[0].node, ms[1].node, ms[2].node}
	waitUntil(t, "three voters", func() bool {
		m, err := nodes[0].srv.Node.Members()
		return err == nil && len(m) == 3
	})
	register(t, nodes[1], app.URL)
	before, _ := sendEvent(t, nodes[2])
	if before == "" {
		t.Fatal("no event accepted before the partition")
	}

	var old *member
	waitUntil(t, "a leader", func() bool {
		for _, m := range ms {
			if m.node.srv.Node.IsLeader() {
				old = m
				return true
			}
		}
		return false
	})
	var rest []*member
	for _, m := range ms {
		if m != old {
			rest = append(rest, m)
		}
	}
	// Cut the leader off both ways, Raft and forwarded HTTP alike.
	cut := func(block bool) {
		for _, m := range rest {
			for _, px := range []*faultnet.Proxy{m.raftPx, m.httpPx} {
				if block {
					px.Block(old.ip)
				} else {
					px.Unblock(old.ip)
				}
			}
			for _, px := range []*faultnet.Proxy{old.raftPx, old.httpPx} {
				if block {
					px.Block(m.ip)
				} else {
					px.Unblock(m.ip)
				}
			}
		}
	}
	cut(true)

	// Clients can still reach the old leader: it must refuse, not ack.
	client := &http.Client{Timeout: 45 * time.Second}
	for range 3 {
		resp, err := client.Post(old.node.srv.URL()+"/e/key", "application/json",
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
		return rest[0].node.srv.Node.IsLeader() || rest[1].node.srv.Node.IsLeader()
	})
	var during []string
	for _, m := range rest {
		waitUntil(t, "an event accepted by the majority", func() bool {
			id, code := sendEvent(t, m.node)
			if code == 200 {
				during = append(during, id)
			}
			return code == 200
		})
	}
	for _, id := range append([]string{before}, during...) {
		waitUntil(t, "run of "+id+" to complete", func() bool { return runStatus(rest[0].node, id) == "completed" })
	}

	cut(false)
	converged(t, nodes)
	// The old leader has caught up with what the majority accepted.
	for _, id := range during {
		if ev, err := old.node.srv.FSM.Event(id); err != nil || ev == nil {
			t.Fatalf("old leader lacks event %s after healing (%v)", id, err)
		}
	}
}

func freeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

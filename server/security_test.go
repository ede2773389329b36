package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/internal/certs"
	"github.com/cairn-dev/cairn/internal/clusterauth"
)

// Clusters with node-to-node security: mutual TLS (Raft and HTTP between
// nodes) and a cluster secret, on loopback, with real certificates.

const testSecret = "a-cluster-secret-for-tests"

var (
	// pki holds a CA and certificates for testNodeIDs (made by TestMain),
	// valid for 127.0.0.1 and each node's own loopback IP (ownIP).
	pki         string
	testNodeIDs = []string{"n1", "n2", "n3", "n4"}
	// testClient is every test's HTTP client: it trusts pki's CA and
	// presents no certificate, like an SDK or curl.
	testClient = http.DefaultClient
)

func TestMain(m *testing.M) {
	code, err := runWithPKI(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runWithPKI(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "cairn-pki")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	hosts := []string{"127.0.0.1"}
	for _, id := range testNodeIDs {
		hosts = append(hosts, ownIP(id))
	}
	if _, err := certs.Make(dir, testNodeIDs, hosts, time.Now()); err != nil {
		return 0, err
	}
	id, err := loadIdentity(dir, testNodeIDs[0])
	if err != nil {
		return 0, err
	}
	pki = dir
	testClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: id.Pool()}}}
	return m.Run(), nil
}

func loadIdentity(dir, node string) (*certs.Identity, error) {
	return certs.Load(certs.CertFile(dir, node), certs.KeyFile(dir, node), filepath.Join(dir, certs.CAFile))
}

// secure gives a node its certificate and the cluster secret.
func secure(c *Config) {
	c.ClusterSecret = testSecret
	c.TLSCert, c.TLSKey, c.TLSCA = certs.CertFile(pki, c.NodeID), certs.KeyFile(pki, c.NodeID), filepath.Join(pki, certs.CAFile)
}

// ownIP is a loopback IP for node "nK" alone: 127.0.0.7K.
func ownIP(node string) string { return "127.0.0.7" + strings.TrimPrefix(node, "n") }

// onOwnIP makes a node listen on its own loopback IP, from which it also
// dials its peers (package peerdial), TLS or not.
func onOwnIP(t *testing.T) func(*Config) {
	return func(c *Config) {
		c.HTTPAddr, c.RaftAddr = freeAddrOn(t, ownIP(c.NodeID)), freeAddrOn(t, ownIP(c.NodeID))
	}
}

// secretOnly gives a node the cluster secret and no TLS.
func secretOnly(c *Config) { c.ClusterSecret = testSecret }

// nodeClient presents node's certificate, as a peer does.
func nodeClient(t *testing.T, node string) *http.Client {
	t.Helper()
	id, err := loadIdentity(pki, node)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: id.Dialer()}}
}

// postAs posts body with client and, when secret is not empty, a proof of
// it, as nodes do.
func postAs(t *testing.T, client *http.Client, url, secret string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		clusterauth.Sign(req, secret, time.Now())
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// logPos is what grows when anything is appended to the log.
type logPos struct {
	applied uint64
	last    string
}

func positionOf(n *testNode) logPos {
	st := n.srv.Node.Stats()
	return logPos{st.AppliedIndex, st.LastLogIndex}
}

// settled waits until the leader has recorded every member's addresses
// and committed everything in its log, so that from here on only requests
// grow it.
func settled(t *testing.T, leader *testNode) {
	t.Helper()
	waitUntil(t, "the leader to settle", func() bool {
		members, err := leader.srv.Node.Members()
		if err != nil {
			return false
		}
		for _, m := range members {
			if info, _ := leader.srv.FSM.Node(m.ID); info == nil {
				return false
			}
		}
		if limits, _ := leader.srv.FSM.Limits(); limits == (fsm.Limits{}) {
			return false // recorded once every member's release is known
		}
		st := leader.srv.Node.Stats()
		return st.CommitIndex == st.LastLogIndex
	})
}

func joinBody(t *testing.T, id, raftAddr string) []byte {
	b, err := json.Marshal(api.JoinRequest{ID: id, RaftAddr: raftAddr, HTTPAddr: freeAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSecureCluster(t *testing.T) {
	nodes := cluster(t, func(c *Config) {
		secure(c)
		onOwnIP(t)(c)
	})
	leader := leaderOf(nodes)
	follower := without(nodes, leader)[0]
	if !strings.HasPrefix(follower.srv.URL(), "https://") {
		t.Fatalf("a node with a certificate serves %s", follower.srv.URL())
	}
	settled(t, leader)

	t.Run("callers that are not nodes are refused and write nothing", func(t *testing.T) {
		forged, err := fsm.EncodeEntry(&fsm.CallFinished{RunID: "r", Call: "c", Gen: 1, Status: 200, Body: []byte(`"forged"`)})
		if err != nil {
			t.Fatal(err)
		}
		before := positionOf(leader)
		cases := []struct {
			name   string
			client *http.Client
			secret string
		}{
			{"no certificate, no proof", testClient, ""},
			{"no certificate, a valid proof", testClient, testSecret},
			{"a node's certificate, no proof", nodeClient(t, "n4"), ""},
			{"a node's certificate, a proof of another secret", nodeClient(t, "n4"), "not-the-cluster-secret"},
		}
		for _, tc := range cases {
			// Through the leader, and through a follower, which proxies the
			// request without making it a node's.
			for _, via := range []*testNode{leader, follower} {
				for path, body := range map[string][]byte{
					"/v1/internal/answers": forged,
					"/v1/cluster/join":     joinBody(t, "n4", freeAddr(t)),
					"/v1/cluster/remove":   []byte(`{"id":"` + follower.cfg.NodeID + `"}`),
				} {
					code, out := postAs(t, tc.client, via.srv.URL()+path, tc.secret, body)
					if code != http.StatusUnauthorized || !strings.Contains(out, `"code":"unauthorized"`) {
						t.Errorf("%s: POST %s via %s: %d %s, want 401 unauthorized", tc.name, path, via.cfg.NodeID, code, out)
					}
				}
			}
		}
		if after := positionOf(leader); after != before {
			t.Fatalf("refused requests grew the log: %+v -> %+v", before, after)
		}
		// The same request with a proof and a certificate is taken: the
		// refusals above were for want of credentials.
		if code, out := postAs(t, nodeClient(t, "n4"), follower.srv.URL()+"/v1/internal/answers", testSecret, forged); code != http.StatusOK {
			t.Fatalf("an answer from a node: %d %s", code, out)
		}
	})

	t.Run("only nodes learn what a node has in hand", func(t *testing.T) {
		for _, client := range []*http.Client{testClient, nodeClient(t, "n4")} {
			resp, err := client.Get(follower.srv.URL() + "/v1/internal/calls")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("GET /v1/internal/calls without a proof: %d, want 401", resp.StatusCode)
			}
		}
		// A leader's probe (mutual TLS, the cluster secret) is answered by
		// the node itself, not forwarded.
		seen, err := leader.srv.FSM.Node(follower.cfg.NodeID)
		if err != nil || seen == nil {
			t.Fatalf("%s not recorded: %v", follower.cfg.NodeID, err)
		}
		h, err := leader.srv.API.PeerHeld(context.Background(), seen.HTTPAddr)
		if err != nil || h.Node != follower.cfg.NodeID || h.Boot == "" || h.Leader != leader.cfg.NodeID {
			t.Fatalf("probe of %s: %+v %v", follower.cfg.NodeID, h, err)
		}
	})

	t.Run("a node without the secret cannot join", func(t *testing.T) {
		members, _ := leader.srv.Node.Members()
		for _, secret := range []string{"", "not-the-cluster-secret"} {
			n4 := startNode(t, "n4", "", func(c *Config) {
				secure(c)
				c.ClusterSecret, c.Bootstrap = secret, false
			})
			err := n4.srv.API.Join(context.Background(), follower.srv.Addr(),
				api.JoinRequest{ID: "n4", RaftAddr: n4.srv.Node.RaftAddr(), HTTPAddr: n4.srv.Addr()})
			if err == nil || !strings.Contains(err.Error(), "401") {
				t.Fatalf("join with secret %q: %v, want a 401", secret, err)
			}
			n4.stop()
		}
		if now, _ := leader.srv.Node.Members(); len(now) != len(members) {
			t.Fatalf("members changed: %+v -> %+v", members, now)
		}
	})

	t.Run("writes through a follower are proxied and runs finish", func(t *testing.T) {
		app := protocolApp(t)
		register(t, follower, app.URL)
		events := sendEvents(t, follower, 10)
		for _, ev := range events {
			waitUntil(t, "run of "+ev+" to complete", func() bool { return runStatus(follower, ev) == "completed" })
		}
		// An answer forwarded by a follower's executor reaches the leader.
		res, err := follower.srv.API.ForwardAnswer(context.Background(), &fsm.CallFinished{RunID: "nope", Call: "c", Gen: 1})
		if err != nil {
			t.Fatalf("forwarding an answer: %v", err)
		}
		if res.Code == fsm.OK {
			t.Fatalf("an answer for no run was taken: %+v", res)
		}
		converged(t, nodes)
	})
}

// A join naming a Raft address nobody answers at is refused before the
// configuration changes: a lone node that took such a voter would have no
// majority, and so no leader, for good.
func TestJoinUnreachableRaftAddrRefused(t *testing.T) {
	for name, tweak := range map[string]func(*Config){"tls": secure, "secret only": secretOnly} {
		t.Run(name, func(t *testing.T) {
			n1 := startNode(t, "n1", "", tweak)
			waitUntil(t, "n1 to lead", n1.srv.Node.IsLeader)
			settled(t, n1)
			before := positionOf(n1)
			code, out := postAs(t, nodeClient(t, "n1"), n1.srv.URL()+"/v1/cluster/join", testSecret, joinBody(t, "ghost", freeAddr(t)))
			if code != http.StatusBadRequest || !strings.Contains(out, "member_unreachable") {
				t.Fatalf("join of an unreachable node: %d %s", code, out)
			}
			if after := positionOf(n1); after != before {
				t.Fatalf("the refused join grew the log: %+v -> %+v", before, after)
			}
			if members, _ := n1.srv.Node.Members(); len(members) != 1 || !n1.srv.Node.IsLeader() {
				t.Fatalf("after the refused join: members %+v, leader %v", members, n1.srv.Node.IsLeader())
			}
			if _, code := sendEvent(t, n1); code != http.StatusOK {
				t.Fatalf("n1 no longer takes writes: %d", code)
			}
		})
	}
}

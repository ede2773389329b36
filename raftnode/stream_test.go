package raftnode

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/certs"
	"github.com/cairn-dev/cairn/internal/testnet"
	"github.com/hashicorp/raft"
)

func identity(t *testing.T, dir, node string) *certs.Identity {
	t.Helper()
	id, err := certs.Load(certs.CertFile(dir, node), certs.KeyFile(dir, node), filepath.Join(dir, certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// answersNothing sends bytes to a Raft port and reports whether the
// connection ended without an answer. The deadline only guards against a
// hang; hitting it fails the test.
func answersNothing(t *testing.T, c net.Conn) bool {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	c.Write(make([]byte, 64)) // a zero byte is Raft's AppendEntries
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the Raft port kept the connection open without a handshake")
	}
	return err != nil
}

// Two nodes replicate over mutual TLS, and the Raft port gives nothing to a
// client without a certificate from the cluster CA.
func TestRaftOverMutualTLS(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	loopback := []string{"127.0.0.1"}
	if _, err := certs.Make(dir, []string{"n1", "n2"}, loopback, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := certs.Make(other, []string{"x"}, loopback, time.Now()); err != nil {
		t.Fatal(err)
	}
	ids, addrs := []string{"n1", "n2"}, []string{freeAddr(t), freeAddr(t)}
	var nodes []*testNode
	for i, id := range ids {
		peer := raft.Server{ID: raft.ServerID(ids[1-i]), Address: raft.ServerAddress(addrs[1-i])}
		nodes = append(nodes, openNodeWith(t, Config{NodeID: id, RaftAddr: addrs[i], DataDir: t.TempDir(),
			Bootstrap: true, Peers: []raft.Server{peer}, TLS: identity(t, dir, id)}))
	}
	var leader *testNode
	waitFor(t, "a leader", func() bool {
		for _, n := range nodes {
			if n.IsLeader() {
				leader = n
			}
		}
		return leader != nil
	})
	// Two voters: this commits only once the other node has it.
	if _, err := leader.Propose(context.Background(), event("e1")); err != nil {
		t.Fatal(err)
	}

	target := leader.RaftAddr()
	noCert, err := tls.Dial("tcp", target, &tls.Config{RootCAs: identity(t, dir, "n1").Pool()})
	if err != nil {
		t.Fatal(err) // TLS 1.3: the client learns of the refusal on its first read
	}
	if !answersNothing(t, noCert) {
		t.Fatal("the Raft port answered a client without a certificate")
	}
	strangerCfg := identity(t, other, "x").Dialer()
	strangerCfg.InsecureSkipVerify = true // the stranger does not care who we are; we must care who it is
	if stranger, err := tls.Dial("tcp", target, strangerCfg); err == nil && !answersNothing(t, stranger) {
		t.Fatal("the Raft port answered a certificate from another CA")
	}
	plain, err := net.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	if !answersNothing(t, plain) {
		t.Fatal("the Raft port answered plain TCP")
	}

	// A new member must answer a TLS handshake before it is added.
	notTLS := testnet.HangUp(t)
	for _, addr := range []string{freeAddr(t), notTLS.Addr().String()} {
		if err := leader.AddVoter("ghost", addr); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("AddVoter(%s): %v, want ErrUnreachable", addr, err)
		}
	}
	members, err := leader.Members()
	if err != nil || len(members) != 2 || !leader.IsLeader() {
		t.Fatalf("after refused joins: members %+v (%v), leader %v", members, err, leader.IsLeader())
	}
}

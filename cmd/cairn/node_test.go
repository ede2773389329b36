package main

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/internal/testnet"
)

// The cluster-secret rule of cairn start: required to join or to bootstrap
// with peers; a lone node gets one nobody knows.
func TestClusterSecretRule(t *testing.T) {
	if _, err := clusterSecret("", true); err == nil {
		t.Fatal("a clustered node started without a secret")
	}
	if s, err := clusterSecret("given-secret-0123", true); err != nil || s != "given-secret-0123" {
		t.Fatalf("given secret: %q %v", s, err)
	}
	a, err := clusterSecret("", false)
	b, _ := clusterSecret("", false)
	if err != nil || len(a) < 32 || a == b {
		t.Fatalf("a lone node's secrets %q, %q (%v): want long and unguessable", a, b, err)
	}
}

// cairn dev discovers apps on Inngest's dev server ports and $PORT, less
// its own port, unless told not to; cairn start has no such flag.
func TestDiscoveryOnlyInDev(t *testing.T) {
	t.Setenv("PORT", "4321")
	d := devDiscovery(false, "3000")
	if d == nil || slices.Contains(d.Ports, 3000) || !slices.Contains(d.Ports, 4321) || !slices.Contains(d.Ports, 5173) ||
		!slices.Contains(d.Paths, "/api/inngest") || !slices.Contains(d.Paths, "/.redwood/functions/inngest") {
		t.Fatalf("dev discovery: %+v", d)
	}
	if devDiscovery(true, "8288") != nil {
		t.Fatal("--no-discovery still discovers")
	}
	if err := runNode("start", []string{"--no-discovery"}); err == nil || !strings.Contains(err.Error(), "no-discovery") {
		t.Fatalf("cairn start --no-discovery: %v", err)
	}
	if got := portRanges([]int{80, 443, 3000, 3001, 3002, 5000}); got != "80, 443, 3000-3002, 5000" {
		t.Fatalf("portRanges: %q", got)
	}
}

// A taken port names itself and the flag that moves it.
func TestPortTakenNamesTheFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--raft-addr", taken, "--port", "0"}, "--raft-addr"},
		{[]string{"--raft-addr", testnet.FreeAddr(t, "127.0.0.1"), "--port", portOf(taken)}, "--port PORT"},
	} {
		err := runNode("dev", append(c.args, "--data-dir", t.TempDir(), "--no-discovery", "--log-level", "error"))
		if err == nil || !strings.Contains(err.Error(), "is taken") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v", c.args, err)
		}
	}
}

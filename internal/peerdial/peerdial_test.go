package peerdial

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestSourceFor(t *testing.T) {
	cases := []struct {
		listen, target, want string
	}{
		{"127.0.0.12", "127.0.0.1:7000", "127.0.0.12"},
		{"127.0.0.12", "10.0.0.5:7000", ""}, // loopback cannot reach a LAN address
		{"10.0.0.4", "10.0.0.5:7000", "10.0.0.4"},
		{"10.0.0.4", "127.0.0.1:7000", ""},
		{"0.0.0.0", "127.0.0.1:7000", ""},
		{"", "127.0.0.1:7000", ""},
		{"localhost", "127.0.0.1:7000", ""},
		{"127.0.0.12", "node2:7000", ""},
		{"::1", "127.0.0.1:7000", ""}, // families differ
	}
	for _, c := range cases {
		got := ""
		if ip := New(c.listen, time.Second).sourceFor(c.target); ip != nil {
			got = ip.String()
		}
		if got != c.want {
			t.Errorf("listen %q → %q: source %q, want %q", c.listen, c.target, got, c.want)
		}
	}
}

// A peer sees the connection coming from the node's own loopback address.
func TestDialFromListenAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		got <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		c.Close()
	}()
	c, err := New("127.0.0.23", time.Second).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ip := <-got; ip != "127.0.0.23" {
		t.Fatalf("peer saw %s, want 127.0.0.23", ip)
	}
}

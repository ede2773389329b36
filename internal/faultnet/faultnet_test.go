package faultnet

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/peerdial"
	"github.com/cairn-dev/cairn/internal/testnet"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	return testnet.Serve(t, func(c net.Conn) { io.Copy(c, c); c.Close() }).Addr().String()
}

func dialFrom(t *testing.T, src, addr string) net.Conn {
	d := &net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends a line and waits up to wait for it to come back.
func roundTrip(c net.Conn, line string, wait time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return got, err
}

func TestBlockIsSilentAndPerSource(t *testing.T) {
	p, err := Listen("127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a := dialFrom(t, "127.0.0.11", p.Addr())
	b := dialFrom(t, "127.0.0.12", p.Addr())
	for _, c := range []net.Conn{a, b} {
		if got, err := roundTrip(c, "hi", 5*time.Second); err != nil || got != "hi\n" {
			t.Fatalf("before the cut: %q, %v", got, err)
		}
	}
	p.Block("127.0.0.11")
	// The cut source hears nothing, and its connection stays open (silent).
	if got, err := roundTrip(a, "lost", 300*time.Millisecond); err == nil {
		t.Fatalf("blocked source got an answer: %q", got)
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("blocked source: want a timeout, got %v", err)
	}
	// A new connection from it is accepted and swallowed too.
	a2 := dialFrom(t, "127.0.0.11", p.Addr())
	if got, err := roundTrip(a2, "lost", 300*time.Millisecond); err == nil {
		t.Fatalf("new connection from a blocked source got %q", got)
	}
	// Others are not affected.
	if got, err := roundTrip(b, "still", 5*time.Second); err != nil || got != "still\n" {
		t.Fatalf("unblocked source: %q, %v", got, err)
	}
	// Healing closes the broken streams; a fresh connection works.
	p.Unblock("127.0.0.11")
	a.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := a.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection that lost bytes was not closed on heal")
	}
	a3 := dialFrom(t, "127.0.0.11", p.Addr())
	if got, err := roundTrip(a3, "back", 5*time.Second); err != nil || got != "back\n" {
		t.Fatalf("after heal: %q, %v", got, err)
	}
}

// peerdial's source binding is what lets the proxy tell nodes apart.
func TestPeerDialSourceSeenByProxy(t *testing.T) {
	p, err := Listen("127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Block("127.0.0.13")
	c, err := peerdial.New("127.0.0.13", time.Second).DialContext(t.Context(), "tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "x", 300*time.Millisecond); err == nil {
		t.Fatalf("dialed from 127.0.0.13 but not cut: %q", got)
	}
}

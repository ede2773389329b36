// Package testnet hands tests loopback addresses to listen on later.
//
// A port the kernel picks with ":0" comes from the ephemeral range, which
// is also where every outgoing connection on the machine takes its local
// port: between closing the probe listener and binding the real one, a
// connection of another test may take it ("address already in use"). The
// ports handed out here lie below that range, where only listeners go.
package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// Below Linux's default ephemeral range (32768-60999).
const lowPort, highPort = 20000, 32000

// FreeAddr returns "ip:port" with a port nothing listens on right now.
func FreeAddr(t testing.TB, ip string) string {
	t.Helper()
	for range 200 {
		addr := net.JoinHostPort(ip, fmt.Sprint(lowPort+rand.IntN(highPort-lowPort)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatalf("no free port on %s", ip)
	return ""
}

// FreePort returns a free port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(FreeAddr(t, "127.0.0.1"))
	var p int
	fmt.Sscan(port, &p)
	return p
}

// Serve listens on a loopback port and hands every connection it accepts
// to handle, in its own goroutine. It stops when the test ends.
func Serve(t testing.TB, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln
}

// HangUp listens on a loopback port and closes every connection it
// accepts at once: an address that answers TCP and nothing else. It stops
// when the test ends.
func HangUp(t testing.TB) net.Listener {
	t.Helper()
	return Serve(t, func(c net.Conn) { c.Close() })
}

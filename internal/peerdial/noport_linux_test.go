package peerdial

import (
	"context"
	"net"
	"testing"
	"time"
)

// Outbound connections must not draw their ports from the pool listeners
// use: bind(0) hands out odd ports, connect() prefers even ones. A dialer
// that binds its port early takes odd ports every time.
func TestOutboundPortsComeFromConnectPool(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	d := New("127.0.0.1", time.Second)
	odd := 0
	for range 20 {
		c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.LocalAddr().(*net.TCPAddr).IP.String() != "127.0.0.1" {
			t.Fatalf("dialed from %s", c.LocalAddr())
		}
		odd += c.LocalAddr().(*net.TCPAddr).Port % 2
	}
	if odd == 20 {
		t.Fatal("every outbound port was odd: ports are picked at bind time, from the listeners' pool")
	}
}

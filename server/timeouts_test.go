package server

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// A client that sends its request a byte at a time (slow loris) is cut off
// by the read timeouts instead of holding its connection forever.
func TestSlowClientIsDisconnected(t *testing.T) {
	n := startNode(t, "solo", "", func(c *Config) {
		c.HTTP = HTTPLimits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond}
	})
	waitUntil(t, "leadership", n.srv.Node.IsLeader)
	const body = 1 << 20 // announced, never all sent
	head := fmt.Sprintf("POST /e/key HTTP/1.1\r\nHost: cairn\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", body)
	cases := []struct {
		name           string
		first, trickle string // sent at once, then a byte at a time
	}{
		{"headers", head[:20], head[20:]},
		{"body", head, string(make([]byte, body))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", n.srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tc.first); err != nil {
				t.Fatal(err)
			}
			closed := make(chan struct{})
			go func() {
				io.Copy(io.Discard, conn) // returns when the server closes the connection
				close(closed)
			}()
			for i := range len(tc.trickle) {
				select {
				case <-closed:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if _, err := conn.Write([]byte{tc.trickle[i]}); err != nil {
					return // closed by the server
				}
			}
			t.Fatal("the server read the whole slow request without cutting it off")
		})
	}
}

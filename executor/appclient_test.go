package executor

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/cairn-dev/cairn/internal/testnet"
)

// closingApp answers the first request on each connection and closes the
// connection when a second one arrives, without answering it: an app
// dropping an idle connection just as a call goes out on it.
func closingApp(t *testing.T) string {
	ln := testnet.Serve(t, func(conn net.Conn) {
		defer conn.Close()
		r := bufio.NewReader(conn)
		req, err := http.ReadRequest(r)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		conn.Write([]byte("HTTP/1.1 200 OK\r\nX-Inngest-Sdk: test\r\nContent-Length: 2\r\n\r\nok"))
		http.ReadRequest(r) // the next call on this connection: dropped
	})
	return "http://" + ln.Addr().String() + "/api/inngest"
}

// A call that meets a connection the app just closed is sent again on a
// new one; without the replayable mark it failed with EOF.
func TestCallOnAClosedConnectionIsSentAgain(t *testing.T) {
	url := closingApp(t)
	post := func(c *http.Client, mark bool) error {
		req, _ := http.NewRequest("POST", url, bytes.NewReader([]byte(`{"ctx":{}}`)))
		if mark {
			replayable(req)
		}
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return err
	}
	unmarked := appClient(nil, 4)
	if err := post(unmarked, false); err != nil {
		t.Fatal(err)
	}
	if err := post(unmarked, false); err == nil {
		t.Fatal("the closing app did not fail an unmarked call: the test no longer shows the problem")
	}
	c := appClient(nil, 4)
	for i := 0; i < 3; i++ {
		if err := post(c, true); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	req, _ := http.NewRequest("POST", url, nil)
	replayable(req)
	if _, sent := req.Header["Idempotency-Key"]; !sent || req.Header.Get("Idempotency-Key") != "" {
		t.Fatal("the mark must be an empty header (not sent to the app)")
	}
}

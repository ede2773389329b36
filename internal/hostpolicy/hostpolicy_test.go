package hostpolicy

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testnet"
)

func TestCheckURL(t *testing.T) {
	p, err := Parse([]string{"10.1.0.0/16", "apps.internal", "127.0.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"http://10.1.2.3:3000/api/inngest", true},
		{"https://apps.internal/api/inngest", true},
		{"http://APPS.internal/x", true},
		{"http://127.0.0.2:80/", true},
		{"http://127.0.0.1:8288/v1/cluster/remove", false},
		{"http://10.2.0.1/", false},
		{"http://other.example/", true}, // a name: its address is checked on dial
		{"file:///etc/passwd", false},
		{"gopher://10.1.2.3/", false},
		{"http://user:pw@10.1.2.3/", false},
		{"/relative", false},
	} {
		if err := p.CheckURL(c.url); (err == nil) != c.ok {
			t.Errorf("CheckURL(%s) = %v, want ok=%v", c.url, err, c.ok)
		}
	}
	open, _ := Parse(nil)
	if err := open.CheckURL("http://169.254.169.254/"); err != nil {
		t.Errorf("an open policy refused: %v", err)
	}
	if err := open.CheckURL("ftp://x/"); err == nil {
		t.Error("an open policy accepted ftp")
	}
	if _, err := Parse([]string{"10.0.0.0/99"}); err == nil {
		t.Error("bad CIDR accepted")
	}
}

// The dial check holds for names that resolve outside the allowed networks.
func TestDialer(t *testing.T) {
	ln := testnet.HangUp(t)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := &net.Dialer{}

	deny, _ := Parse([]string{"10.0.0.0/8"})
	for _, addr := range []string{"127.0.0.1:" + port, "localhost:" + port} {
		if c, err := deny.Dialer(d)(ctx, "tcp", addr); !errors.Is(err, ErrRefused) {
			if c != nil {
				c.Close()
			}
			t.Errorf("dial %s outside the allowed networks: %v", addr, err)
		}
	}
	for _, entries := range [][]string{{"127.0.0.0/8"}, {"localhost"}} {
		allow, _ := Parse(entries)
		addr := "localhost:" + port
		c, err := allow.Dialer(d)(ctx, "tcp", addr)
		if err != nil {
			t.Errorf("policy %v refused %s: %v", entries, addr, err)
			continue
		}
		c.Close()
	}
}

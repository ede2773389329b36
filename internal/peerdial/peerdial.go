// Package peerdial opens connections to other cluster nodes from this node's
// own address.
//
// A node that listens on one specific IP (a private interface, or one of
// several loopback addresses on a test box) should also talk to its peers
// from that IP: firewalls and fault-injecting proxies then see Raft and
// forwarded HTTP traffic coming from the address the node is known by,
// not from whatever source the kernel picks.
package peerdial

import (
	"context"
	"net"
	"time"
)

// Dialer dials from listenHost when that is a specific IP, and lets the
// kernel choose otherwise. A loopback source is used only for loopback
// targets (it cannot reach anything else).
type Dialer struct {
	source  net.IP // nil: let the kernel choose
	timeout time.Duration
}

// New returns a Dialer for a node listening on listenHost ("" or a wildcard
// or a name: no binding).
func New(listenHost string, timeout time.Duration) *Dialer {
	d := &Dialer{timeout: timeout}
	if ip := net.ParseIP(listenHost); ip != nil && !ip.IsUnspecified() {
		d.source = ip
	}
	return d
}

// DialContext has the signature http.Transport wants.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	if src := d.sourceFor(addr); src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: src}
		nd.Control = bindAddressOnly
	}
	return nd.DialContext(ctx, network, addr)
}

// sourceFor is the address to bind for a connection to addr (nil: none).
func (d *Dialer) sourceFor(addr string) net.IP {
	if d.source == nil {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	target := net.ParseIP(host)
	if target == nil {
		return nil // a name: we cannot tell which interface it is behind
	}
	if d.source.IsLoopback() != target.IsLoopback() || (d.source.To4() == nil) != (target.To4() == nil) {
		return nil
	}
	return d.source
}

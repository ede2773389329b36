// Package hostpolicy decides which app addresses Cairn may call. Apps tell
// Cairn their URLs (registration, sync), so without a policy anyone who can
// register can make Cairn send requests anywhere (SSRF). A policy names the
// hosts and networks apps may live on; it is checked on the URL when it is
// registered (for a clear error) and again on the IP actually dialed (so a
// name that later resolves elsewhere is still refused).
package hostpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
)

// Policy is an allow-list of hosts and networks. The zero Policy allows
// every host (dev mode, or no --allow-app-hosts).
type Policy struct {
	hosts map[string]bool // lower-case host names allowed by name
	nets  []*net.IPNet
}

// Parse reads a list of host names, IPs and CIDRs ("10.0.0.0/8",
// "app.internal", "127.0.0.1").
func Parse(entries []string) (*Policy, error) {
	p := &Policy{hosts: map[string]bool{}}
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "":
		case strings.Contains(e, "/"):
			_, n, err := net.ParseCIDR(e)
			if err != nil {
				return nil, fmt.Errorf("allowed app hosts: %q is not a CIDR: %v", e, err)
			}
			p.nets = append(p.nets, n)
		case net.ParseIP(e) != nil:
			ip := net.ParseIP(e)
			bits := 8 * len(ip.To16())
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			p.nets = append(p.nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		default:
			p.hosts[e] = true
		}
	}
	return p, nil
}

// Open reports whether the policy allows every host.
func (p *Policy) Open() bool { return p == nil || (len(p.hosts) == 0 && len(p.nets) == 0) }

// CheckURL refuses URLs that are not absolute http(s), and hosts that the
// policy rules out by name or address. A host name not listed passes here
// when networks are listed: the address it resolves to is checked on dial.
func (p *Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q carries credentials; apps are authenticated by signatures", raw)
	}
	if p.Open() {
		return nil
	}
	host := strings.ToLower(u.Hostname())
	if p.hosts[host] {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if p.allowsIP(ip) {
			return nil
		}
		return fmt.Errorf("host %s is not in the allowed app hosts (--allow-app-hosts)", host)
	}
	if len(p.nets) == 0 {
		return fmt.Errorf("host %s is not in the allowed app hosts (--allow-app-hosts)", host)
	}
	return nil
}

func (p *Policy) allowsIP(ip net.IP) bool {
	for _, n := range p.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// ErrRefused is returned when a dial is refused by the policy.
var ErrRefused = errors.New("address not in the allowed app hosts (--allow-app-hosts)")

// Dialer wraps d so that it connects only where the policy allows: to a
// host listed by name, or to an address inside a listed network.
func (p *Policy) Dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if p.Open() {
		return d.DialContext
	}
	byAddr := *d
	byAddr.Control = func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(host); ip == nil || !p.allowsIP(ip) {
			return fmt.Errorf("%s: %w", host, ErrRefused)
		}
		return nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if p.hosts[strings.ToLower(host)] {
			return d.DialContext(ctx, network, addr)
		}
		return byAddr.DialContext(ctx, network, addr)
	}
}

// Package faultnet is a TCP proxy that can silently cut the traffic of
// chosen peers, for partition tests without root.
//
// Each node of a test cluster listens on its own loopback IP (127.0.0.11,
// .12, ...) and advertises a Proxy in front of each of its ports. Nodes dial
// peers from their own IP (package peerdial), so a proxy knows which node
// every connection comes from and can blackhole some of them: bytes are read
// and dropped, nothing is answered, as with a blackhole route. Clients on
// other addresses (127.0.0.1) are never cut.
package faultnet

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards connections from its listen address to one target.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	blocked map[string]bool // source IPs whose traffic is dropped
	conns   map[*pipe]bool
	closed  bool
	wg      sync.WaitGroup
}

// pipe is one proxied connection.
type pipe struct {
	src      string
	client   net.Conn
	server   net.Conn // nil when the connection arrived cut
	tainted  bool     // bytes were dropped: the stream is broken for good
	closeOne sync.Once
}

func (p *pipe) close() {
	p.closeOne.Do(func() {
		p.client.Close()
		if p.server != nil {
			p.server.Close()
		}
	})
}

// Listen starts a proxy on addr ("127.0.0.1:0" for any port) to target.
func Listen(addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, blocked: map[string]bool{}, conns: map[*pipe]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address, to advertise in place of the target's.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Block drops, from now on, every byte to or from connections whose source
// is one of ips, including connections already open.
func (p *Proxy) Block(ips ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ip := range ips {
		p.blocked[ip] = true
	}
}

// Unblock lets ips through again. Their connections that lost bytes while
// cut are closed: a stream with a hole is useless, the peer must redial.
func (p *Proxy) Unblock(ips ...string) {
	p.mu.Lock()
	var broken []*pipe
	for _, ip := range ips {
		delete(p.blocked, ip)
	}
	for c := range p.conns {
		if c.tainted && !p.blocked[c.src] {
			broken = append(broken, c)
		}
	}
	p.mu.Unlock()
	for _, c := range broken {
		c.close()
	}
}

// Close stops the proxy and every connection through it.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	var all []*pipe
	for c := range p.conns {
		all = append(all, c)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range all {
		c.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.serve(conn)
	}
}

func (p *Proxy) serve(conn net.Conn) {
	defer p.wg.Done()
	src, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
	c := &pipe{src: src, client: conn}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		conn.Close()
		return
	}
	p.conns[c] = true
	cut := p.blocked[src]
	c.tainted = cut
	p.mu.Unlock()
	defer func() {
		c.close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	if cut {
		// Arrived during a partition: swallow everything until healed.
		io.Copy(io.Discard, conn)
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return // the target is down: the client sees its connection closed
	}
	p.mu.Lock()
	c.server = server
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.copy(c, server, conn); done <- struct{}{} }()
	go func() { p.copy(c, conn, server); done <- struct{}{} }()
	<-done // one side ended: end both
	c.close()
	<-done
}

// copy forwards src to dst chunk by chunk, dropping chunks while c's source
// is blocked.
func (p *Proxy) copy(c *pipe, dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := p.blocked[c.src]
			if drop {
				c.tainted = true
			}
			p.mu.Unlock()
			if !drop {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// Mesh is a test cluster's nodes, each behind one Proxy per port, that can
// be cut apart. Node i is known by its source IP; cutting it off blocks its
// traffic in both directions on every port.
type Mesh struct {
	ips     []string
	proxies [][]*Proxy // proxies[i]: node i's ports
}

// Add puts proxies on 127.0.0.1 in front of each of a node's targets and
// returns their addresses, in order, for the node to advertise.
func (m *Mesh) Add(ip string, targets ...string) ([]string, error) {
	var ps []*Proxy
	var addrs []string
	for _, t := range targets {
		p, err := Listen("127.0.0.1:0", t)
		if err != nil {
			for _, p := range ps {
				p.Close()
			}
			return nil, err
		}
		ps, addrs = append(ps, p), append(addrs, p.Addr())
	}
	m.ips, m.proxies = append(m.ips, ip), append(m.proxies, ps)
	return addrs, nil
}

// Cut blocks all traffic between node i and each of others (0-based, in
// the order they were added), both ways.
func (m *Mesh) Cut(i int, others ...int) {
	for _, j := range others {
		for _, p := range m.proxies[i] {
			p.Block(m.ips[j])
		}
		for _, p := range m.proxies[j] {
			p.Block(m.ips[i])
		}
	}
}

// Heal lets all traffic through again.
func (m *Mesh) Heal() {
	for _, ps := range m.proxies {
		for _, p := range ps {
			p.Unblock(m.ips...)
		}
	}
}

// Close stops every proxy.
func (m *Mesh) Close() {
	for _, ps := range m.proxies {
		for _, p := range ps {
			p.Close()
		}
	}
}

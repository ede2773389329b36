package main

import (
	"fmt"

	"github.com/cairn-dev/cairn/internal/faultnet"
)

// ---------------------------------------------------------------------------
// Partitions without root (reliability-plan.md §5.3, L2): node i listens on
// its own loopback IP 127.0.77.i and advertises faultnet proxies on 127.0.0.1
// for its Raft and HTTP ports. Nodes dial peers from their own IP, so each
// proxy knows which node a connection comes from and can blackhole it. The
// load generator and the app use 127.0.0.1 and are never cut, as with the
// netns scenario.

type proxyNet struct {
	ips  []string          // node i (1-based) is ips[i-1]
	raft []*faultnet.Proxy // in front of node i's Raft port
	http []*faultnet.Proxy // in front of node i's HTTP port
}

func proxyIP(i int) string { return fmt.Sprintf("127.0.77.%d", i) }

// add puts proxies in front of the next node's raft and http addresses.
func (p *proxyNet) add(ip, raftAddr, httpAddr string) (raftPx, httpPx string, err error) {
	r, err := faultnet.Listen("127.0.0.1:0", raftAddr)
	if err != nil {
		return "", "", err
	}
	h, err := faultnet.Listen("127.0.0.1:0", httpAddr)
	if err != nil {
		r.Close()
		return "", "", err
	}
	p.ips, p.raft, p.http = append(p.ips, ip), append(p.raft, r), append(p.http, h)
	return r.Addr(), h.Addr(), nil
}

// partition cuts node i off from each of others, both ways.
func (p *proxyNet) partition(i int, others []int) error {
	for _, j := range others {
		p.raft[i-1].Block(p.ips[j-1])
		p.http[i-1].Block(p.ips[j-1])
		p.raft[j-1].Block(p.ips[i-1])
		p.http[j-1].Block(p.ips[i-1])
	}
	return nil
}

// heal lets everything through again.
func (p *proxyNet) heal() error {
	for k := range p.ips {
		p.raft[k].Unblock(p.ips...)
		p.http[k].Unblock(p.ips...)
	}
	return nil
}

func (p *proxyNet) close() {
	for k := range p.ips {
		p.raft[k].Close()
		p.http[k].Close()
	}
}

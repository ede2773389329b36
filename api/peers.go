package api

import (
	"bytes"
	"context"
	"net/http"
	"time"

	"github.com/cairn-dev/cairn/internal/clusterauth"
	"github.com/cairn-dev/cairn/internal/peerdial"
)

// The client side of node-to-node HTTP: requests proxied to the leader,
// answers forwarded to it, and joins. They leave from this node's listen IP,
// over https with this node's certificate when it has a TLS identity.

// Routes that nodes call on each other.
const (
	pathJoin    = "/v1/cluster/join"
	pathRemove  = "/v1/cluster/remove"
	pathAnswers = "/v1/internal/answers"
	pathCalls   = "/v1/internal/calls"
)

// peerTransport is the transport to other nodes.
func peerTransport(cfg Config) *http.Transport {
	t := &http.Transport{DialContext: peerdial.New(cfg.ListenHost, 5*time.Second).DialContext,
		MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
		// A leader cut off silently must not hold the client forever;
		// a commit takes far less than this.
		ResponseHeaderTimeout: 30 * time.Second}
	if cfg.TLS != nil {
		t.TLSClientConfig = cfg.TLS.Dialer()
	}
	return t
}

// peerScheme is how nodes of this cluster speak HTTP to each other: all of
// them serve https when they have certificates.
func (s *Server) peerScheme() string {
	if s.cfg.TLS != nil {
		return "https"
	}
	return "http"
}

// toPeer sends a request of this node's own to another node's HTTP address,
// with a proof of the cluster secret. Requests from clients that this node
// proxies never get one: proxying does not make a client a node.
func (s *Server) toPeer(ctx context.Context, addr, path, contentType string, body []byte, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.peerScheme()+"://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	return s.sendPeer(req)
}

// sendPeer sends a request of this node's own to another node, with a
// proof of the cluster secret.
func (s *Server) sendPeer(req *http.Request) (*http.Response, error) {
	if s.cfg.ClusterSecret != "" {
		clusterauth.Sign(req, s.cfg.ClusterSecret, time.Now())
	}
	return s.toLeader.RoundTrip(req)
}

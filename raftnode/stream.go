package raftnode

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/internal/certs"
	"github.com/cairn-dev/cairn/internal/peerdial"
	"github.com/hashicorp/raft"
)

// handshakeTimeout bounds a TLS handshake on the Raft port, both ways: a
// connection that never completes one must not hold a transport goroutine.
const handshakeTimeout = 10 * time.Second

// stream is Raft's stream layer: TCP, under mutual TLS when the node has a
// TLS identity. Unlike hashicorp/raft's own, it dials peers from the Raft
// listen address (see package peerdial), so a node's Raft traffic always
// comes from the address it is known by.
type stream struct {
	net.Listener
	advertise net.Addr
	dialer    *peerdial.Dialer
	// listenTLS requires a client certificate from the cluster CA; dialTLS
	// verifies the peer's. Both nil: plain TCP.
	listenTLS, dialTLS *tls.Config
}

func newStream(ln net.Listener, advertise net.Addr, dialer *peerdial.Dialer, id *certs.Identity) *stream {
	s := &stream{Listener: ln, advertise: advertise, dialer: dialer}
	if id != nil {
		s.listenTLS, s.dialTLS = id.PeerListener(), id.Dialer()
	}
	return s
}

// Addr is what peers are told to dial: the advertised address.
func (s *stream) Addr() net.Addr { return s.advertise }

// Accept returns the next connection. Its TLS handshake runs on first use,
// in the transport's goroutine for that connection, so one slow or refused
// peer never stalls the accept loop.
func (s *stream) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil || s.listenTLS == nil {
		return c, err
	}
	return &serverConn{Conn: tls.Server(c, s.listenTLS)}, nil
}

func (s *stream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.dial(ctx, string(addr))
}

// dial connects to a peer's Raft port and, with TLS, completes the
// handshake: the peer's certificate must chain to the cluster CA and name
// the host dialed.
func (s *stream) dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := s.dialer.DialContext(ctx, "tcp", addr)
	if err != nil || s.dialTLS == nil {
		return c, err
	}
	host, _, _ := net.SplitHostPort(addr)
	cfg := s.dialTLS.Clone()
	cfg.ServerName = host
	tc := tls.Client(c, cfg)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// serverConn is the server side of a peer's TLS connection. Like tls.Conn
// it shakes hands on first use, but within handshakeTimeout, and its error
// names the peer (the transport logs it).
type serverConn struct {
	*tls.Conn
	once sync.Once
	err  error
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		if err := c.HandshakeContext(ctx); err != nil {
			c.err = fmt.Errorf("refused %s: TLS handshake: %w", c.RemoteAddr(), err)
		}
	})
	return c.err
}

func (c *serverConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *serverConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

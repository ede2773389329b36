package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Identity is a node's certificate and the CA it trusts: the TLS configs
// of its listeners and of its connections to peers all come from it.
type Identity struct {
	cert tls.Certificate
	pool *x509.CertPool
}

// ErrIncomplete says some but not all of a certificate, key and CA were
// given; mutual TLS needs all three.
var ErrIncomplete = errors.New("certs: TLS needs a certificate, its key and the cluster CA together")

// Load reads a node's certificate and key (PEM) and the CA certificates
// (PEM, one or more) that its peers' certificates must chain to.
func Load(certFile, keyFile, caFile string) (*Identity, error) {
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, ErrIncomplete
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	pool, err := TrustPool(caFile)
	if err != nil {
		return nil, err
	}
	return &Identity{cert: cert, pool: pool}, nil
}

// TrustPool reads CA certificates (PEM, one or more) into a pool.
func TrustPool(caFile string) (*x509.CertPool, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// PeerListener is for a listener only peers use (Raft): a client must
// present a certificate the CA signed, or the handshake fails.
func (id *Identity) PeerListener() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{id.cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: id.pool}
}

// SharedListener is for a listener that serves peers and clients alike
// (the HTTP API): SDKs, browsers and curl present no certificate, so one is
// verified when given (peers give theirs) but not required. What a request
// may do is decided per route (api's node proof, client keys).
func (id *Identity) SharedListener() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{id.cert},
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: id.pool}
}

// Dialer is for connections to peers: the peer's certificate must chain to
// the CA and name the host dialed; this node presents its own.
func (id *Identity) Dialer() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{id.cert}, RootCAs: id.pool}
}

// Pool is the trusted CA, for clients that only verify the server.
func (id *Identity) Pool() *x509.CertPool { return id.pool }

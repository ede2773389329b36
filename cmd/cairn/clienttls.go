package main

import (
	"crypto/tls"
	"flag"

	"github.com/cairn-dev/cairn/internal/certs"
)

// Client commands reach nodes that serve HTTPS with a cluster's own CA
// (--tls-ca). Membership changes are for nodes of the cluster, so
// "cairn cluster join|remove" can speak as one: with a node's certificate
// and the cluster secret, which on a node's host are already in its
// environment (the same variables as "cairn start").

// clientTLS is httpClient's TLS config; the flags below fill it in.
var clientTLS = &tls.Config{}

// nodeSecret, when set, signs every request as a node's (see call).
var nodeSecret string

// trustFlag adds --tls-ca to a client command; trust applies it.
func trustFlag(fs *flag.FlagSet) *string {
	return fs.String("tls-ca", env(envTLSCA, ""), "CA certificate (PEM) to trust for an https:// --url, e.g. the cluster's (env "+envTLSCA+")")
}

func trust(caFile string) error {
	if caFile == "" {
		return nil
	}
	pool, err := certs.TrustPool(caFile)
	if err != nil {
		return err
	}
	clientTLS.RootCAs = pool
	return nil
}

// nodeCreds are what a client needs to speak as a node.
type nodeCreds struct{ cert, key, secret string }

func (n *nodeCreds) flags(fs *flag.FlagSet) {
	fs.StringVar(&n.cert, "tls-cert", env(envTLSCert, ""), "a node's certificate, to speak as a node (env "+envTLSCert+")")
	fs.StringVar(&n.key, "tls-key", env(envTLSKey, ""), "its key (env "+envTLSKey+")")
	fs.StringVar(&n.secret, "cluster-secret", env(envClusterSecret, ""), "the cluster secret, to speak as a node (env "+envClusterSecret+")")
}

// use makes httpClient speak as a node.
func (n *nodeCreds) use() error {
	if n.cert != "" || n.key != "" {
		cert, err := tls.LoadX509KeyPair(n.cert, n.key)
		if err != nil {
			return err
		}
		clientTLS.Certificates = []tls.Certificate{cert}
	}
	nodeSecret = n.secret
	return nil
}

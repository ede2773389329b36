package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cairn-dev/cairn/internal/certs"
)

// defaultCertHosts suit a cluster on one machine.
var defaultCertHosts = []string{"127.0.0.1", "::1", "localhost"}

// cmdCerts makes a cluster CA and node certificates for mutual TLS.
func cmdCerts(args []string) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	dir := fs.String("dir", "certs", "directory to write into; a CA already there ("+certs.CAFile+", "+certs.CAKeyFile+") is reused")
	var nodes, hosts stringList
	fs.Var(&nodes, "nodes", "node ids, comma separated: one certificate and key each (required)")
	fs.Var(&hosts, "hosts", "IP addresses and DNS names the nodes are reached at, comma separated (default 127.0.0.1,::1,localhost)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: cairn certs --dir DIR --nodes n1,n2,n3 [--hosts 10.0.0.1,cairn.internal]

Makes a private CA for a cluster (unless DIR has one) and, for each node, a
certificate and key (ECDSA P-256) that serve both as its server certificate
(Raft, HTTPS) and as its client certificate towards its peers. A peer is
checked against the host it is dialed at, so --hosts must name every
address nodes and clients use; to give nodes different hosts, run once per
node with the same DIR. Keep `+certs.CAKeyFile+` off the nodes.

Flags:
`)
		fs.PrintDefaults()
	}
	if stop, err := handleHelp(fs.Parse(args)); stop {
		return err
	}
	if len(nodes) == 0 {
		return errors.New("certs: --nodes is required")
	}
	if len(hosts) == 0 {
		hosts = defaultCertHosts
	}
	written, err := certs.Make(*dir, nodes, hosts, time.Now())
	for _, p := range written {
		fmt.Println("wrote", p)
	}
	if err != nil {
		return err
	}
	n := nodes[0]
	fmt.Printf("\nStart node %s with:\n  cairn start --node-id %s --tls-cert %s --tls-key %s --tls-ca %s ...\n",
		n, n, certs.CertFile(*dir, n), certs.KeyFile(*dir, n), filepath.Join(*dir, certs.CAFile))
	return nil
}

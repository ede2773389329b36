package certs

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var loopback = []string{"127.0.0.1", "localhost"}

func load(t *testing.T, dir, node string) *Identity {
	t.Helper()
	id, err := Load(CertFile(dir, node), KeyFile(dir, node), filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// handshake runs a real TLS handshake over loopback TCP and returns the
// server's verdict (with TLS 1.3 the client finishes first and learns of a
// refused client certificate only later).
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	verdict := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			verdict <- err
			return
		}
		defer c.Close()
		verdict <- c.(*tls.Conn).Handshake()
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err == nil {
		c.Close()
	}
	if serr := <-verdict; serr != nil {
		return serr
	}
	return err
}

func TestNodesTrustEachOtherAndNobodyElse(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	now := time.Now()
	if _, err := Make(dir, []string{"n1", "n2"}, loopback, now); err != nil {
		t.Fatal(err)
	}
	if _, err := Make(other, []string{"x"}, loopback, now); err != nil {
		t.Fatal(err)
	}
	n1, n2, stranger := load(t, dir, "n1"), load(t, dir, "n2"), load(t, other, "x")

	if err := handshake(t, n1.PeerListener(), n2.Dialer()); err != nil {
		t.Fatalf("two nodes of one CA: %v", err)
	}
	noCert := n2.Dialer()
	noCert.Certificates = nil
	if handshake(t, n1.PeerListener(), noCert) == nil {
		t.Fatal("the peer listener took a client without a certificate")
	}
	if handshake(t, n1.PeerListener(), stranger.Dialer()) == nil {
		t.Fatal("the peer listener took a client certificate from another CA")
	}
	if handshake(t, stranger.PeerListener(), n2.Dialer()) == nil {
		t.Fatal("a node trusted a server certificate from another CA")
	}
	// The API listener serves clients without certificates, and still
	// refuses a certificate from another CA.
	if err := handshake(t, n1.SharedListener(), &tls.Config{RootCAs: n1.Pool()}); err != nil {
		t.Fatalf("a plain TLS client on the shared listener: %v", err)
	}
	if handshake(t, n1.SharedListener(), stranger.Dialer()) == nil {
		t.Fatal("the shared listener took a client certificate from another CA")
	}
}

func TestMakeReusesTheCAAndKeepsExistingFiles(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if _, err := Make(dir, []string{"n1"}, loopback, now); err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, CAFile))
	written, err := Make(dir, []string{"n2"}, []string{"127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 2 {
		t.Fatalf("a second run wrote %v; want only n2's pair", written)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, CAFile)); !bytes.Equal(ca, again) {
		t.Fatal("the CA was replaced")
	}
	if err := handshake(t, load(t, dir, "n1").PeerListener(), load(t, dir, "n2").Dialer()); err != nil {
		t.Fatalf("a node issued later by the same CA: %v", err)
	}
	if _, err := Make(dir, []string{"n1"}, loopback, now); err == nil {
		t.Fatal("Make overwrote n1's certificate")
	}
	if info, err := os.Stat(KeyFile(dir, "n2")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", info, err)
	}
	for _, bad := range []string{"ca", "../n", ""} {
		if _, err := Make(dir, []string{bad}, loopback, now); err == nil {
			t.Fatalf("node name %q accepted", bad)
		}
	}
}

// A certificate names the hosts it was made for: a node dialed at another
// address is refused, so a stolen certificate cannot stand in for any host.
func TestCertificateNamesItsHosts(t *testing.T) {
	dir := t.TempDir()
	if _, err := Make(dir, []string{"n1"}, []string{"10.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	n1 := load(t, dir, "n1")
	if handshake(t, n1.PeerListener(), n1.Dialer()) == nil {
		t.Fatal("a certificate for 10.0.0.1 was accepted for 127.0.0.1")
	}
	if _, err := Load(CertFile(dir, "n1"), KeyFile(dir, "n1"), ""); err != ErrIncomplete {
		t.Fatalf("Load without a CA: %v", err)
	}
}

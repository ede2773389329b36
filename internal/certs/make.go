// Package certs makes and loads the certificates Cairn nodes use for mutual
// TLS: a private cluster CA, and one certificate per node that serves both
// as its server certificate (Raft listener, HTTPS API) and as its client
// certificate (dialing peers). A node trusts exactly the certificates its
// cluster CA signed.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Files in a certificate directory: the CA's, and one pair per node named
// after it (CertFile, KeyFile).
const (
	certExt   = ".crt"
	keyExt    = ".key"
	caName    = "ca" // no node may have this name
	CAFile    = caName + certExt
	CAKeyFile = caName + keyExt
)

// Lifetimes. A CA outlives the node certificates it signs, so nodes can be
// re-issued (cairn certs reuses the CA in its directory) without a new CA.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	nodeValidity = 2 * 365 * 24 * time.Hour
	// backdate covers clocks that lag the one the certificate was made on.
	backdate = time.Hour
)

// PEM block types.
const (
	pemCert = "CERTIFICATE"
	pemKey  = "PRIVATE KEY"
)

// CertFile and KeyFile name a node's certificate and key in dir.
func CertFile(dir, node string) string { return filepath.Join(dir, node+certExt) }
func KeyFile(dir, node string) string  { return filepath.Join(dir, node+keyExt) }

// CA is a certificate authority that can sign node certificates.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// NewCA makes a self-signed CA with an ECDSA P-256 key.
func NewCA(now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := template("Cairn cluster CA", now, caValidity)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.MaxPathLenZero = true, true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: pemCert, Bytes: der})}, nil
}

// LoadCA reads the CA of a certificate directory (CAFile, CAKeyFile).
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, err
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAFile, err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", CAKeyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAKeyFile, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", CAKeyFile)
	}
	return &CA{cert: cert, key: key, pem: certPEM}, nil
}

// CertPEM is the CA certificate, for the trust store of nodes and clients.
func (ca *CA) CertPEM() []byte { return ca.pem }

// KeyPEM is the CA's private key (PKCS #8).
func (ca *CA) KeyPEM() ([]byte, error) { return keyPEM(ca.key) }

// Issue makes a certificate and key for a node, valid as a server for hosts
// (IP addresses or DNS names) and as a client; its common name is the node.
func (ca *CA) Issue(node string, hosts []string, now time.Time) (certPEM, keyOut []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := template(node, now, nodeValidity)
	if err != nil {
		return nil, nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	if keyOut, err = keyPEM(key); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCert, Bytes: der}), keyOut, nil
}

// Make writes node certificates into dir: a certificate and key per node
// (CertFile, KeyFile), signed by the CA in dir, which it makes first if dir
// has none. It refuses to overwrite a node's files. It returns the paths
// it wrote.
func Make(dir string, nodes, hosts []string, now time.Time) ([]string, error) {
	if len(nodes) == 0 {
		return nil, errors.New("certs: no nodes")
	}
	if len(hosts) == 0 {
		return nil, errors.New("certs: no hosts for the certificates")
	}
	for _, n := range nodes {
		if n == "" || n != filepath.Base(n) || strings.HasPrefix(n, ".") || n == caName {
			return nil, fmt.Errorf("certs: %q is not a usable node name", n)
		}
		for _, p := range []string{CertFile(dir, n), KeyFile(dir, n)} {
			if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("certs: %s exists; remove it to issue a new one", p)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var written []string
	ca, err := LoadCA(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if ca, err = newCAFiles(dir, now); err == nil {
			written = append(written, filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
		}
	}
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		cert, key, err := ca.Issue(n, hosts, now)
		if err != nil {
			return written, err
		}
		if err := writeNew(KeyFile(dir, n), key, 0o600); err != nil {
			return written, err
		}
		if err := writeNew(CertFile(dir, n), cert, 0o644); err != nil {
			return written, err
		}
		written = append(written, CertFile(dir, n), KeyFile(dir, n))
	}
	return written, nil
}

// newCAFiles makes a CA and writes it into dir.
func newCAFiles(dir string, now time.Time) (*CA, error) {
	ca, err := NewCA(now)
	if err != nil {
		return nil, err
	}
	key, err := ca.KeyPEM()
	if err != nil {
		return nil, err
	}
	if err := writeNew(filepath.Join(dir, CAKeyFile), key, 0o600); err != nil {
		return nil, err
	}
	return ca, writeNew(filepath.Join(dir, CAFile), ca.CertPEM(), 0o644)
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func template(name string, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-backdate), NotAfter: now.Add(validity)}, nil
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemKey, Bytes: der}), nil
}

func parseCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemCert {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

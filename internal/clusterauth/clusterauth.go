// Package clusterauth proves that an HTTP request comes from a node of the
// cluster: the sender puts in Header an HMAC-SHA256, keyed with the cluster
// secret, of the current time, the method and the path. The secret itself
// never travels, and a proof is good for one route for MaxSkew either side
// of the time it names.
//
// A proof is not bound to the body, so someone who can read a request can
// replay it to the same route within that window: node-to-node traffic
// should run over TLS (see package certs), which hides it.
package clusterauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header carries the proof: "v1.<unix seconds>.<hex HMAC>".
const Header = "X-Cairn-Cluster-Auth"

const (
	version = "v1"
	sep     = "."
	// domain keeps these MACs apart from anything else keyed with the secret.
	domain = "cairn-node-request"
)

// MaxSkew is how far a proof's time may be from the receiver's clock.
const MaxSkew = 5 * time.Minute

// MinSecretLen is the shortest cluster secret accepted: a secret is only as
// strong as it is hard to guess.
const MinSecretLen = 16

// Reasons a proof is refused.
var (
	ErrMissing = errors.New("no cluster proof")
	ErrInvalid = errors.New("cluster proof does not match the cluster secret")
	ErrExpired = errors.New("cluster proof is too old or too far in the future (check the nodes' clocks)")
)

// CheckSecret says whether secret is fit to be a cluster secret.
func CheckSecret(secret string) error {
	if len(secret) < MinSecretLen {
		return fmt.Errorf("the cluster secret has %d characters; use at least %d (e.g. openssl rand -hex 32)", len(secret), MinSecretLen)
	}
	return nil
}

// Sign puts a proof for req into its Header.
func Sign(req *http.Request, secret string, now time.Time) {
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set(Header, version+sep+ts+sep+hex.EncodeToString(mac(secret, ts, req.Method, req.URL.Path)))
}

// Verify checks the proof in r's Header against secret.
func Verify(r *http.Request, secret string, now time.Time) error {
	proof := r.Header.Get(Header)
	if proof == "" {
		return ErrMissing
	}
	parts := strings.Split(proof, sep)
	if len(parts) != 3 || parts[0] != version {
		return ErrInvalid
	}
	sec, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return ErrInvalid
	}
	got, err := hex.DecodeString(parts[2])
	if err != nil || !hmac.Equal(got, mac(secret, parts[1], r.Method, r.URL.Path)) {
		return ErrInvalid
	}
	if skew := now.Sub(time.Unix(sec, 0)); skew > MaxSkew || skew < -MaxSkew {
		return ErrExpired
	}
	return nil
}

func mac(secret, ts, method, path string) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(strings.Join([]string{domain, version, ts, method, path}, "\n")))
	return h.Sum(nil)
}

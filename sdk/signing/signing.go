// Package signing holds Inngest's signing keys and the HMAC signatures made
// with them (protocol note §2): the server signs every request to an app,
// the app signs its answer, and apps prove they hold the key with a Bearer
// token on the server's API.
package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/sdk/jcs"
)

// Header is where signatures travel, both ways.
const Header = "X-Inngest-Signature"

// MaxSkew is how far a signature's time may be from ours (both ways).
const MaxSkew = 5 * time.Minute

// Key is one signing key.
type Key struct {
	prefix string // "signkey-<env>-", or "" for a bare key
	secret string // the hex after the prefix: the HMAC key, as text
	bearer string // the Bearer token apps send: prefix + hex(sha256(hexdecode(secret)))
	// ID names the key in logs and records without revealing it: the first
	// 8 bytes of the bearer hash.
	ID string
}

var prefixed = regexp.MustCompile(`^(signkey-[A-Za-z0-9]+-)(.*)$`)

// ParseKey reads "signkey-<env>-<hex>" or the bare even-length hex.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	k := Key{secret: s}
	if m := prefixed.FindStringSubmatch(s); m != nil {
		k.prefix, k.secret = m[1], m[2]
	}
	raw, err := hex.DecodeString(k.secret)
	if err != nil || len(raw) == 0 {
		return Key{}, errors.New(`a signing key is "signkey-<env>-<hex>" or an even-length hex string`)
	}
	if len(raw) < 16 {
		return Key{}, fmt.Errorf("the signing key has %d bytes; use at least 16 (e.g. openssl rand -hex 32)", len(raw))
	}
	sum := sha256.Sum256(raw)
	k.bearer = k.prefix + hex.EncodeToString(sum[:])
	k.ID = hex.EncodeToString(sum[:8])
	return k, nil
}

// Bearer is the token an app holding this key sends on the server's API.
func (k Key) Bearer() string { return k.bearer }

// Raw is the key as configured.
func (k Key) Raw() string { return k.prefix + k.secret }

// IsZero reports whether k was never parsed.
func (k Key) IsZero() bool { return k.secret == "" }

// Sign returns the header value for body at time t: the HMAC is over the
// body as given (callers canonicalize JSON first, see SignJSON).
func (k Key) Sign(body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + "&s=" + k.mac(body, ts)
}

func (k Key) mac(body []byte, ts string) string {
	m := hmac.New(sha256.New, []byte(k.secret))
	m.Write(body)
	m.Write([]byte(ts))
	return hex.EncodeToString(m.Sum(nil))
}

// SignJSON canonicalizes a JSON body (RFC 8785) and signs it. It returns the
// canonical bytes, which are what must be sent: the SDK checks the
// signature over the canonical form of what it parsed.
func (k Key) SignJSON(body []byte, t time.Time) ([]byte, string, error) {
	canon, err := jcs.Transform(body)
	if err != nil {
		return nil, "", err
	}
	return canon, k.Sign(canon, t), nil
}

// Errors of Verify.
var (
	ErrMissing = errors.New("no signature")
	ErrFormat  = errors.New(`malformed signature: want "t=<unix seconds>&s=<hex>"`)
	ErrExpired = errors.New("signature time is more than 5 minutes from now")
	ErrInvalid = errors.New("signature does not match")
)

// Keys is the primary key and an optional fallback used during rotation.
type Keys struct {
	Primary  Key
	Fallback Key
}

// Enabled reports whether a key is configured (production mode).
func (ks Keys) Enabled() bool { return !ks.Primary.IsZero() }

// all lists the configured keys, primary first.
func (ks Keys) all() []Key {
	if ks.Fallback.IsZero() {
		return []Key{ks.Primary}
	}
	return []Key{ks.Primary, ks.Fallback}
}

// Verify checks a signature header over body (as received) against either
// key, and returns the key that matched.
func (ks Keys) Verify(header string, body []byte, now time.Time) (Key, error) {
	if header == "" {
		return Key{}, ErrMissing
	}
	var ts, sig string
	for _, part := range strings.Split(header, "&") {
		name, val, _ := strings.Cut(part, "=")
		switch name {
		case "t":
			ts = val
		case "s":
			sig = val
		}
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return Key{}, ErrFormat
	}
	if d := now.Sub(time.Unix(secs, 0)); d > MaxSkew || d < -MaxSkew {
		return Key{}, ErrExpired
	}
	for _, k := range ks.all() {
		if hmac.Equal([]byte(k.mac(body, ts)), []byte(strings.ToLower(sig))) {
			return k, nil
		}
	}
	return Key{}, ErrInvalid
}

// CheckBearer reports which key an Authorization header proves: the
// hashed form the SDKs send, or the raw key (as the official server
// accepts).
func (ks Keys) CheckBearer(authorization string) (Key, bool) {
	token, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok {
		return Key{}, false
	}
	token = strings.TrimSpace(token)
	for _, k := range ks.all() {
		if equal(token, k.bearer) || equal(token, k.Raw()) {
			return k, true
		}
	}
	return Key{}, false
}

// equal compares secrets in constant time.
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// EqualSecret compares a presented secret with a configured one in constant time.
func EqualSecret(presented, configured string) bool { return equal(presented, configured) }

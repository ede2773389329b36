package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/sdk/signing"
	"github.com/labstack/echo/v4"
)

// Browser sessions (the web UI, package ui). A person logs in once with the
// signing key; the browser then holds a session cookie, never the key. The
// cookie's value is a signed claim (the key it was opened with, when it
// ends, a random nonce), MACed with a secret derived from that signing key:
// every node of a cluster derives the same secret, so a session works on
// any of them (and through a follower's proxy to the leader), and rotating
// the key away ends the sessions it opened.
//
// The JSON API takes the cookie in place of the Bearer token. A request a
// browser makes on its own (a form or a link from another site) carries the
// cookie too (SameSite=Strict already stops cross-site ones), so a write
// authenticated by the cookie must also carry the session's CSRF token in
// CSRFHeader: the UI's pages hold it in a <meta> tag that only same-origin
// script can read. Reads need no token.
const (
	// SessionCookie is the name of the UI's session cookie.
	SessionCookie = "cairn_session"
	// CSRFHeader carries the CSRF token of the session on writes.
	CSRFHeader = "X-Cairn-CSRF"
	// SessionTTL is how long a login lasts.
	SessionTTL = 12 * time.Hour
	// sessionSecretLabel separates the session MAC key from any other use
	// of the signing key.
	sessionSecretLabel = "cairn ui session v1"
	// credentialSession prefixes the credential of a cookie-authenticated
	// request in actors: "session:key:<id>".
	credentialSession = "session:"
)

// session is what a session cookie claims.
type session struct {
	KeyID   string `json:"k"`
	Expires int64  `json:"e"` // unix seconds
	Nonce   string `json:"n"`
}

var b64 = base64.RawURLEncoding

// sessionKey is the MAC key of sessions opened with k.
func sessionKey(k signing.Key) []byte {
	m := hmac.New(sha256.New, []byte(k.Raw()))
	m.Write([]byte(sessionSecretLabel))
	return m.Sum(nil)
}

// keyByID is the configured signing key with that id (primary or
// fallback).
func (s *Server) keyByID(id string) (signing.Key, bool) {
	for _, k := range []signing.Key{s.cfg.Keys.Primary, s.cfg.Keys.Fallback} {
		if !k.IsZero() && k.ID == id {
			return k, true
		}
	}
	return signing.Key{}, false
}

func sessionMAC(key []byte, payload string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return b64.EncodeToString(m.Sum(nil))
}

// csrfToken is the session's CSRF token: a MAC of its nonce under another
// label, so it cannot be turned into the cookie or back.
func csrfToken(key []byte, sess session) string {
	return sessionMAC(key, "csrf:"+sess.Nonce)
}

// readSession returns the valid session of the request's cookie, if any,
// and the MAC key it was checked with.
func (s *Server) readSession(c echo.Context) (session, []byte, bool) {
	ck, err := c.Cookie(SessionCookie)
	if err != nil {
		return session{}, nil, false
	}
	payload, mac, ok := strings.Cut(ck.Value, ".")
	if !ok {
		return session{}, nil, false
	}
	raw, err := b64.DecodeString(payload)
	var sess session
	if err != nil || json.Unmarshal(raw, &sess) != nil {
		return session{}, nil, false
	}
	k, ok := s.keyByID(sess.KeyID)
	if !ok {
		return session{}, nil, false
	}
	key := sessionKey(k)
	if !hmac.Equal([]byte(mac), []byte(sessionMAC(key, payload))) || time.Now().Unix() >= sess.Expires {
		return session{}, nil, false
	}
	return sess, key, true
}

// Secured reports whether this node wants credentials (production mode):
// the UI then asks for a login.
func (s *Server) Secured() bool { return s.secured() }

// Login opens a session for whoever gives the signing key (raw or as the
// SDK's hashed Bearer form) and sets its cookie. It returns false, and
// sets nothing, for any other token.
func (s *Server) Login(c echo.Context, token string) bool {
	k, ok := s.cfg.Keys.CheckBearer("Bearer " + strings.TrimSpace(token))
	if !ok {
		return false
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	exp := time.Now().Add(SessionTTL)
	raw, _ := json.Marshal(session{KeyID: k.ID, Expires: exp.Unix(), Nonce: b64.EncodeToString(nonce)})
	payload := b64.EncodeToString(raw)
	c.SetCookie(&http.Cookie{Name: SessionCookie, Value: payload + "." + sessionMAC(sessionKey(k), payload),
		Path: "/", Expires: exp, MaxAge: int(SessionTTL.Seconds()), HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.Request().TLS != nil})
	s.log.Info("ui session opened", "key", signingKeyName(k))
	return true
}

// Logout ends the browser's session (its cookie; the session's MAC stays
// valid until it expires, so a stolen cookie is not revoked by this).
func (s *Server) Logout(c echo.Context) {
	c.SetCookie(&http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.Request().TLS != nil})
}

// PageSession reports whether a UI page may be shown to the request (dev
// mode, or a valid session) and the CSRF token its scripts must send on
// writes ("" in dev mode).
func (s *Server) PageSession(c echo.Context) (csrf string, ok bool) {
	if !s.secured() {
		return "", true
	}
	sess, key, ok := s.readSession(c)
	if !ok {
		return "", false
	}
	return csrfToken(key, sess), true
}

// checkSession lets in a request that carries no Authorization but a
// valid session cookie; a write must also carry the session's CSRF token.
func (s *Server) checkSession(c echo.Context) (bool, error) {
	sess, key, ok := s.readSession(c)
	if !ok {
		return false, nil
	}
	switch c.Request().Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if !signing.EqualSecret(c.Request().Header.Get(CSRFHeader), csrfToken(key, sess)) {
			return false, errf(http.StatusForbidden, "csrf", "a write made with a session cookie needs the session's %s header", CSRFHeader)
		}
	}
	c.Set(ctxKeyID, sess.KeyID)
	c.Set(ctxCredential, credentialSession+signingKeyName(signing.Key{ID: sess.KeyID}))
	return true, nil
}

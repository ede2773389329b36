package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/sdk/signing"
	"github.com/labstack/echo/v4"
)

func sessionServer(t *testing.T, primary string) *Server {
	t.Helper()
	k, err := signing.ParseKey(primary)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{cfg: Config{Keys: signing.Keys{Primary: k}}, log: slog.Default()}
}

// ctxWith is an echo context for a request carrying the cookie (if any).
func ctxWith(method string, ck *http.Cookie, header map[string]string) echo.Context {
	req := httptest.NewRequest(method, "/v1/runs", nil)
	if ck != nil {
		req.AddCookie(ck)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return echo.New().NewContext(req, httptest.NewRecorder())
}

func login(t *testing.T, s *Server, token string) *http.Cookie {
	t.Helper()
	c := ctxWith("POST", nil, nil)
	if !s.Login(c, token) {
		return nil
	}
	for _, ck := range c.Response().Header().Values("Set-Cookie") {
		if parsed, err := http.ParseSetCookie(ck); err == nil && parsed.Name == SessionCookie {
			return parsed
		}
	}
	t.Fatal("login set no session cookie")
	return nil
}

const (
	sessKeyA = "signkey-prod-00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	sessKeyB = "signkey-prod-ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
)

func TestSessionCookieAndCSRF(t *testing.T) {
	s := sessionServer(t, sessKeyA)
	if login(t, s, sessKeyB) != nil {
		t.Fatal("a wrong key opened a session")
	}
	ck := login(t, s, sessKeyA)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.MaxAge != int(SessionTTL.Seconds()) || strings.Contains(ck.Value, "00112233") {
		t.Fatalf("cookie %+v", ck)
	}
	// The SDK's hashed form of the key opens one too.
	if k, _ := signing.ParseKey(sessKeyA); login(t, s, k.Bearer()) == nil {
		t.Fatal("the hashed key opened no session")
	}

	c := ctxWith("GET", ck, nil)
	if ok, err := s.checkSession(c); !ok || err != nil {
		t.Fatalf("GET with the session: %v %v", ok, err)
	}
	if cred, _ := c.Get(ctxCredential).(string); !strings.HasPrefix(cred, credentialSession+"key:") {
		t.Fatalf("credential %q", cred)
	}
	csrf, ok := s.PageSession(ctxWith("GET", ck, nil))
	if !ok || csrf == "" {
		t.Fatal("no CSRF token for a page")
	}
	for _, h := range []map[string]string{nil, {CSRFHeader: "nope"}} {
		_, err := s.checkSession(ctxWith("POST", ck, h))
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
			t.Fatalf("POST with CSRF header %v: %v", h, err)
		}
	}
	if ok, err := s.checkSession(ctxWith("POST", ck, map[string]string{CSRFHeader: csrf})); !ok || err != nil {
		t.Fatalf("POST with the CSRF token: %v %v", ok, err)
	}

	// Refused: a tampered claim, an expired one, one another key signed
	// (the key rotated away).
	payload, _, _ := strings.Cut(ck.Value, ".")
	raw, _ := b64.DecodeString(payload)
	var sess session
	json.Unmarshal(raw, &sess)
	sess.Expires = time.Now().Add(-time.Minute).Unix()
	k, _ := signing.ParseKey(sessKeyA)
	expired, _ := json.Marshal(sess)
	ep := b64.EncodeToString(expired)
	sess.Expires = time.Now().Add(time.Hour * 24 * 365).Unix()
	longer, _ := json.Marshal(sess)
	lp := b64.EncodeToString(longer)
	_, mac, _ := strings.Cut(ck.Value, ".")
	for name, v := range map[string]string{
		"expired":  ep + "." + sessionMAC(sessionKey(k), ep),
		"tampered": lp + "." + mac,
		"garbage":  "x.y",
	} {
		bad := *ck
		bad.Value = v
		if ok, _ := s.checkSession(ctxWith("GET", &bad, nil)); ok {
			t.Errorf("%s session accepted", name)
		}
	}
	if ok, _ := sessionServer(t, sessKeyB).checkSession(ctxWith("GET", ck, nil)); ok {
		t.Error("a session of a key no longer configured was accepted")
	}
}

func TestSessionNotNeededInDevMode(t *testing.T) {
	s := &Server{log: slog.Default()}
	if csrf, ok := s.PageSession(ctxWith("GET", nil, nil)); !ok || csrf != "" {
		t.Fatalf("dev mode page: %q %v", csrf, ok)
	}
}

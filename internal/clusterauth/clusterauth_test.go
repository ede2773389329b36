package clusterauth

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

const secret = "0123456789abcdef0123"

func request(t *testing.T, method, path string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, "http://node"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestProofIsBoundToSecretRouteAndTime(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	signed := request(t, http.MethodPost, "/v1/internal/answers")
	Sign(signed, secret, now)
	if strings.Contains(signed.Header.Get(Header), secret) {
		t.Fatal("the proof carries the secret")
	}
	if err := Verify(signed, secret, now.Add(MaxSkew-time.Second)); err != nil {
		t.Fatalf("a fresh proof: %v", err)
	}

	// The same proof replayed to another route, or another method.
	for _, r := range []*http.Request{request(t, http.MethodPost, "/v1/cluster/join"), request(t, http.MethodGet, "/v1/internal/answers")} {
		r.Header.Set(Header, signed.Header.Get(Header))
		if err := Verify(r, secret, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("proof for POST /v1/internal/answers used for %s %s: %v", r.Method, r.URL.Path, err)
		}
	}
	if err := Verify(signed, "another-secret-of-length", now); !errors.Is(err, ErrInvalid) {
		t.Errorf("another secret: %v", err)
	}
	for _, at := range []time.Time{now.Add(MaxSkew + time.Second), now.Add(-MaxSkew - time.Second)} {
		if err := Verify(signed, secret, at); !errors.Is(err, ErrExpired) {
			t.Errorf("checked at %v: %v", at.Sub(now), err)
		}
	}
	if err := Verify(request(t, http.MethodPost, "/x"), secret, now); !errors.Is(err, ErrMissing) {
		t.Errorf("no header: %v", err)
	}
	for _, bad := range []string{"v1", "v2.1700000000.00", "v1.x.00", "v1.1700000000.zz", "v1.1700000000." + strings.Repeat("0", 64)} {
		r := request(t, http.MethodPost, "/v1/internal/answers")
		r.Header.Set(Header, bad)
		if err := Verify(r, secret, now); !errors.Is(err, ErrInvalid) {
			t.Errorf("proof %q: %v", bad, err)
		}
	}
}

func TestShortSecretsRefused(t *testing.T) {
	if CheckSecret("short") == nil {
		t.Fatal("a 5-character secret was accepted")
	}
	if err := CheckSecret(secret); err != nil {
		t.Fatal(err)
	}
}

package signing

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// probeKey is the key the protocol fixtures were captured with.
const probeKey = "signkey-test-7468697320697320612074657374206b657920666f722070726f62696e672121"

type exchange struct {
	Request struct {
		Headers map[string]string `json:"headers"`
		RawBody string            `json:"raw_body"`
	} `json:"request"`
	Response struct {
		Headers map[string]string `json:"headers"`
		RawBody string            `json:"raw_body"`
	} `json:"response"`
}

func fixture(t *testing.T, name string) exchange {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "protocol", "fixtures", name))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	var x exchange
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	return x
}

func sigTime(t *testing.T, h string) time.Time {
	ts, _, _ := strings.Cut(strings.TrimPrefix(h, "t="), "&")
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("signature %q: %v", h, err)
	}
	return time.Unix(n, 0)
}

func mustKeys(t *testing.T, primary, fallback string) Keys {
	t.Helper()
	var ks Keys
	var err error
	if ks.Primary, err = ParseKey(primary); err != nil {
		t.Fatal(err)
	}
	if fallback != "" {
		if ks.Fallback, err = ParseKey(fallback); err != nil {
			t.Fatal(err)
		}
	}
	return ks
}

// The real SDK's signatures, both ways, check out; and ours, made over the
// canonical body, equal the one the SDK accepted.
func TestFixtureSignatures(t *testing.T) {
	x := fixture(t, "090-cloud-call-signed-ok.json")
	ks := mustKeys(t, probeKey, "")
	reqSig := x.Request.Headers["x-inngest-signature"]
	at := sigTime(t, reqSig)
	canon, sig, err := ks.Primary.SignJSON([]byte(x.Request.RawBody), at)
	if err != nil {
		t.Fatal(err)
	}
	if sig != reqSig {
		t.Fatalf("our signature %s, the one the SDK accepted %s", sig, reqSig)
	}
	if _, err := ks.Verify(reqSig, canon, at.Add(time.Minute)); err != nil {
		t.Fatalf("request signature: %v", err)
	}
	respSig := x.Response.Headers["x-inngest-signature"]
	if _, err := ks.Verify(respSig, []byte(x.Response.RawBody), sigTime(t, respSig)); err != nil {
		t.Fatalf("SDK response signature: %v", err)
	}
	// Tampered body, stale time, other key.
	if _, err := ks.Verify(respSig, []byte(x.Response.RawBody+" "), sigTime(t, respSig)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tampered body: %v", err)
	}
	if _, err := ks.Verify(respSig, []byte(x.Response.RawBody), sigTime(t, respSig).Add(6*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Fatalf("old signature: %v", err)
	}
	other := mustKeys(t, "signkey-prod-00112233445566778899aabbccddeeff", "")
	if _, err := other.Verify(respSig, []byte(x.Response.RawBody), sigTime(t, respSig)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("other key: %v", err)
	}
	// During rotation the old key still verifies, as the fallback.
	rot := mustKeys(t, "signkey-prod-00112233445566778899aabbccddeeff", probeKey)
	if k, err := rot.Verify(respSig, []byte(x.Response.RawBody), sigTime(t, respSig)); err != nil || k.ID != ks.Primary.ID {
		t.Fatalf("fallback: %v %v", k.ID, err)
	}
}

// The SDK proves the key with the hashed Bearer token (fixture
// cloud-sync-put); the raw key is accepted too, anything else is not.
func TestBearer(t *testing.T) {
	ks := mustKeys(t, probeKey, "")
	want := "signkey-test-789ce93dd5ef90349a418aa952079178f90b8d93e2d2244fe98701b28da86ea3"
	if ks.Primary.Bearer() != want {
		t.Fatalf("bearer %s, want %s", ks.Primary.Bearer(), want)
	}
	for _, c := range []struct {
		header string
		ok     bool
	}{
		{"Bearer " + want, true},
		{"Bearer " + probeKey, true},
		{"Bearer undefined", false},
		{"Bearer ", false},
		{"", false},
		{want, false},
		{"Bearer " + want[:len(want)-1] + "0", false},
	} {
		if _, ok := ks.CheckBearer(c.header); ok != c.ok {
			t.Errorf("CheckBearer(%q) = %v, want %v", c.header, ok, c.ok)
		}
	}
}

func TestParseKey(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{probeKey, true},
		{"7468697320697320612074657374206b", true},
		{"signkey-prod-abc", false},   // odd length
		{"signkey-prod-zz00", false},  // not hex
		{"", false},                   // empty
		{"signkey-prod-0011", false},  // too short
		{"not a key at all!!", false}, // garbage
	} {
		if _, err := ParseKey(c.in); (err == nil) != c.ok {
			t.Errorf("ParseKey(%q): err = %v, want ok=%v", c.in, err, c.ok)
		}
	}
}

package sdk_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/cairn-dev/cairn/sdk"
)

// The client reads its mode and server from INNGEST_* as the official SDKs
// do, and IgnoreEnv turns that off.
func TestConfigFromEnvironment(t *testing.T) {
	var registers atomic.Int32
	var auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fn/register" {
			registers.Add(1)
			auth.Store(r.Header.Get("Authorization"))
		}
		w.Write([]byte(`{"ok":true,"modified":true}`))
	}))
	defer srv.Close()

	// INNGEST_DEV holding a URL: dev mode against that server, no auth.
	t.Setenv("INNGEST_DEV", srv.URL)
	c, err := sdk.NewClient(sdk.ClientOpts{AppID: "cfg"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Dev() {
		t.Fatal("INNGEST_DEV=<url> is dev mode")
	}
	if err := c.Register(context.Background(), "http://127.0.0.1:1/api/inngest"); err != nil || registers.Load() != 1 {
		t.Fatalf("register against INNGEST_DEV's URL: %v (%d registers)", err, registers.Load())
	}
	if a := auth.Load().(string); a != "" {
		t.Fatalf("dev mode sent Authorization %q", a)
	}

	// Production: INNGEST_DEV=0, the server from INNGEST_BASE_URL, the hashed key as Bearer.
	t.Setenv("INNGEST_DEV", "0")
	t.Setenv("INNGEST_BASE_URL", srv.URL)
	t.Setenv("INNGEST_SIGNING_KEY", probeKey)
	c, err = sdk.NewClient(sdk.ClientOpts{AppID: "cfg"})
	if err != nil || c.Dev() {
		t.Fatalf("INNGEST_DEV=0: dev=%v err=%v", c != nil && c.Dev(), err)
	}
	if err := c.Register(context.Background(), "http://127.0.0.1:1/api/inngest"); err != nil {
		t.Fatal(err)
	}
	if a := auth.Load().(string); a != "Bearer signkey-test-789ce93dd5ef90349a418aa952079178f90b8d93e2d2244fe98701b28da86ea3" {
		t.Fatalf("production Authorization %q, want the hashed key (protocol note §2.4)", a)
	}

	// A malformed key is an error, not a client that fails later.
	t.Setenv("INNGEST_SIGNING_KEY", "signkey-test-xyz")
	if _, err := sdk.NewClient(sdk.ClientOpts{AppID: "cfg"}); err == nil {
		t.Fatal("a malformed INNGEST_SIGNING_KEY was accepted")
	}
	// IgnoreEnv: none of it counts (production mode, no key, the default server).
	c, err = sdk.NewClient(sdk.ClientOpts{AppID: "cfg", IgnoreEnv: true})
	if err != nil || c.Dev() {
		t.Fatalf("IgnoreEnv: dev=%v err=%v", c != nil && c.Dev(), err)
	}
}

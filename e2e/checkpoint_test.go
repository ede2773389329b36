package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// When the checkpoint API fails, the SDK falls back (protocol §9.1): after
// 5 tries of a 500 it answers the call with a 206 of the steps it could not
// checkpoint; after a 409 it gives the dispatch up (StaleDispatchError).
// Either way the run completes. The app reaches Cairn through a proxy that
// fails every checkpoint with the given status.
func TestCheckpointFailures(t *testing.T) {
	for _, tc := range []struct {
		status int
		once   bool // each step body runs once: the fallback 206 carries it
	}{{http.StatusInternalServerError, true}, {http.StatusConflict, false}} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			srv, c := startCairn(t)
			target, _ := url.Parse(srv.URL())
			proxy := httputil.NewSingleHostReverseProxy(target)
			var failed atomic.Int64
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/v1/checkpoint/") {
					failed.Add(1)
					http.Error(w, `{"error":"checkpoint refused by the test proxy"}`, tc.status)
					return
				}
				proxy.ServeHTTP(w, r)
			}))
			t.Cleanup(front.Close)
			app := startApp(t, front.URL)
			srv.Syncer.Add(app.URL)
			c.waitSynced("tsapp", 60*time.Second)

			id := c.send("contacts/csv.uploaded", map[string]any{"csv": "email,name\na@x.io,Ann\nb@x.io,Bob"})
			r := c.waitRun(id, 60*time.Second)
			if r.Status != "completed" {
				t.Fatalf("status %s, error %s", r.Status, r.Error)
			}
			if failed.Load() == 0 {
				t.Fatal("the SDK sent no checkpoint")
			}
			if len(r.Steps) != 3 {
				t.Errorf("run has %d memoized steps, want 3", len(r.Steps))
			}
			if tc.once {
				ex := app.executions(t, r.ID)
				for _, step := range []string{"parse-csv", "normalize-raw-csv", "input-contacts"} {
					if ex[step] != 1 {
						t.Errorf("step %s ran %d times, want once (%v)", step, ex[step], ex)
					}
				}
			}
		})
	}
}

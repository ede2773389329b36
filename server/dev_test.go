package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/discovery"
	"github.com/cairn-dev/cairn/internal/testnet"
)

// lockedBuffer is a log sink tests read while the node writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A single node, bootstrapped as cairn dev and cairn start bootstrap one,
// starts and restarts without a warning: its first election is not one
// (hashicorp/raft logs it at WARN; raftnode says it at INFO).
func TestSingleNodeStartsWithoutWarnings(t *testing.T) {
	for _, kind := range []string{"dev", "cloud"} {
		t.Run(kind, func(t *testing.T) {
			dir, raftAddr := t.TempDir(), freeAddr(t)
			for _, start := range []string{"first start", "restart"} {
				var logs lockedBuffer
				cfg := Config{NodeID: "n1", DataDir: dir, HTTPAddr: "127.0.0.1:0", RaftAddr: raftAddr,
					Bootstrap: true, ServerKind: kind,
					Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
				s, err := Start(cfg)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err = s.WaitReady(ctx)
				cancel()
				if err != nil {
					s.Close()
					t.Fatal(err)
				}
				time.Sleep(300 * time.Millisecond) // the leader's first records
				s.Close()
				out := logs.String()
				if strings.Contains(out, "level=WARN") || strings.Contains(out, "level=ERROR") {
					t.Fatalf("%s logged a warning:\n%s", start, out)
				}
				if !strings.Contains(out, "standing for election") {
					t.Fatalf("%s: no election logged:\n%s", start, out)
				}
			}
		})
	}
}

// fakeSDK serves an Inngest SDK endpoint at path on a port: a GET answers
// with the SDK's header, a PUT (a sync) registers the app with Cairn, as
// the SDK does.
func fakeSDK(t *testing.T, port int, path string, cairn func() string) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
	mux := http.NewServeMux()
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Inngest-SDK", "js:v3.0.0")
		if r.Method == http.MethodPut {
			reg := fmt.Sprintf(`{"url":%q,"framework":"express","appName":"found-app","sdk":"js:v3.0.0","v":"0.1","functions":[`+
				`{"id":"found-app-hello","name":"hello","triggers":[{"event":"app/hello"}],"steps":{"step":{"id":"step","name":"step",`+
				`"runtime":{"type":"http","url":%q}}}}]}`, url, url+"?fnId=found-app-hello&stepId=step")
			resp, err := http.Post(cairn()+"/fn/register", "application/json", strings.NewReader(reg))
			if err != nil || resp.StatusCode != 200 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			resp.Body.Close()
			w.Header().Set("X-Inngest-Sync-Kind", "in_band")
			w.Write([]byte(`{"message":"Successfully registered"}`))
			return
		}
		w.Write([]byte(`{"function_count":1}`))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// cairn dev finds an app serving on one of the probed ports and paths
// (here /x/inngest, a path of Inngest's list but not the first), and syncs
// it: the app registers without being named.
func TestDevDiscoversAnApp(t *testing.T) {
	sdkPort, closedPort := testnet.FreePort(t), testnet.FreePort(t)
	var n *testNode
	fakeSDK(t, sdkPort, "/x/inngest", func() string { return n.srv.URL() })
	n = startNode(t, "solo", "", func(c *Config) {
		c.ServerKind = "dev"
		c.Discovery = &discovery.Config{Ports: []int{closedPort, sdkPort}, Paths: discovery.DefaultPaths,
			Interval: 100 * time.Millisecond}
	})
	waitUntil(t, "the discovered app to register", func() bool {
		app, _ := n.srv.FSM.App("found-app")
		return app != nil
	})
	want := fmt.Sprintf("http://127.0.0.1:%d/x/inngest", sdkPort)
	if !n.srv.Syncer.Known(want) {
		t.Fatalf("the syncer does not keep %s: %+v", want, n.srv.Syncer.Status())
	}
	for _, r := range n.srv.Syncer.Status() {
		if r.URL != want {
			t.Errorf("synced %s, which serves no SDK", r.URL)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/internal/proc"
)

// httpc is the bench's client for Cairn's API and the event API.
var httpc = &http.Client{
	Timeout: 60 * time.Second,
	Transport: &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	},
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// findRoot walks up from the working directory to the module root.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(b, []byte("module github.com/cairn-dev/cairn")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the cairn module root (go.mod) above the working directory")
		}
		dir = parent
	}
}

// buildCairn runs `go build -o bin/cairn ./cmd/cairn` in root.
func buildCairn(ctx context.Context, root string) (string, error) {
	bin := filepath.Join(root, "bin", "cairn")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/cairn")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/cairn: %v\n%s", err, out)
	}
	return bin, nil
}

// cairnNode is one `cairn dev` (or, in production mode, `cairn start`)
// subprocess.
type cairnNode struct {
	proc     *proc.Child
	url      string // http://127.0.0.1:port
	port     int
	dataDir  string
	logPath  string
	bearer   string // production: sent on every API request
	eventKey string // the /e/<key> events go to
}

// eventURL is where events are sent: /e/bench in dev (any key is taken),
// /e/<event key> in production.
func (n *cairnNode) eventURL() string { return n.url + "/e/" + n.eventKey }

// authorize adds the Bearer token Cairn's API asks for in production.
func (n *cairnNode) authorize(req *http.Request) {
	if n.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+n.bearer)
	}
}

// pickCairnPort reserves (best effort) the HTTP port before the node starts,
// so that an app can be told Cairn's URL before Cairn runs.
func pickCairnPort() (int, error) { return freePort() }

// startCairn starts `cairn dev`, or with keys `cairn start --bootstrap` in
// production mode.
func startCairn(ctx context.Context, bin, workDir string, port int, logLevel string, appURLs []string, keys *prodKeys, extra []string) (*cairnNode, error) {
	raftPort, err := freePort()
	if err != nil {
		return nil, err
	}
	for raftPort == port {
		if raftPort, err = freePort(); err != nil {
			return nil, err
		}
	}
	dataDir := filepath.Join(workDir, "data")
	args := []string{"dev"}
	// Keep our CAIRN_* settings from leaking in from the environment.
	env := []string{"CAIRN_APP_URLS=", "CAIRN_LOG_JSON=false", "CAIRN_ALLOW_APP_HOSTS=", "CAIRN_ARCHIVE=", "CAIRN_ARCHIVE_DIR=",
		"CAIRN_ARCHIVE_MAX_AGE=", "CAIRN_ARCHIVE_MAX_BYTES=", "CAIRN_SNAPSHOT_THRESHOLD=", "CAIRN_TRAILING_LOGS=", "CAIRN_SNAPSHOT_INTERVAL=",
		// The bench names its apps (-u): cairn dev must not sync whatever
		// else listens on this machine's common ports.
		"CAIRN_NO_DISCOVERY=true"}
	if keys != nil {
		// The keys go through the environment, not argv, where any user's
		// ps would show them.
		args = []string{"start", "--bootstrap", "--node-id", "bench"}
		env = append(env, "CAIRN_SIGNING_KEY="+keys.key.Raw(), "CAIRN_EVENT_KEYS="+keys.eventKey,
			"CAIRN_SIGNING_KEY_FALLBACK=", "CAIRN_INSECURE=", "CAIRN_PEERS=", "CAIRN_JOIN=")
	}
	args = append(args, "--data-dir", dataDir, "--port", strconv.Itoa(port), "--host", "127.0.0.1",
		"--raft-addr", "127.0.0.1:"+strconv.Itoa(raftPort), "--log-level", logLevel)
	for _, u := range appURLs {
		args = append(args, "-u", u)
	}
	args = append(args, extra...)
	logPath := filepath.Join(workDir, "cairn.log")
	p, err := proc.Start("cairn", proc.Options{Dir: workDir, Env: env, LogPath: logPath}, bin, args...)
	if err != nil {
		return nil, err
	}
	n := &cairnNode{proc: p, url: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, dataDir: dataDir, logPath: logPath,
		eventKey: "bench"}
	if keys != nil {
		n.bearer, n.eventKey = keys.key.Bearer(), keys.eventKey
	}
	if err := n.waitHealthy(ctx, 60*time.Second); err != nil {
		n.proc.Stop(5 * time.Second)
		return nil, fmt.Errorf("%w\n--- cairn log (%s) ---\n%s", err, logPath, proc.TailFile(logPath, 40))
	}
	return n, nil
}

func (n *cairnNode) waitHealthy(ctx context.Context, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		if n.proc.Exited() {
			return fmt.Errorf("cairn exited early: %v", n.proc.Err())
		}
		var h struct {
			OK bool `json:"ok"`
		}
		if err := n.getJSON(ctx, "/health", &h); err == nil && h.OK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cairn not healthy after %s", max)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (n *cairnNode) stop() { n.proc.Stop(15 * time.Second) }

// getJSON GETs path from Cairn and decodes a 2xx JSON answer into out.
func (n *cairnNode) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.url+path, nil)
	if err != nil {
		return err
	}
	n.authorize(req)
	return doJSON(req, out)
}

func (n *cairnNode) postJSON(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	n.authorize(req)
	return doJSON(req, out)
}

func doJSON(req *http.Request, out any) error { return doJSONWith(httpc, req, out) }

// doJSONWith sends req with client c and decodes a 2xx answer into out.
func doJSONWith(c *http.Client, req *http.Request, out any) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", req.Method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: bad JSON: %v", req.Method, req.URL.Path, err)
	}
	return nil
}

// lastLogIndex reads raft.last_log_index from GET /v1/status.
func (n *cairnNode) lastLogIndex(ctx context.Context) (uint64, error) {
	c, err := n.logCounters(ctx)
	return c.index, err
}

// logCounts are the log's counters from GET /v1/status: the last index,
// and since the node started, its synced writes of entries and the entries
// that waited for more proposals (--commit-delay). A build without a
// counter reads 0.
type logCounts struct {
	index, syncs, holds uint64
}

func (n *cairnNode) logCounters(ctx context.Context) (logCounts, error) {
	var st struct {
		Raft struct {
			LastLogIndex json.RawMessage `json:"last_log_index"`
			LogSyncs     uint64          `json:"log_syncs"`
			CommitHolds  uint64          `json:"commit_holds"`
		} `json:"raft"`
	}
	if err := n.getJSON(ctx, "/v1/status", &st); err != nil {
		return logCounts{}, err
	}
	index, err := strconv.ParseUint(strings.Trim(string(st.Raft.LastLogIndex), `"`), 10, 64)
	return logCounts{index: index, syncs: st.Raft.LogSyncs, holds: st.Raft.CommitHolds}, err
}

// appListed reports whether GET /v1/apps lists appID.
func (n *cairnNode) appListed(ctx context.Context, appID string) (bool, error) {
	var apps struct {
		Data []map[string]any `json:"data"`
	}
	if err := n.getJSON(ctx, "/v1/apps", &apps); err != nil {
		return false, err
	}
	for _, a := range apps.Data {
		for k, v := range a {
			if strings.EqualFold(k, "id") || strings.EqualFold(k, "app_id") {
				if s, _ := v.(string); s == appID {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// waitApp polls GET /v1/apps until appID shows up.
func (n *cairnNode) waitApp(ctx context.Context, appID string, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		ok, err := n.appListed(ctx, appID)
		if ok {
			return nil
		}
		if n.proc.Exited() {
			return fmt.Errorf("cairn exited: %v", n.proc.Err())
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("not listed")
			}
			return fmt.Errorf("app %q did not sync within %s (%v)\n--- cairn log (%s) ---\n%s",
				appID, max, err, n.logPath, proc.TailFile(n.logPath, 30))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runView is the part of Cairn's run JSON the bench reads.
type runView struct {
	ID        string          `json:"id"`
	Function  string          `json:"function_id"`
	Status    string          `json:"status"`
	EventIDs  []string        `json:"event_ids"`
	CreatedAt int64           `json:"created_at"`
	StartedAt int64           `json:"started_at"`
	EndedAt   int64           `json:"ended_at"`
	Steps     []string        `json:"steps"`
	Calls     int             `json:"calls"`
	Error     json.RawMessage `json:"error"`
	Waiting   string          `json:"waiting"` // why a running run is held back (flow control)
}

func (n *cairnNode) run(ctx context.Context, runID string) (runView, error) {
	var out struct {
		Data runView `json:"data"`
	}
	err := n.getJSON(ctx, "/v1/runs/"+runID, &out)
	return out.Data, err
}

func (n *cairnNode) recentRuns(ctx context.Context, limit int) ([]runView, error) {
	var out struct {
		Data []runView `json:"data"`
	}
	err := n.getJSON(ctx, fmt.Sprintf("/v1/runs?limit=%d", limit), &out)
	return out.Data, err
}

func (n *cairnNode) eventRuns(ctx context.Context, eventID string) ([]runView, error) {
	var out struct {
		Data []runView `json:"data"`
	}
	err := n.getJSON(ctx, "/v1/events/"+eventID+"/runs", &out)
	return out.Data, err
}

func (n *cairnNode) history(ctx context.Context, runID string) (json.RawMessage, error) {
	var out struct {
		Data json.RawMessage `json:"data"`
	}
	err := n.getJSON(ctx, "/v1/runs/"+runID+"/history", &out)
	return out.Data, err
}

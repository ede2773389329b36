package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/internal/hostpolicy"
	"github.com/cairn-dev/cairn/sdk/signing"
)

// Syncer asks apps to register by PUT-pinging their serve URL (protocol
// §3.1): the SDK then POSTs /fn/register. It is not a state change, so it
// needs no proposal; the registration it causes is one.
type Syncer struct {
	cfg    SyncerConfig
	client *http.Client
	log    *slog.Logger

	mu   sync.Mutex
	urls []string
	last map[string]SyncResult
}

// SyncerConfig tunes a Syncer.
type SyncerConfig struct {
	Kind     string             // server kind sent to apps: "dev" or "cloud"
	URLs     []string           // apps to sync from the start
	Keys     signing.Keys       // signs the PUT in production mode
	AppHosts *hostpolicy.Policy // where apps may live (nil: anywhere)
	Timeout  time.Duration      // per ping (default 10 s)
	Logger   *slog.Logger
}

// SyncResult is the outcome of one ping.
type SyncResult struct {
	URL     string `json:"url"`
	OK      bool   `json:"ok"`
	Status  int    `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	At      int64  `json:"at"`
}

// maxSyncMessage bounds what a ping reports of an app's answer: a sync
// error names the reason, it never echoes a remote body (a port-scan
// oracle otherwise).
const maxSyncMessage = 200

// NewSyncer creates a syncer.
func NewSyncer(cfg SyncerConfig) *Syncer {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	dial := cfg.AppHosts.Dialer(&net.Dialer{Timeout: 5 * time.Second})
	client := &http.Client{Timeout: cfg.Timeout,
		Transport:     &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second},
		CheckRedirect: noRedirects}
	return &Syncer{cfg: cfg, urls: append([]string(nil), cfg.URLs...), client: client,
		log: cfg.Logger.With("component", "sync"), last: map[string]SyncResult{}}
}

// noRedirects makes a client return a redirect as the answer: an app that
// redirects Cairn's requests could aim them at any address.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Add remembers another URL to sync.
func (s *Syncer) Add(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, have := range s.urls {
		if have == u {
			return
		}
	}
	s.urls = append(s.urls, u)
}

// Known reports whether a URL is one the syncer pings.
func (s *Syncer) Known(u string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.urls, u)
}

// Remove forgets a URL; it reports whether it was known.
func (s *Syncer) Remove(u string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, had := s.last[u]
	delete(s.last, u)
	for i, have := range s.urls {
		if have == u {
			s.urls = append(s.urls[:i], s.urls[i+1:]...)
			return true
		}
	}
	return had
}

// Status lists the known URLs with the outcome of their last ping.
func (s *Syncer) Status() []SyncResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SyncResult, 0, len(s.urls))
	for _, u := range s.urls {
		r, ok := s.last[u]
		if !ok {
			r = SyncResult{URL: u, Message: "not pinged yet"}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URL < out[j].URL })
	return out
}

// Ping sends one sync request and reports what the app answered.
func (s *Syncer) Ping(ctx context.Context, u string) SyncResult {
	res := SyncResult{URL: u, At: time.Now().UnixMilli()}
	if err := s.cfg.AppHosts.CheckURL(u); err != nil {
		res.Message = err.Error()
		return s.remember(res)
	}
	body, _ := json.Marshal(map[string]string{"url": u})
	var sig string
	if s.cfg.Keys.Enabled() {
		var err error
		if body, sig, err = s.cfg.Keys.Primary.SignJSON(body, time.Now()); err != nil {
			res.Message = err.Error()
			return s.remember(res)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		res.Message = shortReason(err)
		return s.remember(res)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Inngest-Server-Kind", s.cfg.Kind)
	req.Header.Set("User-Agent", "cairn")
	if sig != "" {
		req.Header.Set(signing.Header, sig)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		res.Message = shortReason(err)
		return s.remember(res)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	res.Status, res.OK = resp.StatusCode, resp.StatusCode == http.StatusOK
	// The SDK answers a sync with {"message": ...} and its headers;
	// anything else is not an SDK and its body is not repeated.
	var msg struct {
		Message string `json:"message"`
	}
	fromSDK := (resp.Header.Get("X-Inngest-Sync-Kind") != "" || resp.Header.Get("X-Inngest-SDK") != "") &&
		json.Unmarshal(raw, &msg) == nil
	switch {
	case fromSDK && !res.OK:
		res.Message = clip(msg.Message)
	case !fromSDK && res.OK:
		res.OK, res.Message = false, "HTTP 200 but not an Inngest SDK endpoint (no X-Inngest-SDK header)"
	case !fromSDK:
		res.Message = fmt.Sprintf("HTTP %d from a non-SDK endpoint (wrong URL?)", resp.StatusCode)
	}
	if !res.OK && res.Message == "" {
		res.Message = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	return s.remember(res)
}

// shortReason reduces a client error to its cause ("connection refused",
// "timeout"), without the URL the caller already knows.
func shortReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, hostpolicy.ErrRefused):
		return hostpolicy.ErrRefused.Error()
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return clip(op.Err.Error())
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return clip(msg)
}

func clip(s string) string {
	if len(s) > maxSyncMessage {
		return s[:maxSyncMessage] + "…"
	}
	return s
}

func (s *Syncer) remember(r SyncResult) SyncResult {
	s.mu.Lock()
	prev, had := s.last[r.URL]
	s.last[r.URL] = r
	s.mu.Unlock()
	if !had || prev.OK != r.OK || prev.Message != r.Message {
		if r.OK {
			s.log.Info("app synced", "url", r.URL)
		} else {
			s.log.Warn("app sync failed", "url", r.URL, "status", r.Status, "err", r.Message)
		}
	}
	return r
}

// SyncAll pings every known URL plus extra ones, all at once: an
// unreachable app never holds up the others.
func (s *Syncer) SyncAll(ctx context.Context, extra ...string) []SyncResult {
	s.mu.Lock()
	urls := append(append([]string(nil), s.urls...), extra...)
	s.mu.Unlock()
	seen := map[string]bool{}
	var todo []string
	for _, u := range urls {
		if !seen[u] {
			seen[u] = true
			todo = append(todo, u)
		}
	}
	return s.pingAll(ctx, todo)
}

func (s *Syncer) pingAll(ctx context.Context, urls []string) []SyncResult {
	out := make([]SyncResult, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = s.Ping(ctx, u)
		}()
	}
	wg.Wait()
	return out
}

// Loop pings URLs that have not synced yet every interval, so an app
// started after Cairn is picked up, until ctx ends.
func (s *Syncer) Loop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.mu.Lock()
		var todo []string
		for _, u := range s.urls {
			if !s.last[u].OK {
				todo = append(todo, u)
			}
		}
		s.mu.Unlock()
		s.pingAll(ctx, todo)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

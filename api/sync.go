package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Syncer asks apps to register by PUT-pinging their serve URL (protocol
// §3.1): the SDK then POSTs /fn/register. It is not a state change, so it
// needs no proposal; the registration it causes is one.
type Syncer struct {
	kind   string
	client *http.Client
	log    *slog.Logger

	mu   sync.Mutex
	urls []string
	last map[string]SyncResult
}

// SyncResult is the outcome of one ping.
type SyncResult struct {
	URL     string `json:"url"`
	OK      bool   `json:"ok"`
	Status  int    `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	At      int64  `json:"at"`
}

// NewSyncer creates a syncer for the given app URLs.
func NewSyncer(kind string, urls []string, logger *slog.Logger) *Syncer {
	if logger == nil {
		logger = slog.Default()
	}
	return &Syncer{kind: kind, urls: urls, client: &http.Client{Timeout: 30 * time.Second},
		log: logger.With("component", "sync"), last: map[string]SyncResult{}}
}

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

// Ping sends one sync request and reports what the app answered.
func (s *Syncer) Ping(ctx context.Context, u string) SyncResult {
	res := SyncResult{URL: u, At: time.Now().UnixMilli()}
	body, _ := json.Marshal(map[string]string{"url": u})
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		res.Message = err.Error()
		return s.remember(res)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Inngest-Server-Kind", s.kind)
	resp, err := s.client.Do(req)
	if err != nil {
		res.Message = err.Error()
		return s.remember(res)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var msg struct {
		Message string `json:"message"`
	}
	json.Unmarshal(raw, &msg)
	res.Status, res.OK, res.Message = resp.StatusCode, resp.StatusCode == http.StatusOK, msg.Message
	if !res.OK && res.Message == "" {
		res.Message = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	return s.remember(res)
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

// SyncAll pings every known URL plus extra ones.
func (s *Syncer) SyncAll(ctx context.Context, extra ...string) []SyncResult {
	s.mu.Lock()
	urls := append(append([]string(nil), s.urls...), extra...)
	s.mu.Unlock()
	seen := map[string]bool{}
	var out []SyncResult
	for _, u := range urls {
		if seen[u] {
			continue
		}
		seen[u] = true
		out = append(out, s.Ping(ctx, u))
	}
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
		for _, u := range todo {
			s.Ping(ctx, u)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

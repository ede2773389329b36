// Package discovery finds Inngest SDK endpoints on this machine, as
// Inngest's dev server does, so that "cairn dev" picks up an app started
// on a common port without being told its URL. Only cairn dev uses it: a
// production node syncs the apps it is given, never what happens to listen
// on its host.
package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultPorts are the ports Inngest's dev server probes (its
// pkg/devserver/discovery): the usual ports of web frameworks (Rails,
// Express and Next.js on 3000-3010, Django 5000, Vite and SvelteKit 5173,
// Redwood 8910-8915, and other common ones), so that an app the Inngest
// dev server finds, Cairn finds too.
var DefaultPorts = []int{
	80, 443,
	3000, 3001, 3002, 3003, 3004, 3005, 3006, 3007, 3008, 3009, 3010,
	5000,
	5173,
	8000, 8080, 8081, 8888,
	8910, 8911, 8912, 8913, 8914, 8915,
}

// DefaultPaths are the serve paths probed on each open port, as Inngest's
// dev server probes them: the SDK's default, and Netlify's and Redwood's
// function paths.
var DefaultPaths = []string{"/api/inngest", "/x/inngest", "/.netlify/functions/inngest", "/.redwood/functions/inngest"}

// DefaultInterval is how often ports are probed again (Inngest's dev
// server polls every 5 s too).
const DefaultInterval = 5 * time.Second

// Config says where to look and what to do with what answers.
type Config struct {
	Host     string        // default 127.0.0.1
	Ports    []int         // default DefaultPorts
	Paths    []string      // default DefaultPaths
	Interval time.Duration // default DefaultInterval
	// Timeout bounds one connection attempt or GET (default 2 s).
	Timeout time.Duration
	// Skip reports URLs already known, which are not probed again.
	Skip func(url string) bool
	// Found is called with each SDK endpoint a round finds.
	Found  func(ctx context.Context, url string)
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.Ports == nil {
		c.Ports = DefaultPorts
	}
	if c.Paths == nil {
		c.Paths = DefaultPaths
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Skip == nil {
		c.Skip = func(string) bool { return false }
	}
}

// Probe looks once: it connects to every port at once, and on those that
// accept, asks each path with a GET; an endpoint that answers with the
// SDK's X-Inngest-SDK header is an app (whatever its status: the SDK's
// introspection may refuse an unsigned GET, and still says what it is).
func Probe(ctx context.Context, cfg Config) []string {
	cfg.defaults()
	open := make([]bool, len(cfg.Ports))
	var wg sync.WaitGroup
	d := net.Dialer{Timeout: cfg.Timeout}
	for i, port := range cfg.Ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(port)))
			if err == nil {
				conn.Close()
				open[i] = true
			}
		}()
	}
	wg.Wait()
	client := &http.Client{Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var found []string
	for i, port := range cfg.Ports {
		if !open[i] {
			continue
		}
		for _, path := range cfg.Paths {
			u := fmt.Sprintf("http://%s%s", net.JoinHostPort(cfg.Host, strconv.Itoa(port)), path)
			if cfg.Skip(u) || ctx.Err() != nil {
				continue
			}
			if isSDK(ctx, client, u) {
				found = append(found, u)
			}
		}
	}
	return found
}

func isSDK(ctx context.Context, client *http.Client, u string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "cairn")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.Header.Get("X-Inngest-SDK") != ""
}

// Loop probes every Interval until ctx ends, handing each endpoint it
// finds to Found.
func Loop(ctx context.Context, cfg Config) {
	cfg.defaults()
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		for _, u := range Probe(ctx, cfg) {
			cfg.Logger.Info("app discovered", "url", u)
			cfg.Found(ctx, u)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Package ui is Cairn's web UI: server-rendered pages at / on the API's
// port, read from the projection through bounded, indexed views, with a
// little JavaScript that polls for live updates and sends actions (cancel,
// rerun, send, replay, sync) to the JSON API. Everything it serves is
// embedded in the binary: no Node toolchain, nothing from a CDN.
//
// Auth is the API's (api/session.go): in production mode a page without a
// valid session redirects to /login, where the signing key opens one; the
// pages carry the session's CSRF token for the scripts' writes.
package ui

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/raftnode"
	"github.com/labstack/echo/v4"
)

//go:embed templates/*.html static/*
var files embed.FS

// Projection is what the pages read of the projection (*fsm.FSM). Every
// read is bounded: a page of runs, one run's history, the apps.
type Projection interface {
	Applied() (index, digest uint64)
	Run(id string) (*fsm.Run, error)
	RunsBefore(before string, limit int) ([]fsm.Run, error)
	FunctionRunsScan(q fsm.RunQuery) (runs []fsm.Run, stop *fsm.Run, err error)
	History(runID string) ([]fsm.HistoryEntry, error)
	Call(runID, callID string) (*fsm.Call, error)
	Apps() ([]fsm.App, error)
	Function(id string) (*fsm.Function, error)
	Event(id string) ([]byte, error)
	EventOrigin(id string) (fsm.EventOrigin, error)
	Events(q fsm.EventQuery) ([]fsm.StoredEvent, string, error)
	RunsForEvent(eventID string) ([]string, error)
	Node(id string) (*fsm.NodeSeen, error)
}

// Cluster is what the cluster page reads of the Raft node (*raftnode.Node).
type Cluster interface {
	Stats() raftnode.Stats
	Members() ([]raftnode.Member, error)
}

// Syncer reports the last sync of each app URL (*api.Syncer).
type Syncer interface {
	Status() []api.SyncResult
}

// Auth is the API's session handling (*api.Server, see api/session.go).
type Auth interface {
	Secured() bool
	Login(c echo.Context, token string) bool
	Logout(c echo.Context)
	PageSession(c echo.Context) (csrf string, ok bool)
}

var (
	_ Projection = (*fsm.FSM)(nil)
	_ Cluster    = (*raftnode.Node)(nil)
	_ Syncer     = (*api.Syncer)(nil)
	_ Auth       = (*api.Server)(nil)
)

// Config is what the UI reads and who guards it.
type Config struct {
	Auth   Auth
	FSM    Projection
	Node   Cluster
	Syncer Syncer
	Logger *slog.Logger
}

// contentPolicy lets pages load only this server's scripts and styles and
// keeps them out of other sites' frames (no clickjacking of the buttons).
// Inline style attributes stay allowed: the waterfall's bars are placed
// with them.
const contentPolicy = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// secureHeaders are sent with every page.
func secureHeaders(c echo.Context) {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", contentPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// Paths of the UI's own routes, named once.
const (
	pathLogin  = "/login"
	pathLogout = "/logout"
	pathStatic = "/static"
)

type ui struct {
	cfg   Config
	pages map[string]*template.Template
	log   *slog.Logger
}

// Mount adds the UI's routes to the API's router.
func Mount(e *echo.Echo, cfg Config) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	u := &ui{cfg: cfg, pages: parsePages(), log: cfg.Logger.With("component", "ui")}
	static, _ := fs.Sub(files, "static")
	assets := http.StripPrefix(pathStatic+"/", http.FileServer(http.FS(static)))
	e.GET(pathStatic+"/*", func(c echo.Context) error {
		// Assets change only with the binary; an hour of caching keeps
		// page loads to one request without pinning an old release long.
		c.Response().Header().Set("Cache-Control", "public, max-age=3600")
		assets.ServeHTTP(c.Response(), c.Request())
		return nil
	})
	e.GET(pathLogin, u.loginPage)
	e.POST(pathLogin, u.login)
	e.POST(pathLogout, u.logout)
	e.GET("/favicon.ico", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	for _, r := range []struct {
		path, nav string // nav: the navigation entry the page belongs to
		h         func(echo.Context, *page) error
	}{
		{"/", "/", u.overview},
		{"/runs", "/runs", u.runs},
		{"/runs/:id", "/runs", u.run},
		{"/functions", "/functions", u.functions},
		{"/events", "/events", u.events},
		{"/events/:id", "/events", u.event},
		{"/send", "/send", u.send},
		{"/replay", "/replay", u.replay},
		{"/apps", "/apps", u.apps},
		{"/cluster", "/cluster", u.cluster},
	} {
		e.GET(r.path, u.guard(r.nav, r.h))
	}
}

// navItems are the main navigation's entries, by path.
var navItems = []struct{ Path, Label string }{
	{"/", "Overview"}, {"/runs", "Runs"}, {"/functions", "Functions"}, {"/events", "Events"},
	{"/send", "Send event"}, {"/replay", "Replay"}, {"/apps", "Apps"}, {"/cluster", "Cluster"},
}

// page is what every template gets: the layout's needs and the page's data.
type page struct {
	Title   string
	Nav     string // the path of the nav entry to mark current ("": no navigation)
	CSRF    string
	Secured bool
	Path    string // the request's path and query, for live refreshes
	Data    any
}

// guard shows a page only to a session (production mode) and renders it.
func (u *ui) guard(nav string, h func(echo.Context, *page) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		csrf, ok := u.cfg.Auth.PageSession(c)
		if !ok {
			return c.Redirect(http.StatusSeeOther, pathLogin+"?next="+url.QueryEscape(c.Request().URL.RequestURI()))
		}
		secureHeaders(c)
		p := &page{Nav: nav, CSRF: csrf, Secured: u.cfg.Auth.Secured(), Path: c.Request().URL.RequestURI()}
		err := h(c, p)
		var he *echo.HTTPError
		if errors.As(err, &he) {
			// A person reads this, not a program: the error as a page.
			p.Title, p.Data = http.StatusText(he.Code), fmt.Sprint(he.Message)
			return u.render(c, he.Code, "error", p)
		}
		return err
	}
}

// render writes a page with its template.
func (u *ui) render(c echo.Context, code int, name string, p *page) error {
	t, ok := u.pages[name]
	if !ok {
		return echo.NewHTTPError(http.StatusInternalServerError, "no template "+name)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		u.log.Error("rendering", "page", name, "err", err)
		return err
	}
	return c.HTML(code, b.String())
}

// parsePages parses each page's template with the layout it fills.
func parsePages() map[string]*template.Template {
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		out[base] = template.Must(template.New(base).Funcs(funcs).ParseFS(files, "templates/layout.html", n))
	}
	return out
}

// safeNext is where a login may send the browser: a path on this site
// only (never "//host", an open redirect).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (u *ui) loginPage(c echo.Context) error {
	secureHeaders(c)
	next := safeNext(c.QueryParam("next"))
	if _, ok := u.cfg.Auth.PageSession(c); ok {
		return c.Redirect(http.StatusSeeOther, next)
	}
	return u.render(c, http.StatusOK, "login", &page{Title: "Log in", Secured: true, Data: loginData{Next: next}})
}

type loginData struct {
	Next  string
	Error string
}

// login opens a session from a form post of the signing key. A form post
// from another site cannot log a victim in as anyone but the key's owner,
// and SameSite=Strict keeps the cookie off cross-site requests.
func (u *ui) login(c echo.Context) error {
	secureHeaders(c)
	next := safeNext(c.FormValue("next"))
	if !u.cfg.Auth.Login(c, c.FormValue("token")) {
		return u.render(c, http.StatusUnauthorized, "login", &page{Title: "Log in", Secured: true,
			Data: loginData{Next: next, Error: "That is not this server's signing key."}})
	}
	return c.Redirect(http.StatusSeeOther, next)
}

// logout ends the session. It needs the page's CSRF token (sent as a form
// field): another site must not log a user out.
func (u *ui) logout(c echo.Context) error {
	if csrf, ok := u.cfg.Auth.PageSession(c); ok && csrf != "" && c.FormValue("csrf") != csrf {
		return echo.NewHTTPError(http.StatusForbidden, "bad CSRF token")
	}
	u.cfg.Auth.Logout(c)
	return c.Redirect(http.StatusSeeOther, pathLogin)
}

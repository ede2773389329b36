package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/chromedp/chromedp"
)

// The web UI, driven in a real headless Chromium against a real Cairn and
// the TS app. A missing browser fails these tests (it never skips them):
// `make deps` installs Debian's chromium-headless-shell when it can.

// browserEnv names a Chromium binary to use instead of looking one up.
const browserEnv = "CAIRN_CHROMIUM"

// screenshotEnv, when set, is where TestUIDev saves a screenshot of the
// seed's run page (the README's picture: docs/run-page.png).
const screenshotEnv = "CAIRN_UI_SCREENSHOT"

// browserPath finds headless Chromium, or fails the test saying how to
// install it.
func browserPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(browserEnv); p != "" {
		return p
	}
	for _, name := range []string{"chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("no headless Chromium found: install it with `sudo apt-get install -y chromium-headless-shell` " +
		"(or `make deps` as root), or set " + browserEnv + " to a Chromium binary")
	return ""
}

// browser is one headless Chromium tab for a test.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browserPath(t)),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // start the browser now: its first context must not time out
		t.Fatalf("starting %s: %v", browserPath(t), err)
	}
	return &browser{t: t, ctx: ctx, base: base}
}

// do runs actions with a timeout.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v (at %s)", err, b.location())
	}
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base + path))
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v (at %s)", expr, err, b.location())
	}
	return v
}

func (b *browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

// waitFor waits until a JavaScript expression is true, across
// navigations (an evaluation during one just tries again).
func (b *browser) waitFor(expr string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ""`))
	b.t.Fatalf("waited %s for %s at %s; page:\n%s", timeout, expr, b.location(), body)
}

// texts is the text of every element a CSS selector matches.
func (b *browser) texts(sel string) []string {
	b.t.Helper()
	return eval[[]string](b, fmt.Sprintf(`[...document.querySelectorAll(%q)].map(e => e.textContent.trim())`, sel))
}

var runPath = regexp.MustCompile(`/runs/([0-9A-Z]{26})$`)

// seedCSV is the seed function's input in these tests, and the emails it
// imports from it.
const (
	seedCSV    = "email,name\nA@x.io, Ann\nb@x.io,Bob"
	seedEvent  = "contacts/csv.uploaded"
	failsEvent = "test/fnthrow"
)

var seedSteps = []string{"parse-csv", "normalize-raw-csv", "input-contacts"}

// waitRunStarted waits until an event's run exists and returns its id.
func (c client) waitRunStarted(eventID string, timeout time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var out struct {
			Data []run `json:"data"`
		}
		if code, err := c.do("GET", "/v1/events/"+eventID+"/runs", nil, &out); err == nil && code == 200 && len(out.Data) > 0 {
			return out.Data[0].ID
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no run of event %s after %s", eventID, timeout)
	return ""
}

// TestUIDev drives the UI of a dev server (open, as Inngest's is).
func TestUIDev(t *testing.T) {
	c, _ := withApp(t)
	b := newBrowser(t, c.base)

	t.Run("SeedRunTimeline", func(t *testing.T) {
		c.t, b.t = t, t
		r := c.waitRun(c.send(seedEvent, map[string]any{"csv": seedCSV}), 60*time.Second)
		b.open("/runs/" + r.ID)
		if got := b.texts(".waterfall .stepname"); !slices.Equal(got, seedSteps) {
			t.Fatalf("steps on the run page: %q, want %q", got, seedSteps)
		}
		if got := b.texts(".waterfall .badge"); len(got) != 3 || got[0] != fsm.StatusCompleted {
			t.Errorf("step states %q", got)
		}
		out := b.texts("#output")
		if len(out) != 1 || !strings.Contains(out[0], `"imported": 2`) || !strings.Contains(out[0], "b@x.io") {
			t.Fatalf("output on the run page: %q", out)
		}
		if p := os.Getenv(screenshotEnv); p != "" {
			ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
			defer cancel()
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("FailedRunErrorAndRerun", func(t *testing.T) {
		c.t, b.t = t, t
		r := c.waitRun(c.send(failsEvent, map[string]any{}), 60*time.Second)
		if r.Status != fsm.StatusFailed {
			t.Fatalf("fn-throws run: %s", r.Status)
		}
		b.open("/runs/" + r.ID)
		msg := b.texts("#run-error")
		if len(msg) != 1 {
			t.Fatalf("error on the run page: %q (run error %s)", msg, r.Error)
		}
		var want struct {
			Message string `json:"message"`
		}
		json.Unmarshal(r.Error, &want)
		if want.Message == "" || !strings.Contains(msg[0], want.Message) {
			t.Fatalf("error on the page %q does not show the run's error %s", msg[0], r.Error)
		}
		b.do(chromedp.Click(chromedp.CSS("#rerun")))
		b.waitFor(fmt.Sprintf(`location.pathname.startsWith("/runs/") && location.pathname !== "/runs/%s" && !!document.querySelector("#run")`, r.ID), 20*time.Second)
		m := runPath.FindStringSubmatch(b.location())
		if m == nil {
			t.Fatalf("after rerun the browser is at %s", b.location())
		}
		nr := c.waitRunID(m[1], 60*time.Second)
		if nr.FunctionID != r.FunctionID {
			t.Fatalf("rerun %s is a run of %s, want %s", nr.ID, nr.FunctionID, r.FunctionID)
		}
		// The new run's page links back to the run it reruns.
		b.open("/runs/" + nr.ID)
		b.waitFor(fmt.Sprintf(`!!document.querySelector('a[href="/runs/%s"]')`, r.ID), 5*time.Second)
	})

	t.Run("SendEventFormStartsRun", func(t *testing.T) {
		c.t, b.t = t, t
		b.open("/send")
		b.do(chromedp.SetValue(chromedp.CSS("#ev-name"), seedEvent),
			chromedp.SetValue(chromedp.CSS("#ev-data"), `{"csv": "email,name\nsent@ui.io,Ui"}`),
			chromedp.Click(chromedp.CSS(`form[data-send] button[type=submit]`)))
		// The browser lands on the event's page, which shows the run it
		// started once it appears (live refresh).
		b.waitFor(`location.pathname.startsWith("/events/")`, 20*time.Second)
		b.waitFor(`!!document.querySelector('#event-runs a[href^="/runs/0"]')`, 30*time.Second)
		id := strings.TrimPrefix(eval[string](b, `location.pathname`), "/events/")
		r := c.waitRun(id, 60*time.Second)
		if r.Status != fsm.StatusCompleted || !strings.Contains(string(r.Output), "sent@ui.io") {
			t.Fatalf("the run the form started: %s %s", r.Status, r.Output)
		}
	})

	t.Run("Filters", func(t *testing.T) {
		c.t, b.t = t, t
		b.open("/runs")
		b.do(chromedp.SetValue(chromedp.CSS(`select[name=status]`), fsm.StatusFailed),
			chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)))
		b.waitFor(`location.search.includes("status=failed")`, 10*time.Second)
		got := b.texts("#runlist tbody .badge")
		if len(got) == 0 {
			t.Fatal("no failed runs listed")
		}
		for _, s := range got {
			if s != fsm.StatusFailed {
				t.Fatalf("status filter failed lists %q", got)
			}
		}
		fn := "tsapp-import-contacts"
		b.do(chromedp.SetValue(chromedp.CSS(`select[name=status]`), ""),
			chromedp.SetValue(chromedp.CSS(`select[name=function]`), fn),
			chromedp.Click(chromedp.CSS(`form.filters button[type=submit]`)))
		b.waitFor(`location.search.includes("function=tsapp-import-contacts") && !location.search.includes("status=failed")`, 10*time.Second)
		fns := b.texts("#runlist tbody td:nth-child(2)")
		if len(fns) < 2 { // the seed run, its form-sent sibling
			t.Fatalf("function filter lists %q", fns)
		}
		for _, f := range fns {
			if f != fn {
				t.Fatalf("function filter %s lists %q", fn, fns)
			}
		}
	})

	t.Run("SleepLiveAndWaitCancel", func(t *testing.T) {
		c.t, b.t = t, t
		id := c.send("test/sleep", map[string]any{})
		runID := c.waitRunStarted(id, 20*time.Second)
		b.open("/runs/" + runID)
		// While it sleeps the page says until when; it follows the run live
		// to its end without a reload.
		b.waitFor(`[...document.querySelectorAll(".step")].some(s => s.querySelector(".stepname").textContent === "nap" && s.textContent.includes("until"))`, 15*time.Second)
		b.waitFor(fmt.Sprintf(`document.querySelector(".runhead .badge").textContent === %q && document.querySelectorAll(".waterfall .stepname").length === 3`, fsm.StatusCompleted), 30*time.Second)

		id = c.send("test/wait", map[string]any{"key": "ui", "timeout": "60s"})
		runID = c.waitRunStarted(id, 20*time.Second)
		b.open("/runs/" + runID)
		b.waitFor(`[...document.querySelectorAll(".step")].some(s => s.querySelector(".stepname").textContent === "wait-for-reply" && s.textContent.includes("waiting") && s.textContent.includes("for event test/reply if async.data.key"))`, 15*time.Second)
		eval[bool](b, `(window.confirm = () => true, true)`)
		b.do(chromedp.Click(chromedp.CSS(`button.danger`)))
		b.waitFor(fmt.Sprintf(`document.querySelector(".runhead .badge").textContent === %q`, fsm.StatusCancelled), 15*time.Second)
		if r := c.waitRunID(runID, 10*time.Second); r.Status != fsm.StatusCancelled {
			t.Fatalf("run after Cancel: %s", r.Status)
		}
	})

	t.Run("EventSendAgain", func(t *testing.T) {
		c.t, b.t = t, t
		id := c.send(seedEvent, map[string]any{"csv": "email,name\nagain@ui.io,Again"})
		c.waitRun(id, 60*time.Second)
		b.open("/events/" + id)
		if got := eval[string](b, `document.querySelector("main pre").textContent`); !strings.Contains(got, "again@ui.io") {
			t.Fatalf("event payload on its page: %s", got)
		}
		b.do(chromedp.Click(chromedp.CSS(`button[data-then=event]`)))
		b.waitFor(fmt.Sprintf(`location.pathname.startsWith("/events/") && location.pathname !== "/events/%s"`, id), 10*time.Second)
		b.waitFor(`!!document.querySelector('#event-runs a[href^="/runs/0"]')`, 30*time.Second)
		again := strings.TrimPrefix(eval[string](b, `location.pathname`), "/events/")
		if r := c.waitRun(again, 60*time.Second); !strings.Contains(string(r.Output), "again@ui.io") {
			t.Fatalf("the event sent again started %s %s", r.Status, r.Output)
		}
	})

	t.Run("AppsResync", func(t *testing.T) {
		c.t, b.t = t, t
		b.open("/apps")
		eval[bool](b, `(window.beforeResync = true, true)`)
		b.do(chromedp.Click(chromedp.CSS(`#resync`)))
		// The page reloads once the API answered (the marker is gone).
		b.waitFor(`window.beforeResync === undefined && document.readyState === "complete"`, 20*time.Second)
		if got := b.texts("main table tbody td:nth-child(3) .badge"); len(got) == 0 || got[0] != "ok" {
			t.Fatalf("sync results after re-sync: %q", got)
		}
	})

	t.Run("RunsListLive", func(t *testing.T) {
		c.t, b.t = t, t
		b.open("/runs")
		id := c.send(seedEvent, map[string]any{"csv": "email,name\nlive@ui.io,Live"})
		r := c.waitRun(id, 60*time.Second)
		// No navigation: the page's script re-reads the list.
		b.waitFor(fmt.Sprintf(`!!document.querySelector('#runlist a[href="/runs/%s"]') && location.pathname === "/runs"`, r.ID), 15*time.Second)
	})

	t.Run("ReplayWindow", func(t *testing.T) {
		c.t, b.t = t, t
		b.open("/replay?function=tsapp-fn-throws")
		from := time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")
		b.do(chromedp.SetValue(chromedp.CSS("#rp-from"), from),
			chromedp.Click(chromedp.CSS(`form[data-replay] button[type=submit]`)))
		b.waitFor(`document.querySelector("#replay-progress pre").textContent.includes('"status": "completed"')`, 30*time.Second)
		var progress struct {
			Total int `json:"runs"`
		}
		json.Unmarshal([]byte(eval[string](b, `document.querySelector("#replay-progress pre").textContent`)), &progress)
		if progress.Total < 1 { // the failed run of FailedRunErrorAndRerun, and its rerun
			t.Fatalf("replay of fn-throws over the last hour: %s", eval[string](b, `document.querySelector("#replay-progress pre").textContent`))
		}
	})

	t.Run("EveryPageRenders", func(t *testing.T) {
		c.t, b.t = t, t
		for path, want := range map[string]string{
			"/": "Recent runs", "/functions": "import-contacts", "/events": seedEvent, "/apps": "tsapp",
			"/cluster": "leader", "/replay": "Start replay",
		} {
			b.open(path)
			if body := eval[string](b, `document.querySelector("main").innerText`); !strings.Contains(body, want) {
				t.Errorf("%s does not show %q:\n%s", path, want, tail(body, 1500))
			}
		}
		// The overview's cluster health comes from /v1/cluster by script.
		b.open("/")
		b.waitFor(`document.querySelector("[data-cluster-health]").textContent.includes("leader node1")`, 10*time.Second)
	})
}

// TestUIProduction drives the login of a production-mode server and checks
// the session's rules with plain HTTP.
func TestUIProduction(t *testing.T) {
	c, _ := withApp(t, production)
	r := c.waitRun(c.send(seedEvent, map[string]any{"csv": seedCSV}), 60*time.Second)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	t.Run("LockedWithoutSession", func(t *testing.T) {
		for _, path := range []string{"/", "/runs/" + r.ID, "/events"} {
			resp, err := noRedirect.Get(c.base + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=") {
				t.Errorf("GET %s without a session: %d to %q, want a redirect to /login", path, resp.StatusCode, loc)
			}
		}
		resp, err := http.Get(c.base + "/v1/runs")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /v1/runs without credentials: %d", resp.StatusCode)
		}
	})

	t.Run("BrowserLogin", func(t *testing.T) {
		b := newBrowser(t, c.base)
		b.open("/runs/" + r.ID)
		b.waitFor(`location.pathname === "/login"`, 10*time.Second)
		b.do(chromedp.SetValue(chromedp.CSS("#token"), "signkey-test-00112233445566778899aabbccddeeff"),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)))
		b.waitFor(`!!document.querySelector(".error[role=alert]")`, 10*time.Second)
		b.do(chromedp.SetValue(chromedp.CSS("#token"), prodSigningKey),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)))
		// Back where it was going: the run page, with its steps.
		b.waitFor(fmt.Sprintf(`location.pathname === "/runs/%s" && document.querySelectorAll(".waterfall .stepname").length === 3`, r.ID), 10*time.Second)
		if got := eval[string](b, `document.cookie`); strings.Contains(got, api.SessionCookie) {
			t.Errorf("the session cookie is readable by script: %q", got)
		}
		// Writes from the page work: its script sends the CSRF token.
		b.do(chromedp.Click(chromedp.CSS("#rerun")))
		b.waitFor(fmt.Sprintf(`location.pathname.startsWith("/runs/") && location.pathname !== "/runs/%s" && !!document.querySelector("#run")`, r.ID), 20*time.Second)
		m := runPath.FindStringSubmatch(b.location())
		if m == nil {
			t.Fatalf("after rerun at %s", b.location())
		}
		c.t = t
		c.waitRunID(m[1], 60*time.Second)
		hist := c.history(m[1])
		if len(hist) == 0 || !strings.Contains(hist[0].Actor+hist[1].Actor, "ui (session:key:") {
			t.Errorf("the rerun does not name the UI session as its actor: %+v", hist[:min(2, len(hist))])
		}
		// Log out: the pages lock again.
		b.do(chromedp.Click(chromedp.CSS(`form.logout button`)))
		b.waitFor(`location.pathname === "/login"`, 10*time.Second)
		b.open("/runs")
		b.waitFor(`location.pathname === "/login" && !!document.querySelector("#token")`, 10*time.Second)
	})

	t.Run("SessionCookieAndCSRF", func(t *testing.T) {
		resp, err := noRedirect.PostForm(c.base+"/login", url.Values{"token": {prodSigningKey}, "next": {"/runs"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var ck *http.Cookie
		for _, k := range resp.Cookies() {
			if k.Name == api.SessionCookie {
				ck = k
			}
		}
		if resp.StatusCode != http.StatusSeeOther || ck == nil {
			t.Fatalf("login: %d, cookies %v", resp.StatusCode, resp.Cookies())
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.MaxAge <= 0 || strings.Contains(ck.Value, prodSigningKey) {
			t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, expiring, without the key", ck)
		}
		call := func(method, path string, csrf string) (int, string) {
			req, _ := http.NewRequest(method, c.base+path, strings.NewReader("{}"))
			req.AddCookie(ck)
			if csrf != "" {
				req.Header.Set(api.CSRFHeader, csrf)
			}
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, _ := call("GET", "/v1/runs/"+r.ID, ""); code != http.StatusOK {
			t.Errorf("GET with the session cookie: %d", code)
		}
		code, page := call("GET", "/runs/"+r.ID, "")
		m := regexp.MustCompile(`<meta name="cairn-csrf" content="([^"]+)">`).FindStringSubmatch(page)
		if code != http.StatusOK || m == nil {
			t.Fatalf("run page with the session: %d, no CSRF token", code)
		}
		if code, body := call("POST", "/v1/runs/"+r.ID+"/rerun", ""); code != http.StatusForbidden {
			t.Errorf("POST with the cookie and no CSRF header: %d %s, want 403", code, body)
		}
		if code, _ := call("POST", "/v1/runs/"+r.ID+"/rerun", "not-the-token"); code != http.StatusForbidden {
			t.Errorf("POST with a wrong CSRF header: %d, want 403", code)
		}
		if code, body := call("POST", "/v1/runs/"+r.ID+"/rerun", m[1]); code != http.StatusCreated {
			t.Errorf("POST with the cookie and its CSRF token: %d %s", code, body)
		}
		forged := *ck
		forged.Value = strings.Replace(ck.Value, ".", ".x", 1)
		req, _ := http.NewRequest("GET", c.base+"/v1/runs", nil)
		req.AddCookie(&forged)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a tampered session cookie: %v %v", resp.StatusCode, err)
		}
	})
}

package ui

import (
	"bytes"
	"cmp"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/labstack/echo/v4"
)

// Page sizes: every page reads at most this many rows.
const (
	runsPerPage     = 50
	eventsPerPage   = 50
	overviewRuns    = 15
	overviewScan    = 1500 // runs the overview reads for recent failures
	fnRecentRuns    = 8
	eventRunsShown  = 100
	maxPayloadShown = 64 << 10 // bytes of JSON shown inline before it is cut
)

// Query parameters of the runs page, named once (templates use them too,
// through the runFilter fields).
const (
	qFunction = "function"
	qStatus   = "status"
	qSince    = "since"
	qBefore   = "before"
	qName     = "name"
	qCursor   = "cursor"
)

// sinceChoices are the time windows the runs filter offers.
var sinceChoices = []struct {
	Value string
	Label string
	D     time.Duration
}{
	{"15m", "last 15 minutes", 15 * time.Minute},
	{"1h", "last hour", time.Hour},
	{"24h", "last 24 hours", 24 * time.Hour},
	{"7d", "last 7 days", 7 * 24 * time.Hour},
}

// pageURL is a link to this page with another query: a URL the templates
// keep whole (html/template would escape a bare query as one value).
func pageURL(q url.Values) template.URL { return template.URL("?" + q.Encode()) }

func notFound(what, id string) error {
	return echo.NewHTTPError(http.StatusNotFound, "no "+what+" "+strconv.Quote(id))
}

// functionIDs lists every registered function id, by app.
func (u *ui) functionIDs() ([]string, error) {
	apps, err := u.cfg.FSM.Apps()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range apps {
		out = append(out, a.Functions...)
	}
	slices.Sort(out)
	return out, nil
}

// newestFirst orders runs as listings show them.
func newestFirst(a, b fsm.Run) int {
	if c := cmp.Compare(b.CreatedAt, a.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// runFilter is the runs page's query.
type runFilter struct {
	Function, Status, Since, Before string
}

// scanBudget bounds the runs one listing reads across functions when a
// filter skips some (a status few runs have): a page may then hold fewer
// rows than it could, and its "older" link continues where the reads
// stopped. A variable only so that tests can make it small.
var scanBudget = 6000

// listRuns reads one page of runs for a filter: with no filter, the r/
// keys newest first; otherwise each function's fr/ index (by creation
// time), newest first from the cursor, merged. It returns the cursor of
// the next page ("" on the last).
func (u *ui) listRuns(f runFilter, limit int) (runs []fsm.Run, next string, err error) {
	return u.listRunsWithin(f, limit, scanBudget)
}

// listRunsWithin is listRuns reading at most about budget runs.
func (u *ui) listRunsWithin(f runFilter, limit, budget int) (runs []fsm.Run, next string, err error) {
	if f.Function == "" && f.Status == "" && f.Since == "" {
		if runs, err = u.cfg.FSM.RunsBefore(f.Before, limit+1); err != nil || len(runs) <= limit {
			return runs, "", err
		}
		return runs[:limit], runs[limit-1].ID, nil
	}
	q := fsm.RunQuery{To: time.Now().Add(time.Hour).UnixMilli(), Limit: limit + 1, Newest: true}
	for _, s := range sinceChoices {
		if s.Value == f.Since {
			q.From = time.Now().Add(-s.D).UnixMilli()
		}
	}
	if f.Status != "" {
		q.Statuses = []string{f.Status}
	}
	if f.Before != "" {
		r, err := u.cfg.FSM.Run(f.Before)
		if err != nil {
			return nil, "", err
		}
		if r != nil {
			q.Before, q.BeforeAt = r.ID, r.CreatedAt
		}
	}
	fns := []string{f.Function}
	if f.Function == "" {
		if fns, err = u.functionIDs(); err != nil {
			return nil, "", err
		}
	}
	q.MaxScan = max(budget/max(len(fns), 1), limit+1)
	// boundary: the newest place where a function's read stopped early.
	// Below it that function may have runs not read yet, so the page ends
	// there (the run at it was read, so it stays on this page).
	var boundary *fsm.Run
	for _, fn := range fns {
		q.FnID = fn
		rs, stop, err := u.cfg.FSM.FunctionRunsScan(q)
		if err != nil {
			return nil, "", err
		}
		runs = append(runs, rs...)
		if stop != nil && (boundary == nil || newestFirst(*stop, *boundary) < 0) {
			boundary = stop
		}
	}
	slices.SortFunc(runs, newestFirst)
	if boundary != nil {
		n := 0
		for n < len(runs) && newestFirst(runs[n], *boundary) <= 0 {
			n++
		}
		runs = runs[:n]
	}
	switch {
	case len(runs) > limit:
		return runs[:limit], runs[limit-1].ID, nil
	case boundary != nil:
		return runs, boundary.ID, nil
	}
	return runs, "", nil
}

// apiSync is an app URL's last sync, as the API reports it.
type apiSync = api.SyncResult

type overviewData struct {
	Runs, Failures []fsm.Run
	Apps           []fsm.App
	Sync           []api.SyncResult
}

func (u *ui) overview(c echo.Context, p *page) error {
	runs, _, err := u.listRuns(runFilter{}, overviewRuns)
	if err != nil {
		return err
	}
	failed, _, err := u.listRunsWithin(runFilter{Status: fsm.StatusFailed, Since: sinceChoices[len(sinceChoices)-1].Value},
		overviewRuns, overviewScan)
	if err != nil {
		return err
	}
	apps, err := u.cfg.FSM.Apps()
	if err != nil {
		return err
	}
	p.Title, p.Data = "Overview", overviewData{Runs: runs, Failures: failed, Apps: apps, Sync: u.cfg.Syncer.Status()}
	return u.render(c, http.StatusOK, "overview", p)
}

type runsData struct {
	Filter    runFilter
	Functions []string
	Statuses  []string
	Since     any
	Runs      []fsm.Run
	Next      template.URL // the next page ("" on the last)
	First     template.URL // the first page
}

func (u *ui) runs(c echo.Context, p *page) error {
	f := runFilter{Function: c.QueryParam(qFunction), Status: c.QueryParam(qStatus), Since: c.QueryParam(qSince),
		Before: c.QueryParam(qBefore)}
	if f.Status != "" && !slices.Contains(fsm.RunStatuses, f.Status) {
		return echo.NewHTTPError(http.StatusBadRequest, "unknown status "+strconv.Quote(f.Status))
	}
	fns, err := u.functionIDs()
	if err != nil {
		return err
	}
	runs, next, err := u.listRuns(f, runsPerPage)
	if err != nil {
		return err
	}
	d := runsData{Filter: f, Functions: fns, Statuses: fsm.RunStatuses, Since: sinceChoices, Runs: runs}
	q := c.Request().URL.Query()
	q.Del(qBefore)
	d.First = pageURL(q)
	if next != "" {
		q.Set(qBefore, next)
		d.Next = pageURL(q)
	}
	p.Title, p.Data = "Runs", d
	return u.render(c, http.StatusOK, "runs", p)
}

// stepRow is one step of a run's timeline, gathered from its history.
type stepRow struct {
	ID, Name    string
	Start, End  int64 // unix ms; End 0 while it has not ended
	State       string
	Attempts    int
	Until       int64  // a sleep's end, a wait's timeout
	Waits       string // what a waiting step waits for
	Output      json.RawMessage
	Error       json.RawMessage
	Input       json.RawMessage
	Left, Width float64 // its bar in the waterfall, in % of the run
}

// Step states the timeline shows (beyond the run statuses it reuses).
const (
	stepRunning  = "running"
	stepRetrying = "retrying"
	stepSleeping = "sleeping"
	stepWaiting  = "waiting"
	stepPlanned  = "planned"
)

// timeline folds a run's history into one row per step, in the order the
// steps first appear, and places each on the run's time span.
func timeline(hist []api.HistoryView, runEnd, now int64) []stepRow {
	var rows []*stepRow
	byID := map[string]*stepRow{}
	for _, h := range hist {
		if h.Step == "" {
			continue
		}
		r := byID[h.Step]
		if r == nil {
			r = &stepRow{ID: h.Step, Start: h.At, State: stepRunning, Attempts: 1}
			byID[h.Step] = r
			rows = append(rows, r)
		}
		if h.StepName != "" {
			r.Name = h.StepName
		}
		r.Attempts = max(r.Attempts, h.Attempt+1)
		if h.DurationMs != nil {
			// The step's end: it began when the call that ran it was
			// claimed (or its sleep or wait began), often before any
			// entry names the step.
			r.Start = min(r.Start, h.At-*h.DurationMs)
		}
		switch h.Type {
		case fsm.HistStepCompleted, fsm.HistStepWoke, fsm.HistEventReceived, fsm.HistSignalRecv, fsm.HistWaitTimeout, fsm.HistInvokeDone:
			r.State, r.End, r.Output = fsm.StatusCompleted, h.At, h.Output
		case fsm.HistStepFailed, fsm.HistInvokeFailed, fsm.HistInvokeTimeout:
			r.State, r.End, r.Error = fsm.StatusFailed, h.At, h.Error
		case fsm.HistStepErrored, fsm.HistCallErrored:
			r.State, r.Error = stepRetrying, h.Error
		case fsm.HistStepSleeping:
			r.State, r.Until = stepSleeping, h.SleepsUntil()
		case fsm.HistWaitingEvent, fsm.HistWaitingSignal, fsm.HistInvoking:
			r.State, r.Input = stepWaiting, h.Input
		case fsm.HistStepPlanned:
			r.State = stepPlanned
		}
	}
	out := make([]stepRow, len(rows))
	if len(hist) == 0 {
		return out
	}
	t0, t1 := hist[0].At, runEnd
	if t1 == 0 {
		t1 = now
	}
	span := float64(max(t1-t0, 1))
	for i, r := range rows {
		end := r.End
		if end == 0 {
			end = max(t1, r.Start)
		}
		r.Left = min(100*float64(r.Start-t0)/span, 99.5)
		r.Width = max(100*float64(end-r.Start)/span, 0.5)
		r.Width = min(r.Width, 100-r.Left)
		if r.Name == "" {
			r.Name = r.ID
		}
		out[i] = *r
	}
	return out
}

// waitsFor says what a waiting step's call waits for.
func waitsFor(c *fsm.Call) string {
	switch c.Type {
	case fsm.CallWait:
		return "event " + c.Event + opt(" if ", c.If)
	case fsm.CallSignal:
		return "signal " + c.Signal
	case fsm.CallInvoke:
		return "the invoked run " + c.Corr
	}
	return c.Type
}

type runData struct {
	Run      *fsm.Run
	Function *fsm.Function
	Steps    []stepRow
	History  []api.HistoryView
	RerunOf  string
	Reruns   []string
	Now      int64
	Event    string // the run's first event, indented: its input
}

func (u *ui) run(c echo.Context, p *page) error {
	id := c.Param("id")
	r, err := u.cfg.FSM.Run(id)
	if err != nil {
		return err
	}
	if r == nil {
		return notFound("run", id)
	}
	hist, err := u.cfg.FSM.History(r.ID)
	if err != nil {
		return err
	}
	var event []byte
	if len(r.EventIDs) > 0 {
		if event, err = u.cfg.FSM.Event(r.EventIDs[0]); err != nil {
			return err
		}
	}
	fn, err := u.cfg.FSM.Function(r.FnID)
	if err != nil {
		return err
	}
	views := api.ViewHistory(hist, event)
	now := time.Now().UnixMilli()
	d := runData{Run: r, Function: fn, Steps: timeline(views, r.EndedAt, now), History: views, RerunOf: r.RerunOf, Now: now,
		Event: pretty(event)}
	for i := range d.Steps {
		if s := &d.Steps[i]; s.State == stepWaiting && !r.Done() {
			// What it waits for is in its queued call, not in the history.
			call, err := u.cfg.FSM.Call(r.ID, s.ID)
			if err != nil {
				return err
			}
			if call != nil {
				s.Waits, s.Until = waitsFor(call), call.Due
			}
		}
	}
	for i := range hist {
		if hist[i].Type == fsm.HistRunRerun {
			d.Reruns = append(d.Reruns, hist[i].LinkedRun())
		}
	}
	p.Title, p.Data = "Run "+r.ID, d
	return u.render(c, http.StatusOK, "run", p)
}

type fnRow struct {
	*fsm.Function
	Flow []string
	Runs []fsm.Run
}

type functionsData struct {
	Apps []fnApp
}

type fnApp struct {
	App       fsm.App
	Functions []fnRow
}

// flowControl describes a function's flow control and options, one line
// each, as a reader of its code would name them.
func flowControl(f *fsm.Function) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, sprintf(format, args...)) }
	for _, c := range f.Concurrency {
		add("concurrency %d%s%s", c.Limit, keyed(c.Key), opt(" scope ", c.Scope))
	}
	if t := f.Throttle; t != nil {
		add("throttle %d per %s%s%s", t.Limit, dur(t.PeriodMs), opt(", burst ", itoaNZ(t.Burst)), keyed(t.Key))
	}
	if t := f.RateLimit; t != nil {
		add("rate limit %d per %s%s", t.Limit, dur(t.PeriodMs), keyed(t.Key))
	}
	if d := f.Debounce; d != nil {
		add("debounce %s%s%s", dur(d.PeriodMs), keyed(d.Key), opt(", timeout ", durNZ(d.TimeoutMs)))
	}
	if b := f.Batch; b != nil {
		add("batch %d within %s%s%s", b.MaxSize, dur(b.TimeoutMs), keyed(b.Key), opt(" if ", b.If))
	}
	if f.Priority != "" {
		add("priority %s", f.Priority)
	}
	if s := f.Singleton; s != nil {
		add("singleton (%s)%s", s.Mode, keyed(s.Key))
	}
	if f.Idempotency != "" {
		add("idempotency %s", f.Idempotency)
	}
	for _, c := range f.Cancel {
		add("cancel on %s%s%s", c.Event, opt(" if ", c.If), opt(" within ", durNZ(c.TimeoutMs)))
	}
	if f.StartTimeoutMs > 0 {
		add("start timeout %s", dur(f.StartTimeoutMs))
	}
	if f.FinishTimeoutMs > 0 {
		add("finish timeout %s", dur(f.FinishTimeoutMs))
	}
	return out
}

func (u *ui) functions(c echo.Context, p *page) error {
	apps, err := u.cfg.FSM.Apps()
	if err != nil {
		return err
	}
	var d functionsData
	for _, a := range apps {
		fa := fnApp{App: a}
		for _, id := range a.Functions {
			fn, err := u.cfg.FSM.Function(id)
			if err != nil {
				return err
			}
			if fn == nil {
				continue
			}
			runs, _, err := u.listRuns(runFilter{Function: id, Since: sinceChoices[len(sinceChoices)-1].Value}, fnRecentRuns)
			if err != nil {
				return err
			}
			fa.Functions = append(fa.Functions, fnRow{Function: fn, Flow: flowControl(fn), Runs: runs})
		}
		d.Apps = append(d.Apps, fa)
	}
	p.Title, p.Data = "Functions", d
	return u.render(c, http.StatusOK, "functions", p)
}

// eventRow is a stored event as a listing shows it.
type eventRow struct {
	ID   string
	Name string
	At   int64
	Data string // compact JSON of its data, cut for the listing
}

func eventHead(id string, raw []byte) eventRow {
	var head struct {
		Name string          `json:"name"`
		Data json.RawMessage `json:"data"`
		TS   int64           `json:"ts"`
	}
	json.Unmarshal(raw, &head)
	var b bytes.Buffer
	if json.Compact(&b, head.Data) != nil {
		b.Reset()
	}
	data := b.String()
	if len(data) > 120 {
		data = data[:117] + "..."
	}
	return eventRow{ID: id, Name: head.Name, At: head.TS, Data: data}
}

type eventsData struct {
	Name   string
	Events []eventRow
	Next   template.URL
}

func (u *ui) events(c echo.Context, p *page) error {
	name := c.QueryParam(qName)
	evs, next, err := u.cfg.FSM.Events(fsm.EventQuery{Name: name, Cursor: c.QueryParam(qCursor), Limit: eventsPerPage})
	if err != nil {
		return err
	}
	d := eventsData{Name: name}
	for _, e := range evs {
		d.Events = append(d.Events, eventHead(e.ID, e.JSON))
	}
	if next != "" {
		q := c.Request().URL.Query()
		q.Set(qCursor, next)
		d.Next = pageURL(q)
	}
	p.Title, p.Data = "Events", d
	return u.render(c, http.StatusOK, "events", p)
}

type eventData struct {
	Event   eventRow
	Payload string
	Origin  fsm.EventOrigin
	Runs    []fsm.Run
}

func (u *ui) event(c echo.Context, p *page) error {
	id := c.Param("id")
	raw, err := u.cfg.FSM.Event(id)
	if err != nil {
		return err
	}
	if raw == nil {
		return notFound("event", id)
	}
	origin, err := u.cfg.FSM.EventOrigin(id)
	if err != nil {
		return err
	}
	ids, err := u.cfg.FSM.RunsForEvent(id)
	if err != nil {
		return err
	}
	d := eventData{Event: eventHead(id, raw), Payload: pretty(raw), Origin: origin}
	for _, rid := range ids[:min(len(ids), eventRunsShown)] {
		r, err := u.cfg.FSM.Run(rid)
		if err != nil {
			return err
		}
		if r != nil {
			d.Runs = append(d.Runs, *r)
		}
	}
	p.Title, p.Data = "Event "+d.Event.Name, d
	return u.render(c, http.StatusOK, "event", p)
}

type sendData struct {
	Names []string // event names functions trigger on, for the datalist
	Name  string
	Data  string
}

func (u *ui) triggerNames() ([]string, error) {
	ids, err := u.functionIDs()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, id := range ids {
		fn, err := u.cfg.FSM.Function(id)
		if err != nil {
			return nil, err
		}
		for _, t := range fn.Triggers {
			if t.Event != "" && !slices.Contains(names, t.Event) {
				names = append(names, t.Event)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

func (u *ui) send(c echo.Context, p *page) error {
	names, err := u.triggerNames()
	if err != nil {
		return err
	}
	d := sendData{Names: names, Name: c.QueryParam(qName), Data: "{}"}
	if from := c.QueryParam("from"); from != "" {
		// "Send again" from an event page: its name and data, editable.
		if raw, err := u.cfg.FSM.Event(from); err != nil {
			return err
		} else if raw != nil {
			var ev struct {
				Name string          `json:"name"`
				Data json.RawMessage `json:"data"`
			}
			json.Unmarshal(raw, &ev)
			d.Name, d.Data = ev.Name, pretty(ev.Data)
		}
	}
	p.Title, p.Data = "Send an event", d
	return u.render(c, http.StatusOK, "send", p)
}

type replayData struct {
	Functions []string
	Function  string
	Statuses  []string
	Checked   []string // the statuses checked at first: the API's default
	Running   string   // a replay's status while it starts reruns (the script polls until it changes)
}

func (u *ui) replay(c echo.Context, p *page) error {
	fns, err := u.functionIDs()
	if err != nil {
		return err
	}
	p.Title, p.Data = "Replay", replayData{Functions: fns, Function: c.QueryParam(qFunction),
		Statuses: fsm.RunStatuses, Checked: api.ReplayDefaultStatuses, Running: fsm.ReplayStatusRunning}
	return u.render(c, http.StatusOK, "replay", p)
}

type appsData struct {
	Apps []fsm.App
	Sync []api.SyncResult
}

func (u *ui) apps(c echo.Context, p *page) error {
	apps, err := u.cfg.FSM.Apps()
	if err != nil {
		return err
	}
	p.Title, p.Data = "Apps", appsData{Apps: apps, Sync: u.cfg.Syncer.Status()}
	return u.render(c, http.StatusOK, "apps", p)
}

type memberRow struct {
	ID, RaftAddr, HTTPAddr string
	Voter, Leader, Self    bool
}

type clusterData struct {
	Self    any
	Members []memberRow
	Applied uint64
	Digest  string
}

func (u *ui) cluster(c echo.Context, p *page) error {
	st := u.cfg.Node.Stats()
	members, err := u.cfg.Node.Members()
	if err != nil {
		return err
	}
	applied, chain := u.cfg.FSM.Applied()
	d := clusterData{Self: st, Applied: applied, Digest: sprintf("%016x", chain)}
	for _, m := range members {
		row := memberRow{ID: m.ID, RaftAddr: m.RaftAddr, Voter: m.Voter, Leader: m.ID == st.LeaderID, Self: m.ID == st.NodeID}
		if info, err := u.cfg.FSM.Node(m.ID); err != nil {
			return err
		} else if info != nil {
			row.HTTPAddr = info.HTTPAddr
		}
		d.Members = append(d.Members, row)
	}
	p.Title, p.Data = "Cluster", d
	return u.render(c, http.StatusOK, "cluster", p)
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/fsm"
	"github.com/cairn-dev/cairn/internal/clusterauth"
	"github.com/cairn-dev/cairn/sdk/signing"
)

// clientFlags parses the flags shared by client commands.
func clientFlags(name, synopsis string, args []string, extra func(*flag.FlagSet)) (*flag.FlagSet, string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	base := fs.String("url", env("CAIRN_URL", "http://127.0.0.1:8288"), "Cairn's HTTP address (env CAIRN_URL)")
	fs.StringVar(&clientKey, "signing-key", env("CAIRN_SIGNING_KEY", ""), "the server's signing key, for a cairn start node (env CAIRN_SIGNING_KEY)")
	caFile := trustFlag(fs)
	if extra != nil {
		extra(fs)
	}
	if listFlags {
		return fs, "", printFlags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cairn %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	err := fs.Parse(flagsFirst(fs, args))
	if err == nil {
		err = trust(*caFile)
	}
	return fs, strings.TrimRight(*base, "/"), err
}

// flagsFirst moves the flags of args before the positional arguments, so
// that "cairn history RUN --json" reads as "cairn history --json RUN": Go's
// flag package stops at the first positional argument. A flag that takes a
// value takes the argument after it, unless written --flag=value; after
// "--", and for tokens that are not flag names ("-1", "-"), arguments stay
// positional.
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		name, ok := flagName(a)
		if !ok {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		if f := fs.Lookup(name); f != nil && !strings.Contains(a, "=") && !isBoolFlag(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return append(append(flags, "--"), pos...)
}

// flagName is the name of the flag a argument sets ("json" for --json,
// -json or --json=true), if it is one.
func flagName(a string) (string, bool) {
	name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	if name == a || name == "" || !(name[0] >= 'a' && name[0] <= 'z' || name[0] >= 'A' && name[0] <= 'Z') {
		return "", false
	}
	name, _, _ = strings.Cut(name, "=")
	return name, true
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// stdout is where client commands print, stderr their progress (buffers
// in tests).
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

// clientActor is how client commands name themselves in the records they
// cause (api.ActorHeader): $CAIRN_ACTOR (e.g. a person's name), or "cli".
func clientActor() string {
	if v := os.Getenv("CAIRN_ACTOR"); v != "" {
		return v
	}
	return "cli"
}

var httpClient = &http.Client{Timeout: 60 * time.Second,
	Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: clientTLS}}

// clientKey authenticates client commands (--signing-key); it is sent
// hashed, as the SDKs send it.
var clientKey string

func authorize(req *http.Request) error {
	if clientKey == "" {
		return nil
	}
	k, err := signing.ParseKey(clientKey)
	if err != nil {
		return fmt.Errorf("--signing-key: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+k.Bearer())
	return nil
}

// call does one API request and decodes the JSON answer into out, turning
// the API's error shape into a Go error.
func call(method, u string, body any, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.ActorHeader, clientActor())
	if err := authorize(req); err != nil {
		return err
	}
	if nodeSecret != "" {
		clusterauth.Sign(req, nodeSecret, time.Now())
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return connectionHint(req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			if resp.StatusCode == http.StatusUnauthorized && clientKey == "" {
				e.Error += "; pass the server's signing key with --signing-key or CAIRN_SIGNING_KEY"
			}
			return fmt.Errorf("%s (%s, HTTP %d)", e.Error, e.Code, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// connectionHint turns a failure to connect into the likely cause: no
// Cairn at that address. Other errors pass as they are.
func connectionHint(u *url.URL, err error) error {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return err
	}
	base := u.Scheme + "://" + u.Host
	reason := op.Err.Error()
	if se, ok := op.Err.(*os.SyscallError); ok {
		reason = se.Err.Error()
	}
	return fmt.Errorf("cannot reach %s (%s): is Cairn running at %s? (start it with `cairn dev`, or point --url / CAIRN_URL at it)",
		base, reason, base)
}

func handleHelp(err error) (bool, error) {
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	return err != nil, err
}

func cmdSend(args []string) error {
	var id, eventKey string
	fs, base, err := clientFlags("send", "NAME [DATA_JSON]", args, func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "", "idempotency id: a second event with this id within 24h starts nothing")
		fs.StringVar(&eventKey, "event-key", env("CAIRN_EVENT_KEY", ""), "send through the event API with this key (env CAIRN_EVENT_KEY); without it, through /v1/events with --signing-key")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return errors.New("send needs an event name and optional JSON data")
	}
	ev := map[string]any{"name": fs.Arg(0), "data": map[string]any{}}
	if fs.NArg() == 2 {
		var data any
		if err := json.Unmarshal([]byte(fs.Arg(1)), &data); err != nil {
			return fmt.Errorf("DATA_JSON: %w", err)
		}
		ev["data"] = data
	}
	if id != "" {
		ev["id"] = id
	}
	var out struct {
		IDs []string `json:"ids"`
	}
	target := base + "/v1/events"
	if eventKey != "" {
		target = base + "/e/" + url.PathEscape(eventKey)
	}
	if err := call(http.MethodPost, target, ev, &out); err != nil {
		return err
	}
	for _, id := range out.IDs {
		fmt.Fprintln(stdout, id)
	}
	return nil
}

// runJSON is a run as GET /v1/runs shows it (times in unix ms).
type runJSON = api.RunView

// sinceTime reads --since: a duration back from now ("1h", "30m"), RFC
// 3339 or unix ms, as the API's since parameter.
func sinceTime(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return "", fmt.Errorf("--since %s: give how long ago, e.g. 1h", v)
		}
		return strconv.FormatInt(now().Add(-d).UnixMilli(), 10), nil
	}
	return v, nil // RFC 3339 or unix ms: the server checks it
}

func cmdRuns(args []string) error {
	var event, fn, status, since string
	var limit int
	var asJSON bool
	_, base, err := clientFlags("runs", "[--function F] [--status S] [--since T] [--event ID]", args, func(fs *flag.FlagSet) {
		fs.StringVar(&event, "event", "", "only the runs started by this event id")
		fs.StringVar(&fn, "function", "", "only this function's runs (its id as cairn functions lists it, or its short id)")
		fs.StringVar(&status, "status", "", "only runs with this status ("+strings.Join(fsm.RunStatuses, ", ")+"); comma separated")
		fs.StringVar(&since, "since", "", "only runs created since: a duration ago (1h, 30m), RFC 3339 or unix ms")
		fs.IntVar(&limit, "limit", 20, "how many recent runs")
		fs.BoolVar(&asJSON, "json", false, "print JSON (times as RFC 3339)")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	if since, err = sinceTime(since); err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	for k, v := range map[string]string{"function_id": fn, "status": status, "since": since} {
		if v != "" {
			q.Set(k, v)
		}
	}
	u := base + "/v1/runs?" + q.Encode()
	if event != "" {
		if fn != "" || status != "" || since != "" {
			return errors.New("--event lists one event's runs: it takes no --function, --status or --since")
		}
		u = base + "/v1/events/" + url.PathEscape(event) + "/runs"
	}
	var out struct {
		Data json.RawMessage `json:"data"`
	}
	if err := call(http.MethodGet, u, nil, &out); err != nil {
		return err
	}
	if asJSON {
		return printJSON(out.Data)
	}
	var runs []runJSON
	if err := json.Unmarshal(out.Data, &runs); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tFUNCTION\tSTATUS\tSTEPS\tCREATED\tDURATION\tWAITING")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.FunctionID, r.Status, len(r.Steps),
			ago(r.CreatedAt), took(r.CreatedAt, r.EndedAt), waitingText(r.WaitingReason, r.WaitingUntil, r.Waiting))
	}
	return tw.Flush()
}

// cmdRun shows one run: its times relative to now, what it waits for,
// its steps by name; --json prints the API's view (times RFC 3339).
func cmdRun(args []string) error {
	var at string
	var asJSON bool
	fs, base, err := clientFlags("run", "RUN_ID [--at N|TIME] [--json]", args, func(fs *flag.FlagSet) {
		atFlag(fs, &at)
		fs.BoolVar(&asJSON, "json", false, "print JSON (times as RFC 3339)")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("run needs a run id")
	}
	var out struct {
		Data    json.RawMessage `json:"data"`
		AtIndex uint64          `json:"at_index"`
	}
	if printed, err := getOrPrint(base+"/v1/runs/"+url.PathEscape(fs.Arg(0))+atQuery(at), asJSON, &out); printed || err != nil {
		return err
	}
	var r runJSON
	if err := json.Unmarshal(out.Data, &r); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	when := func(ms int64) string {
		if ms <= 0 {
			return ""
		}
		return ago(ms) + "  (" + time.UnixMilli(ms).UTC().Format(time.RFC3339) + ")"
	}
	line("run", r.ID)
	if out.AtIndex > 0 {
		line("as of", fmt.Sprintf("log index %d", out.AtIndex))
	}
	line("function", r.FunctionID)
	line("status", r.Status)
	line("created", when(r.CreatedAt))
	line("started", when(r.StartedAt))
	line("ended", when(r.EndedAt))
	if r.EndedAt > 0 {
		line("took", took(r.CreatedAt, r.EndedAt))
	}
	if w := waitingText(r.WaitingReason, r.WaitingUntil, r.Waiting); w != "" && r.WaitingStep != "" {
		line("waiting", w+" (step "+stepLabel(r.WaitingStep, r.StepNames)+")")
	} else {
		line("waiting", w)
	}
	line("events", strings.Join(r.EventIDs, ", "))
	for i, id := range r.Steps {
		k := ""
		if i == 0 {
			k = "steps"
		}
		fmt.Fprintf(tw, "%s\t%d. %s\n", k, i+1, stepLabel(id, r.StepNames))
	}
	if len(r.Output) > 0 {
		line("output", clip(compactJSON(r.Output), 200))
	}
	if len(r.Error) > 0 {
		line("error", clip(compactJSON(r.Error), 200))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nfull history: cairn history %s\n", r.ID)
	return nil
}

// stepLabel names a step for people: its name in the code and a short
// form of its id, or the id alone when the SDK gave no name.
func stepLabel(id string, names map[string]string) string {
	if name := names[id]; name != "" {
		return name + "  " + clip(id, 12)
	}
	return clip(id, 12)
}

// cmdState shows the whole state's log index, digest and runs by status,
// now or at a past index.
func cmdState(args []string) error {
	var at string
	fs, base, err := clientFlags("state", "[--at N|TIME]", args, func(fs *flag.FlagSet) { atFlag(fs, &at) })
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errors.New("state takes no arguments")
	}
	var out json.RawMessage
	if err := call(http.MethodGet, base+"/v1/state"+atQuery(at), nil, &out); err != nil {
		return err
	}
	return printJSON(out)
}

func atFlag(fs *flag.FlagSet, at *string) {
	fs.StringVar(at, "at", "", "as it was at this log index, or at this time (RFC 3339): the last index recorded by then")
}

// atQuery turns --at into ?at_index=N (a number) or ?at=TIME.
func atQuery(at string) string {
	switch {
	case at == "":
		return ""
	case strings.Trim(at, "0123456789") == "":
		return "?at_index=" + at
	}
	return "?at=" + url.QueryEscape(at)
}

// historyEntry is a history entry as GET /v1/runs/:id/history shows it.
type historyEntry struct {
	Seq        uint64          `json:"seq"`
	Index      uint64          `json:"log_index"`
	Time       string          `json:"time"`
	Type       string          `json:"type"`
	Call       string          `json:"call"`
	Attempt    int             `json:"attempt"`
	Name       string          `json:"name"`
	Detail     string          `json:"detail"`
	Actor      string          `json:"actor"`
	Data       json.RawMessage `json:"data"`
	Step       string          `json:"step"`
	StepName   string          `json:"step_name"`
	Input      json.RawMessage `json:"input"`
	Output     json.RawMessage `json:"output"`
	Error      json.RawMessage `json:"error"`
	DurationMs *int64          `json:"duration_ms"`
}

// cmdHistory prints a run's history: a table, or with --json the API's
// entries whole (one JSON array, for jq).
func cmdHistory(args []string) error {
	var asJSON bool
	fs, base, err := clientFlags("history", "RUN_ID [--json]", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the entries as one JSON array, values whole (for jq)")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("history needs a run id")
	}
	var out struct {
		Data json.RawMessage `json:"data"`
	}
	if err := call(http.MethodGet, base+"/v1/runs/"+url.PathEscape(fs.Arg(0))+"/history", nil, &out); err != nil {
		return err
	}
	if asJSON {
		return printJSON(out.Data)
	}
	var entries []historyEntry
	if err := json.Unmarshal(out.Data, &entries); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTYPE\tSTEP\tATTEMPT\tTOOK\tDETAIL")
	for _, h := range entries {
		step := h.StepName
		switch {
		case step == "" && h.Step != "":
			step = clip(h.Step, 12)
		case step == "" && h.Call == fsm.DiscoveryCall:
			step = "(discovery)"
		}
		attempt, took := "", ""
		if h.Call != "" {
			attempt = fmt.Sprint(h.Attempt + 1)
		}
		if h.DurationMs != nil {
			took = (time.Duration(*h.DurationMs) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Time, h.Type, step, attempt, took, clip(historyDetail(h), 120))
	}
	return tw.Flush()
}

// historyDetail is the DETAIL column: what the entry says besides its
// step (values compact; the table clips them, --json has them whole).
func historyDetail(h historyEntry) string {
	var parts []string
	switch {
	case h.Type == fsm.HistRunScheduled && h.Name != "":
		parts = append(parts, h.Detail+" ("+h.Name+")")
	case h.Type == fsm.HistStepSleeping:
		if _, until, ok := strings.Cut(h.Detail, " until "); ok {
			if ms, err := strconv.ParseInt(until, 10, 64); err == nil {
				until = time.UnixMilli(ms).UTC().Format(time.RFC3339) + " (" + ago(ms) + ")"
			}
			parts = append(parts, "until "+until)
		}
	case h.Detail != "" && h.Detail != h.Step:
		parts = append(parts, untilHuman(h.Detail))
	}
	if h.Actor != "" {
		parts = append(parts, "by "+h.Actor)
	}
	labelled := false
	for _, v := range []struct {
		label string
		raw   json.RawMessage
	}{{"input", h.Input}, {"output", h.Output}, {"error", h.Error}} {
		if len(v.raw) > 0 {
			parts = append(parts, v.label+" "+compactJSON(v.raw))
			labelled = true
		}
	}
	if !labelled && len(h.Data) > 0 {
		parts = append(parts, compactJSON(h.Data))
	}
	return strings.Join(parts, "  ")
}

// compactJSON prints a JSON value on one line.
func compactJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return buf.String()
}

// clip shortens s to at most n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func cmdCancel(args []string) error {
	var reason, fn, from, to string
	var asJSON bool
	fs, base, err := clientFlags("cancel", "RUN_ID | --function FN [--from T] [--to T]", args, func(fs *flag.FlagSet) {
		fs.StringVar(&reason, "reason", "", "why, kept in the run's history")
		fs.StringVar(&fn, "function", "", "cancel every running run of this function (as cairn functions lists it, or its short id)")
		fs.StringVar(&from, "from", "", "with --function: only runs created at or after this RFC 3339 time")
		fs.StringVar(&to, "to", "", "with --function: only runs created at or before this RFC 3339 time (default now)")
		fs.BoolVar(&asJSON, "json", false, "print the API's answer as JSON")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fn != "" {
		if fs.NArg() != 0 {
			return errors.New("cancel takes a run id or --function, not both")
		}
		return bulkCancel(base, fn, from, to, reason, asJSON)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("cancel needs a run id")
	}
	var out json.RawMessage
	if err := call(http.MethodPost, base+"/v1/runs/"+url.PathEscape(fs.Arg(0))+"/cancel",
		map[string]string{"reason": reason}, &out); err != nil {
		return err
	}
	if asJSON {
		return printJSON(out)
	}
	fmt.Fprintf(stdout, "cancelled run %s\n", fs.Arg(0))
	return nil
}

// bulkCancel cancels a function's running runs in a window, drawing a
// progress bar: the runs that match first (GET /v1/runs), then those the
// cancel ended. The cancel itself is one record: every matching run ends
// at once, or none does.
func bulkCancel(base, fn, from, to, reason string, asJSON bool) error {
	q := url.Values{"function_id": {fn}, "status": {fsm.StatusRunning}, "limit": {"1000"}}
	if from != "" {
		q.Set("since", from)
	}
	if to != "" {
		q.Set("until", to)
	}
	var matching struct {
		Data []runJSON `json:"data"`
	}
	if err := call(http.MethodGet, base+"/v1/runs?"+q.Encode(), nil, &matching); err != nil {
		return err
	}
	total := len(matching.Data)
	more := ""
	if total == 1000 {
		more = "+"
	}
	if !asJSON {
		fmt.Fprintf(stderr, "\r%s 0/%d%s cancelled ", bar(0, total), total, more)
	}
	var out struct {
		Data struct {
			Cancelled []string `json:"cancelled"`
		} `json:"data"`
	}
	var raw json.RawMessage
	if err := call(http.MethodPost, base+"/v1/functions/"+url.PathEscape(fn)+"/cancel",
		map[string]string{"from": from, "to": to, "reason": reason}, &raw); err != nil {
		if !asJSON {
			fmt.Fprintln(stderr)
		}
		return err
	}
	if asJSON {
		return printJSON(raw)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	n := len(out.Data.Cancelled)
	fmt.Fprintf(stderr, "\r%s %d/%d cancelled \n", bar(n, max(n, total)), n, max(n, total))
	fmt.Fprintf(stdout, "cancelled %d runs of %s\n", n, fn)
	return nil
}

func cmdSync(args []string) error {
	var asJSON bool
	fs, base, err := clientFlags("sync", "[APP_URL]", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the results as JSON")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return errors.New("sync takes at most one app URL")
	}
	body := map[string]string{}
	if fs.NArg() == 1 {
		body["url"] = fs.Arg(0)
	}
	var raw json.RawMessage
	if err := call(http.MethodPost, base+"/v1/apps/sync", body, &raw); err != nil {
		return err
	}
	var out struct {
		Data []struct {
			URL     string `json:"url"`
			OK      bool   `json:"ok"`
			Message string `json:"message"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(raw); err != nil {
			return err
		}
	} else {
		for _, r := range out.Data {
			result := "synced"
			if !r.OK {
				result = "failed: " + r.Message
			}
			fmt.Fprintf(stdout, "%s  %s\n", r.URL, result)
		}
	}
	failed := 0
	for _, r := range out.Data {
		if !r.OK {
			failed++
		}
	}
	switch {
	case len(out.Data) == 0:
		return errors.New("no app to sync: Cairn knows none yet; give its URL, e.g. cairn sync http://localhost:3000/api/inngest")
	case failed > 0:
		return fmt.Errorf("%d of %d apps did not sync", failed, len(out.Data))
	}
	return nil
}

// printJSON prints an API answer indented, its unix-ms times as RFC 3339
// (rfc3339Times).
// getOrPrint does one GET: with asJSON it prints the answer (printed is
// true), else it decodes it into out, for a table.
func getOrPrint(u string, asJSON bool, out any) (printed bool, err error) {
	var raw json.RawMessage
	if err := call(http.MethodGet, u, nil, &raw); err != nil {
		return false, err
	}
	if asJSON {
		return true, printJSON(raw)
	}
	return false, json.Unmarshal(raw, out)
}

func printJSON(raw json.RawMessage) error {
	raw, err := rfc3339Times(raw)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = buf.WriteTo(stdout)
	return err
}

func cmdSignal(args []string) error {
	fs, base, err := clientFlags("signal", "NAME [DATA_JSON]", args, nil)
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return errors.New("signal needs a signal name and optional JSON data")
	}
	body := map[string]any{"signal": fs.Arg(0)}
	if fs.NArg() == 2 {
		var data any
		if err := json.Unmarshal([]byte(fs.Arg(1)), &data); err != nil {
			return fmt.Errorf("DATA_JSON: %w", err)
		}
		body["data"] = data
	}
	var out json.RawMessage
	if err := call(http.MethodPost, base+"/v1/signals", body, &out); err != nil {
		return err
	}
	return printJSON(out)
}

func cmdCluster(args []string) error {
	var raftAddr, httpAddr string
	var node nodeCreds
	fs, base, err := clientFlags("cluster", "(status | join ID --raft-addr A --http-addr H | remove ID)", args, func(fs *flag.FlagSet) {
		fs.StringVar(&raftAddr, "raft-addr", "", "join: the new member's Raft address")
		fs.StringVar(&httpAddr, "http-addr", "", "join: the new member's HTTP address")
		node.flags(fs)
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	sub, rest := "status", fs.Args()
	if len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	if sub == "join" || sub == "remove" { // they speak as a node when given its credentials
		if err := node.use(); err != nil {
			return err
		}
	}
	var out json.RawMessage
	switch sub {
	case "status":
		err = call(http.MethodGet, base+"/v1/cluster?digest=true", nil, &out)
	case "join":
		if len(rest) != 1 {
			return errors.New("cluster join needs the new member's id")
		}
		err = call(http.MethodPost, base+"/v1/cluster/join",
			map[string]string{"id": rest[0], "raft_addr": raftAddr, "http_addr": httpAddr}, &out)
	case "remove":
		if len(rest) != 1 {
			return errors.New("cluster remove needs a member id")
		}
		err = call(http.MethodPost, base+"/v1/cluster/remove", map[string]string{"id": rest[0]}, &out)
	default:
		return fmt.Errorf("unknown cluster command %q (status, join, remove)", sub)
	}
	if err != nil {
		return err
	}
	return printJSON(out)
}

// cmdApps lists registered apps and synced URLs, or removes one
// ("cairn apps rm APP_ID|URL").
func cmdApps(args []string) error {
	var asJSON bool
	fs, base, err := clientFlags("apps", "[rm APP_ID|URL]", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fs.NArg() > 0 {
		if fs.Arg(0) != "rm" || fs.NArg() != 2 {
			fs.Usage()
			return errors.New(`apps takes no argument, or "rm APP_ID|URL"`)
		}
		target := fs.Arg(1)
		q := url.Values{"id": {target}}
		if strings.Contains(target, "://") {
			q = url.Values{"url": {target}}
		}
		var out json.RawMessage
		if err := call(http.MethodDelete, base+"/v1/apps?"+q.Encode(), nil, &out); err != nil {
			return err
		}
		return printJSON(out)
	}
	var out struct {
		Data []struct {
			ID        string   `json:"id"`
			URL       string   `json:"url"`
			SDK       string   `json:"sdk"`
			Functions []string `json:"functions"`
			SyncedAt  int64    `json:"synced_at"`
			SyncedBy  string   `json:"synced_by"`
		} `json:"data"`
		Sync []struct {
			URL     string `json:"url"`
			OK      bool   `json:"ok"`
			Message string `json:"message"`
			At      int64  `json:"at"`
		} `json:"sync"`
	}
	if printed, err := getOrPrint(base+"/v1/apps", asJSON, &out); printed || err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tFUNCTIONS\tSDK\tSYNCED\tBY\tURL")
	for _, a := range out.Data {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", a.ID, len(a.Functions), a.SDK,
			ago(a.SyncedAt), a.SyncedBy, a.URL)
	}
	if len(out.Sync) > 0 {
		fmt.Fprintln(tw, "\nSYNC URL\tLAST PING\tRESULT")
		for _, s := range out.Sync {
			when, result := ago(s.At), "ok"
			if !s.OK {
				result = s.Message
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.URL, when, result)
		}
	}
	return tw.Flush()
}

// cmdEvents lists stored events, newest first.
func cmdEvents(args []string) error {
	var name, from, to, cursor string
	var limit int
	var asJSON bool
	_, base, err := clientFlags("events", "[--name N] [--from T] [--to T]", args, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "only events of this name")
		fs.StringVar(&from, "from", "", "received at or after (RFC 3339 or unix ms)")
		fs.StringVar(&to, "to", "", "received at or before (RFC 3339 or unix ms)")
		fs.StringVar(&cursor, "cursor", "", "continue after this event id (printed at the end of a full page)")
		fs.IntVar(&limit, "limit", 20, "how many events")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	q := url.Values{"limit": {fmt.Sprint(limit)}}
	for k, v := range map[string]string{"name": name, "from": from, "to": to, "cursor": cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var out struct {
		Data []struct {
			ID           string          `json:"id"`
			Name         string          `json:"name"`
			Data         json.RawMessage `json:"data"`
			ReceivedAt   int64           `json:"received_at"`
			Actor        string          `json:"actor"`
			ReplayedFrom string          `json:"replayed_from"`
		} `json:"data"`
		Cursor string `json:"cursor"`
	}
	if printed, err := getOrPrint(base+"/v1/events?"+q.Encode(), asJSON, &out); printed || err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tNAME\tRECEIVED\tBY\tDATA")
	for _, e := range out.Data {
		by := e.Actor
		if e.ReplayedFrom != "" {
			by += " (replay of " + e.ReplayedFrom + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.ID, e.Name, ago(e.ReceivedAt),
			by, clip(compactJSON(e.Data), 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if out.Cursor != "" {
		fmt.Fprintf(stdout, "\nmore: cairn events --cursor %s\n", out.Cursor)
	}
	return nil
}

// cmdEvent shows one stored event, or sends it again (--replay).
func cmdEvent(args []string) error {
	var replay bool
	fs, base, err := clientFlags("event", "[--replay] EVENT_ID", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&replay, "replay", false, "send the event again as a new event (new id); prints the new id")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("event needs an event id")
	}
	u, method := base+"/v1/events/"+url.PathEscape(fs.Arg(0)), http.MethodGet
	if replay {
		u, method = u+"/replay", http.MethodPost
	}
	var out json.RawMessage
	if err := call(method, u, nil, &out); err != nil {
		return err
	}
	return printJSON(out)
}

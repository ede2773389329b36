package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-dev/cairn/internal/clusterauth"
	"github.com/cairn-dev/cairn/internal/signing"
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
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cairn %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	err := fs.Parse(args)
	if err == nil {
		err = trust(*caFile)
	}
	return fs, strings.TrimRight(*base, "/"), err
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
	if err := authorize(req); err != nil {
		return err
	}
	if nodeSecret != "" {
		clusterauth.Sign(req, nodeSecret, time.Now())
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
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
		fmt.Println(id)
	}
	return nil
}

type runJSON struct {
	ID         string          `json:"id"`
	FunctionID string          `json:"function_id"`
	Status     string          `json:"status"`
	CreatedAt  int64           `json:"created_at"`
	EndedAt    int64           `json:"ended_at"`
	Steps      []string        `json:"steps"`
	Output     json.RawMessage `json:"output"`
	Error      json.RawMessage `json:"error"`
	Waiting    string          `json:"waiting"`
}

func cmdRuns(args []string) error {
	var event string
	var limit int
	var asJSON bool
	_, base, err := clientFlags("runs", "[--event ID]", args, func(fs *flag.FlagSet) {
		fs.StringVar(&event, "event", "", "only the runs started by this event id")
		fs.IntVar(&limit, "limit", 20, "how many recent runs")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	u := fmt.Sprintf("%s/v1/runs?limit=%d", base, limit)
	if event != "" {
		u = base + "/v1/events/" + url.PathEscape(event) + "/runs"
	}
	var out struct {
		Data []runJSON `json:"data"`
	}
	if err := call(http.MethodGet, u, nil, &out); err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(out.Data)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tFUNCTION\tSTATUS\tSTEPS\tCREATED\tDURATION\tWAITING")
	for _, r := range out.Data {
		dur := "-"
		if r.EndedAt > 0 {
			dur = time.Duration((r.EndedAt - r.CreatedAt) * int64(time.Millisecond)).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.FunctionID, r.Status, len(r.Steps),
			time.UnixMilli(r.CreatedAt).Format(time.RFC3339), dur, r.Waiting)
	}
	return tw.Flush()
}

func cmdRun(args []string) error {
	var at string
	fs, base, err := clientFlags("run", "RUN_ID [--at N|TIME]", args, func(fs *flag.FlagSet) { atFlag(fs, &at) })
	if err == nil {
		err = flagsAfter(fs)
	}
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("run needs a run id")
	}
	var out json.RawMessage
	if err := call(http.MethodGet, base+"/v1/runs/"+url.PathEscape(fs.Arg(0))+atQuery(at), nil, &out); err != nil {
		return err
	}
	return printJSON(out)
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

// flagsAfter parses flags that follow the positional arguments
// ("cairn run ID --at 5"), which package flag leaves unparsed: it keeps
// the positionals in order and parses what follows each.
func flagsAfter(fs *flag.FlagSet) error {
	var pos []string
	for rest := fs.Args(); len(rest) > 0; rest = fs.Args() {
		pos = append(pos, rest[0])
		if err := fs.Parse(rest[1:]); err != nil {
			return err
		}
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

func cmdHistory(args []string) error {
	var asJSON bool
	fs, base, err := clientFlags("history", "RUN_ID", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("history needs a run id")
	}
	var out struct {
		Data []struct {
			Seq     uint64          `json:"seq"`
			Index   uint64          `json:"log_index"`
			At      int64           `json:"at"`
			Type    string          `json:"type"`
			Call    string          `json:"call"`
			Attempt int             `json:"attempt"`
			Name    string          `json:"name"`
			Detail  string          `json:"detail"`
			Data    json.RawMessage `json:"data"`
		} `json:"data"`
	}
	if err := call(http.MethodGet, base+"/v1/runs/"+url.PathEscape(fs.Arg(0))+"/history", nil, &out); err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(out.Data)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tLOG\tTIME\tTYPE\tSTEP\tATTEMPT\tDETAIL")
	for _, h := range out.Data {
		detail := h.Detail
		if len(h.Data) > 0 {
			detail = strings.TrimSpace(detail + " " + string(h.Data))
		}
		if len(detail) > 100 {
			detail = detail[:97] + "..."
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%d\t%s\n", h.Seq, h.Index,
			time.UnixMilli(h.At).Format("15:04:05.000"), h.Type, h.Name, h.Attempt, detail)
	}
	return tw.Flush()
}

func cmdCancel(args []string) error {
	var reason, fn, from, to string
	fs, base, err := clientFlags("cancel", "RUN_ID | --function FN [--from T] [--to T]", args, func(fs *flag.FlagSet) {
		fs.StringVar(&reason, "reason", "", "why, kept in the run's history")
		fs.StringVar(&fn, "function", "", "cancel every running run of this function (composite id, e.g. app-fn)")
		fs.StringVar(&from, "from", "", "with --function: only runs created at or after this RFC 3339 time")
		fs.StringVar(&to, "to", "", "with --function: only runs created at or before this RFC 3339 time (default now)")
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	if fn != "" {
		var out json.RawMessage
		if err := call(http.MethodPost, base+"/v1/functions/"+url.PathEscape(fn)+"/cancel",
			map[string]string{"from": from, "to": to, "reason": reason}, &out); err != nil {
			return err
		}
		return printJSON(out)
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
	return printJSON(out)
}

func cmdSync(args []string) error {
	fs, base, err := clientFlags("sync", "[APP_URL]", args, nil)
	if stop, err := handleHelp(err); stop {
		return err
	}
	body := map[string]string{}
	if fs.NArg() == 1 {
		body["url"] = fs.Arg(0)
	}
	var out json.RawMessage
	if err := call(http.MethodPost, base+"/v1/apps/sync", body, &out); err != nil {
		return err
	}
	return printJSON(out)
}

func printJSON(raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := buf.WriteTo(os.Stdout)
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
	sub := "status"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	var raftAddr, httpAddr string
	var node nodeCreds
	fs, base, err := clientFlags("cluster "+sub, "(status | join ID --raft-addr A --http-addr H | remove ID)", args, func(fs *flag.FlagSet) {
		if sub == "join" {
			fs.StringVar(&raftAddr, "raft-addr", "", "the new member's Raft address")
			fs.StringVar(&httpAddr, "http-addr", "", "the new member's HTTP address")
		}
		if sub == "join" || sub == "remove" {
			node.flags(fs)
		}
	})
	if stop, err := handleHelp(err); stop {
		return err
	}
	if err := node.use(); err != nil {
		return err
	}
	var out json.RawMessage
	switch sub {
	case "status":
		err = call(http.MethodGet, base+"/v1/cluster?digest=true", nil, &out)
	case "join":
		if fs.NArg() != 1 {
			return errors.New("cluster join needs the new member's id")
		}
		err = call(http.MethodPost, base+"/v1/cluster/join",
			map[string]string{"id": fs.Arg(0), "raft_addr": raftAddr, "http_addr": httpAddr}, &out)
	case "remove":
		if fs.NArg() != 1 {
			return errors.New("cluster remove needs a member id")
		}
		err = call(http.MethodPost, base+"/v1/cluster/remove", map[string]string{"id": fs.Arg(0)}, &out)
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
		} `json:"data"`
		Sync []struct {
			URL     string `json:"url"`
			OK      bool   `json:"ok"`
			Message string `json:"message"`
			At      int64  `json:"at"`
		} `json:"sync"`
	}
	var raw json.RawMessage
	if err := call(http.MethodGet, base+"/v1/apps", nil, &raw); err != nil {
		return err
	}
	if asJSON {
		return printJSON(raw)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tFUNCTIONS\tSDK\tSYNCED\tURL")
	for _, a := range out.Data {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", a.ID, len(a.Functions), a.SDK, time.UnixMilli(a.SyncedAt).Format(time.RFC3339), a.URL)
	}
	if len(out.Sync) > 0 {
		fmt.Fprintln(tw, "\nSYNC URL\tLAST PING\tRESULT")
		for _, s := range out.Sync {
			when, result := "-", "ok"
			if s.At > 0 {
				when = time.UnixMilli(s.At).Format(time.RFC3339)
			}
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
	var raw json.RawMessage
	if err := call(http.MethodGet, base+"/v1/events?"+q.Encode(), nil, &raw); err != nil {
		return err
	}
	if asJSON {
		return printJSON(raw)
	}
	var out struct {
		Data []struct {
			ID         string          `json:"id"`
			Name       string          `json:"name"`
			Data       json.RawMessage `json:"data"`
			ReceivedAt int64           `json:"received_at"`
		} `json:"data"`
		Cursor string `json:"cursor"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tNAME\tRECEIVED\tDATA")
	for _, e := range out.Data {
		data := string(e.Data)
		if len(data) > 60 {
			data = data[:57] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.ID, e.Name, time.UnixMilli(e.ReceivedAt).Format(time.RFC3339), data)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if out.Cursor != "" {
		fmt.Printf("\nmore: cairn events --cursor %s\n", out.Cursor)
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

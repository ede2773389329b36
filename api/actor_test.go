package api_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
)

// Records a request causes name its actor: the client it says it is and
// the credential that let it in. A cancel names who cancelled in the run's
// history, an event who sent it, a replay the event it sends again.
func TestActorsAreRecorded(t *testing.T) {
	s := startNode(t, prod(t))
	base := s.URL()
	primary, fallback := "key:"+mustKey(t, testKey).ID, "key:"+mustKey(t, testFallback).ID
	with := func(h map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	sdk := with(bearer(t, testKey), "X-Inngest-SDK", "inngest-js:v4.24.0")
	cli := with(bearer(t, testKey), "X-Cairn-Actor", "cli")

	appURL := "http://" + freeAddr(t) + "/api/inngest"
	if r := post(t, base+"/fn/register", registerBody(appURL, fnConfig("probe-app-a", "")), sdk); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if a, _ := s.FSM.App("probe-app"); a == nil || a.SyncedBy != "app ("+primary+")" {
		t.Fatalf("app %+v", a)
	}
	r := post(t, base+"/e/"+testEventKey, `{"name":"app/x","data":{"n":1}}`,
		map[string]string{"X-Inngest-SDK": "inngest-js:v4.24.0"})
	var sent struct{ IDs []string }
	if json.Unmarshal(r.body, &sent); r.status != 200 || len(sent.IDs) != 1 {
		t.Fatalf("send: %d %s", r.status, r.body)
	}
	evID := sent.IDs[0]
	ev := eventOf(t, base, evID, cli)
	if !strings.HasPrefix(ev.Actor, "app (event-key:") || ev.ReplayedFrom != "" {
		t.Fatalf("the sent event: %+v", ev)
	}

	// A cancel from the CLI: the record and the history name it.
	var runs struct{ Data []struct{ ID string } }
	json.Unmarshal(do(t, "GET", base+"/v1/events/"+evID+"/runs", nil, cli).body, &runs)
	if len(runs.Data) != 1 {
		t.Fatalf("runs of the event: %+v", runs)
	}
	run := runs.Data[0].ID
	if r := post(t, base+"/v1/runs/"+run+"/cancel", `{"reason":"enough"}`, cli); r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	hist, err := s.FSM.History(run)
	if err != nil || len(hist) == 0 {
		t.Fatal(hist, err)
	}
	// (An answer to a call in flight may follow the cancel's entry.)
	var cancelled fsm.HistoryEntry
	for _, e := range hist {
		if e.Type == fsm.HistRunEnded(fsm.StatusCancelled) {
			cancelled = e
		}
	}
	if cancelled.By != "cli ("+primary+")" {
		t.Fatalf("the cancel's entry: %+v in %+v", cancelled, hist)
	}
	if first := hist[0]; first.Type != fsm.HistRunScheduled || first.By != ev.Actor {
		t.Fatalf("the run's first entry: %+v (event by %q)", first, ev.Actor)
	}
	// The API's history shows it, with RFC 3339 times and the run's input.
	var view struct {
		Data []struct {
			Type       string          `json:"type"`
			Actor      string          `json:"actor"`
			Time       string          `json:"time"`
			Input      json.RawMessage `json:"input"`
			Error      json.RawMessage `json:"error"`
			DurationMs *int64          `json:"duration_ms"`
		}
	}
	if r := do(t, "GET", base+"/v1/runs/"+run+"/history", nil, cli); r.status != 200 || json.Unmarshal(r.body, &view) != nil {
		t.Fatalf("history: %d %s", r.status, r.body)
	}
	first := view.Data[0]
	if _, err := time.Parse(time.RFC3339, first.Time); err != nil || !strings.Contains(string(first.Input), `"n":1`) {
		t.Fatalf("first entry %+v", first)
	}
	found := false
	for _, e := range view.Data {
		if e.Type == fsm.HistRunEnded(fsm.StatusCancelled) {
			found = e.Actor == "cli ("+primary+")" && strings.Contains(string(e.Error), "enough") && e.DurationMs != nil
		}
	}
	if !found {
		t.Fatalf("the cancel in the API's history: %+v", view.Data)
	}

	// A replay names who replayed and what.
	r = post(t, base+"/v1/events/"+evID+"/replay", "", with(bearer(t, testFallback), "X-Cairn-Actor", "alice"))
	var rep struct{ Data struct{ ID string } }
	if json.Unmarshal(r.body, &rep); r.status != 200 || rep.Data.ID == "" {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	if got := eventOf(t, base, rep.Data.ID, cli); got.Actor != "alice ("+fallback+")" || got.ReplayedFrom != evID {
		t.Fatalf("the replayed event: %+v", got)
	}
	if o, _ := s.FSM.EventOrigin(rep.Data.ID); o.ReplayedFrom != evID {
		t.Fatalf("origin %+v", o)
	}
	// Without a client name, the credential alone.
	if r := post(t, base+"/v1/events", `{"name":"app/none"}`, bearer(t, testKey)); r.status != 200 {
		t.Fatalf("send: %d %s", r.status, r.body)
	} else if json.Unmarshal(r.body, &sent); eventOf(t, base, sent.IDs[0], cli).Actor != primary {
		t.Fatalf("an event sent with the key alone: %+v", eventOf(t, base, sent.IDs[0], cli))
	}

	// A name the records could not keep as it is is refused, and nothing
	// is written.
	before := position(s)
	for _, bad := range []string{"two words", "(x)", strings.Repeat("a", 65)} {
		if r := post(t, base+"/v1/events", `{"name":"app/x"}`, with(bearer(t, testKey), "X-Cairn-Actor", bad)); r.status != 400 {
			t.Errorf("actor %q: %d %s", bad, r.status, r.body)
		}
	}
	if kinds := appendedSince(t, s, before); slices.Contains(kinds, fsm.KindEventAccepted) {
		t.Fatalf("refused requests were written: %v", kinds)
	}
}

type eventWithOrigin struct {
	ID           string `json:"id"`
	Actor        string `json:"actor"`
	ReplayedFrom string `json:"replayed_from"`
}

func eventOf(t *testing.T, base, id string, h map[string]string) eventWithOrigin {
	t.Helper()
	r := do(t, "GET", base+"/v1/events/"+id, nil, h)
	var out struct{ Data eventWithOrigin }
	if r.status != 200 || json.Unmarshal(r.body, &out) != nil {
		t.Fatalf("GET event %s: %d %s", id, r.status, r.body)
	}
	return out.Data
}

// In dev mode (no credentials) an actor is what the client says, "app"
// for the SDK, or "anonymous".
func TestDevActors(t *testing.T) {
	s := startNode(t)
	base := s.URL()
	for _, c := range []struct {
		header map[string]string
		want   string
	}{
		{nil, "anonymous"},
		{map[string]string{"X-Inngest-SDK": "inngest-js:v4.24.0"}, "app"},
		{map[string]string{"X-Cairn-Actor": "cli"}, "cli"},
	} {
		r := post(t, base+"/e/any", `{"name":"dev/x"}`, c.header)
		var sent struct{ IDs []string }
		if json.Unmarshal(r.body, &sent); r.status != 200 || len(sent.IDs) != 1 {
			t.Fatalf("send: %d %s", r.status, r.body)
		}
		if got := eventOf(t, base, sent.IDs[0], nil).Actor; got != c.want {
			t.Errorf("headers %v: actor %q, want %q", c.header, got, c.want)
		}
	}
}

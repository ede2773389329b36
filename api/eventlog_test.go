package api_test

import (
	"encoding/json"
	"fmt"
	"testing"
)

type listedEvent struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Data       json.RawMessage `json:"data"`
	TS         int64           `json:"ts"`
	ReceivedAt int64           `json:"received_at"`
}

// Stored events can be listed (newest first, by name, page by page), read
// one by one, and sent again as new events.
func TestEventsListGetReplay(t *testing.T) {
	s := startNode(t)
	base := s.URL()
	var ids []string
	for i, name := range []string{"shop/order", "shop/refund", "shop/order"} {
		r := post(t, base+"/e/k", fmt.Sprintf(`{"name":%q,"data":{"n":%d}}`, name, i), nil)
		var out struct{ IDs []string }
		json.Unmarshal(r.body, &out)
		if r.status != 200 || len(out.IDs) != 1 {
			t.Fatalf("send: %d %s", r.status, r.body)
		}
		ids = append(ids, out.IDs[0])
	}
	list := func(query string) ([]listedEvent, string) {
		t.Helper()
		r := get(t, base+"/v1/events"+query)
		if r.status != 200 {
			t.Fatalf("GET /v1/events%s: %d %s", query, r.status, r.body)
		}
		var out struct {
			Data   []listedEvent `json:"data"`
			Cursor string        `json:"cursor"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		return out.Data, out.Cursor
	}
	idsOf := func(evs []listedEvent) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	before := position(s)
	if got := idsOf(must(list(""))); fmt.Sprint(got) != fmt.Sprint([]string{ids[2], ids[1], ids[0]}) {
		t.Fatalf("newest first: %v, sent %v", got, ids)
	}
	if got := idsOf(must(list("?name=shop/order"))); fmt.Sprint(got) != fmt.Sprint([]string{ids[2], ids[0]}) {
		t.Fatalf("by name: %v", got)
	}
	page, cursor := list("?limit=2")
	if len(page) != 2 || cursor != ids[1] {
		t.Fatalf("first page %v, cursor %q", idsOf(page), cursor)
	}
	if page, cursor = list("?limit=2&cursor=" + cursor); fmt.Sprint(idsOf(page)) != fmt.Sprint([]string{ids[0]}) || cursor != "" {
		t.Fatalf("second page %v, cursor %q", idsOf(page), cursor)
	}
	first := must(list("?name=shop/order"))[1]
	if first.ReceivedAt == 0 || first.TS == 0 || string(first.Data) != `{"n":0}` {
		t.Fatalf("event fields: %+v", first)
	}
	if got := must(list(fmt.Sprintf("?from=%d&to=%d", first.ReceivedAt+1<<40, first.ReceivedAt+1<<41))); len(got) != 0 {
		t.Fatalf("a window in the future listed %v", idsOf(got))
	}
	if got := must(list(fmt.Sprintf("?to=%d", first.ReceivedAt))); len(got) == 0 || got[len(got)-1].ID != ids[0] {
		t.Fatalf("to the first event's time: %v", idsOf(got))
	}

	r := get(t, base+"/v1/events/"+ids[1])
	var one struct{ Data listedEvent }
	json.Unmarshal(r.body, &one)
	if r.status != 200 || one.Data.ID != ids[1] || one.Data.Name != "shop/refund" || string(one.Data.Data) != `{"n":1}` {
		t.Fatalf("GET one: %d %s", r.status, r.body)
	}
	for _, bad := range []string{"/v1/events/01NOSUCHEVENT0000000000000", "/v1/events?limit=0", "/v1/events?limit=x",
		"/v1/events?from=yesterday", "/v1/events?cursor=nope"} {
		if r := get(t, base+bad); r.status/100 != 4 {
			t.Errorf("GET %s: %d %s", bad, r.status, r.body)
		}
	}
	if after := position(s); after != before {
		t.Fatalf("reads changed the log: %+v -> %+v", before, after)
	}

	r = post(t, base+"/v1/events/"+ids[1]+"/replay", "", nil)
	var rep struct {
		Data struct {
			ID           string `json:"id"`
			ReplayedFrom string `json:"replayed_from"`
		}
	}
	json.Unmarshal(r.body, &rep)
	if r.status != 200 || rep.Data.ReplayedFrom != ids[1] || rep.Data.ID == "" || rep.Data.ID == ids[1] {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	newest := must(list("?limit=1"))
	if len(newest) != 1 || newest[0].ID != rep.Data.ID || newest[0].Name != "shop/refund" || string(newest[0].Data) != `{"n":1}` {
		t.Fatalf("the replayed event: %+v", newest)
	}
	if r := post(t, base+"/v1/events/01NOSUCHEVENT0000000000000/replay", "", nil); r.status != 404 {
		t.Fatalf("replay of no event: %d", r.status)
	}
}

func must[T any](v T, _ string) T { return v }

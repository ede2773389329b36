package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/hashicorp/raft"
)

// While a member runs an older release (its NodeSeen has no format), the
// leader proposes no record that release cannot read: removing an app
// (a kind of format 2) is refused with 409 and writes nothing.
func TestOlderMemberHoldsBackNewKinds(t *testing.T) {
	s := startNode(t)
	reg := registerBody("http://127.0.0.1:3000/api/inngest", fnConfig("probe-app-a", ""))
	if r := post(t, s.URL()+"/fn/register", reg, nil); r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	self, err := s.FSM.Node("n1")
	if err != nil || self == nil || self.Format != fsm.FormatVersion {
		t.Fatalf("the leader's record: %+v %v", self, err)
	}
	old := *self
	old.Format, old.At = 0, time.Now().UnixMilli() // as the previous release records itself
	if _, err := s.Node.Propose(context.Background(), &old); err != nil {
		t.Fatal(err)
	}
	if v := s.Node.ClusterFormat(true); v != 1 {
		t.Fatalf("cluster format %d, want 1", v)
	}
	before := position(s)
	r := do(t, "DELETE", s.URL()+"/v1/apps?id=probe-app", nil, nil)
	if r.status != 409 || !strings.Contains(string(r.body), "cluster_upgrading") {
		t.Fatalf("remove during an upgrade: %d %s", r.status, r.body)
	}
	if after := position(s); after != before {
		t.Fatalf("the refused record changed the log: %+v -> %+v", before, after)
	}
	// Once the member is on this release again, the same request passes.
	if _, err := s.Node.Propose(context.Background(), self); err != nil {
		t.Fatal(err)
	}
	s.Node.ClusterFormat(true)
	if r := do(t, "DELETE", s.URL()+"/v1/apps?id=probe-app", nil, nil); r.status != 200 {
		t.Fatalf("remove after the upgrade: %d %s", r.status, r.body)
	}
}

// While a member reads only format 2, records carry no actor (format 3):
// the leader clears it, so that every member applies the same records.
// Once every member reads format 3, they do.
func TestFormat2MemberGetsNoActors(t *testing.T) {
	s := startNode(t)
	self, _ := s.FSM.Node("n1")
	old := *self
	old.Format, old.At = 2, time.Now().UnixMilli()
	if _, err := s.Node.Propose(context.Background(), &old); err != nil {
		t.Fatal(err)
	}
	if v := s.Node.ClusterFormat(true); v != 2 {
		t.Fatalf("cluster format %d, want 2", v)
	}
	send := func() fsm.EventOrigin {
		t.Helper()
		r := post(t, s.URL()+"/e/k", `{"name":"fmt/x"}`, map[string]string{"X-Cairn-Actor": "cli"})
		var out struct{ IDs []string }
		if json.Unmarshal(r.body, &out); r.status != 200 || len(out.IDs) != 1 {
			t.Fatalf("send: %d %s", r.status, r.body)
		}
		o, err := s.FSM.EventOrigin(out.IDs[0])
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if o := send(); o != (fsm.EventOrigin{}) {
		t.Fatalf("an event proposed at format 2 kept its origin: %+v", o)
	}
	if _, err := s.Node.Propose(context.Background(), self); err != nil {
		t.Fatal(err)
	}
	s.Node.ClusterFormat(true)
	if o := send(); o.By != "cli" {
		t.Fatalf("an event proposed at format 3: %+v", o)
	}
}

// Entries are compressed (format 4) only once every member reads them: a
// member of format 3 gets them as they were.
func TestEntriesCompressedOnlyAtFormat4(t *testing.T) {
	s := startNode(t)
	self, _ := s.FSM.Node("n1")
	// lastEntryVersion sends a batch of events (one entry, compressible) and
	// returns the version byte of the entry that holds them.
	lastEntryVersion := func() byte {
		t.Helper()
		var batch []string
		for i := 0; i < 20; i++ {
			batch = append(batch, `{"name":"fmt/compress","data":{"account":"acme","plan":"enterprise"}}`)
		}
		if r := post(t, s.URL()+"/e/k", "["+strings.Join(batch, ",")+"]", nil); r.status != 200 {
			t.Fatalf("send: %d %s", r.status, r.body)
		}
		src := s.Node.LogSource()
		last, _ := src.LastIndex()
		var version byte
		src.Entries(last, last, func(l *raft.Log) error {
			if len(l.Data) > 0 {
				version = l.Data[0]
			}
			return nil
		})
		return version
	}
	old := *self
	old.Format, old.At = 3, time.Now().UnixMilli()
	if _, err := s.Node.Propose(context.Background(), &old); err != nil {
		t.Fatal(err)
	}
	if v := s.Node.ClusterFormat(true); v != 3 {
		t.Fatalf("cluster format %d, want 3", v)
	}
	if v := lastEntryVersion(); v != 1 {
		t.Fatalf("an entry proposed at format 3 has version %d, want 1 (uncompressed)", v)
	}
	if _, err := s.Node.Propose(context.Background(), self); err != nil {
		t.Fatal(err)
	}
	if v := s.Node.ClusterFormat(true); v != fsm.FormatVersion {
		t.Fatalf("cluster format %d", v)
	}
	if v := lastEntryVersion(); v != 2 {
		t.Fatalf("an entry proposed at format 4 has version %d, want 2 (compressed)", v)
	}
	// Both read back the same way: the events are there.
	r := do(t, "GET", s.URL()+"/v1/log?from_index=1&limit=1000", nil, nil)
	if n := strings.Count(string(r.body), "fmt/compress"); r.status != 200 || n < 40 {
		t.Fatalf("log: %d, %d records of the 40 events", r.status, n)
	}
}

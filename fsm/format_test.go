package fsm_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/vmihailenco/msgpack/v5"
)

// A log written by the previous release (format 1, testdata/prevrelease:
// written by that release's code) replays through this one to the same
// runs, histories and apps.
func TestPreviousReleaseLogReplays(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "prevrelease", "entries.bin"))
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	for len(raw) > 0 {
		n, w := binary.Uvarint(raw)
		if w <= 0 || uint64(len(raw)-w) < n {
			t.Fatal("bad testdata framing")
		}
		h.idx++
		h.f.ApplyEntries([]fsm.Entry{{Index: h.idx, Data: raw[w : w+int(n)]}})
		raw = raw[w+int(n):]
	}
	type runView struct {
		ID, FnID, Status string
		Output           json.RawMessage
		History          []string
	}
	type appView struct {
		ID, URL   string
		Functions []string
	}
	var want struct {
		Apps []appView
		Runs []runView
	}
	b, err := os.ReadFile(filepath.Join("testdata", "prevrelease", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Apps []appView
		Runs []runView
	}
	apps, _ := h.f.Apps()
	for _, a := range apps {
		got.Apps = append(got.Apps, appView{ID: a.ID, URL: a.URL, Functions: a.Functions})
	}
	runs, err := h.f.RecentRuns(100)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		v := runView{ID: r.ID, FnID: r.FnID, Status: string(r.Status), Output: r.Output}
		hist, _ := h.f.History(r.ID)
		for _, e := range hist {
			v.History = append(v.History, e.Type)
		}
		got.Runs = append(got.Runs, v)
	}
	norm := func(x any) string { b, _ := json.Marshal(x); return string(b) }
	if norm(got) != norm(want) {
		t.Fatalf("the previous release's log gives another state:\n got %s\nwant %s", norm(got), norm(want))
	}
	if len(want.Runs) < 4 {
		t.Fatalf("testdata too small: %d runs", len(want.Runs))
	}
}

// A field this release does not know stops decoding: a node that dropped
// it would compute another state than the nodes that read it.
func TestUnknownFieldIsAnError(t *testing.T) {
	body, _ := msgpack.Marshal(map[string]any{"at": 1, "run": "r", "why": "x", "from_the_future": true})
	entry := append([]byte{1, 1, byte(fsm.KindCancelRequested), byte(len(body))}, body...)
	if _, err := fsm.DecodeEntry(entry); err == nil {
		t.Fatal("a record with an unknown field decoded")
	}
	known, _ := msgpack.Marshal(map[string]any{"at": 1, "run": "r", "why": "x"})
	entry = append([]byte{1, 1, byte(fsm.KindCancelRequested), byte(len(known))}, known...)
	if _, err := fsm.DecodeEntry(entry); err != nil {
		t.Fatalf("a known record: %v", err)
	}
}

// An ignorable kind this release does not know is skipped, the records
// around it applied.
func TestIgnorableKindIsSkipped(t *testing.T) {
	h := newHarness(t)
	sync := encode(t, syncApp(t0, "app", fnDef("app-fn", "ev/go", 0)))
	// Splice an unknown ignorable record before the sync in the same entry.
	unknown := []byte{byte(fsm.KindIgnorable | 0x33), 1, 0x80}
	entry := append([]byte{1, 2}, unknown...)
	entry = append(entry, sync[2:]...)
	h.idx++
	res := h.f.ApplyEntries([]fsm.Entry{{Index: h.idx, Data: entry}})
	if len(res[0]) != 2 || res[0][0].Code != fsm.Ignored || res[0][1].Code != fsm.OK {
		t.Fatalf("results %+v", res)
	}
	if fn, _ := h.f.Function("app-fn"); fn == nil {
		t.Fatal("the record after the ignored one was not applied")
	}
}

// Below format 2 the leader refuses the new kinds and clears the new
// fields, so that old and new nodes apply the same records the same way;
// below format 3 it clears the fields of format 3.
func TestDowngrade(t *testing.T) {
	if err := fsm.Downgrade(&fsm.AppRemoved{AppID: "a"}, 1); !errors.Is(err, fsm.ErrFormat) {
		t.Fatalf("AppRemoved at format 1: %v", err)
	}
	if err := fsm.Downgrade(&fsm.LimitsSet{}, 1); !errors.Is(err, fsm.ErrFormat) {
		t.Fatalf("LimitsSet at format 1: %v", err)
	}
	s := syncApp(t0, "app", fnDef("app-fn", "ev/go", 0))
	s.Owner, s.MayReplace, s.Exclusive = "k1", []string{"k0"}, true
	ev := event(t0, "01EV", "ev/go")
	ev.Lease = &fsm.LeaseNext{LeaseUntil: 5, Node: "n", Boot: "b", Max: 3, Each: 2, Rooms: []fsm.LeaseRoom{{Fn: "f", N: 1}}}
	cf := &fsm.CallFinished{RunID: "r", Fail: []byte(`{}`)}
	ns := &fsm.NodeSeen{ID: "n", Format: 2}
	for _, r := range []fsm.Record{s, ev, cf, ns} {
		if err := fsm.Downgrade(r, 1); err != nil {
			t.Fatalf("%s: %v", r.Kind(), err)
		}
	}
	if s.Owner != "" || s.MayReplace != nil || s.Exclusive || cf.Fail != nil || ns.Format != 2 ||
		!reflect.DeepEqual(*ev.Lease, fsm.LeaseNext{LeaseUntil: 5, Node: "n", Boot: "b"}) {
		t.Fatalf("fields left: %+v %+v %+v %+v", s, ev.Lease, cf, ns)
	}
	// At format 2 the actors (By) and a replay's origin are cleared, the
	// fields of format 2 kept.
	s3 := syncApp(t0, "app", fnDef("app-fn", "ev/go", 0))
	s3.Owner, s3.By = "k1", "app (key:k1)"
	ev3 := event(t0, "01EV", "ev/go")
	ev3.By, ev3.ReplayedFrom = "cli (key:k1)", "01OLD"
	ev3.Lease = &fsm.LeaseNext{LeaseUntil: 5, Max: 3}
	cancel := &fsm.CancelRequested{RunID: "r", Reason: "why", By: "cli"}
	bulk := &fsm.BulkCancel{FnID: "f", By: "cli"}
	sig := &fsm.SignalReceived{Signal: "s", By: "cli"}
	removed := &fsm.AppRemoved{AppID: "a", By: "cli"}
	for _, r := range []fsm.Record{s3, ev3, cancel, bulk, sig, removed} {
		if err := fsm.Downgrade(r, 2); err != nil {
			t.Fatalf("%s at format 2: %v", r.Kind(), err)
		}
	}
	if s3.By != "" || s3.Owner != "k1" || ev3.By != "" || ev3.ReplayedFrom != "" || ev3.Lease.Max != 3 ||
		cancel.By != "" || cancel.Reason != "why" || bulk.By != "" || sig.By != "" || removed.By != "cli" {
		t.Fatalf("format 2: %+v %+v %+v %+v %+v %+v", s3, ev3, cancel, bulk, sig, removed)
	}
	// Below format 5 a claim's revoke is cleared (it then waits out the lease).
	for _, format := range []int{3, 4} {
		cc := &fsm.CallClaimed{RunID: "r", Node: "n", Boot: "b", Revoke: true}
		if err := fsm.Downgrade(cc, format); err != nil || cc.Revoke || cc.Node != "n" {
			t.Fatalf("format %d: %v %+v", format, err, cc)
		}
	}
	// Below format 6 an answer's lease keeps no slot for its run.
	kept := &fsm.CallFinished{RunID: "r", Lease: &fsm.LeaseNext{LeaseUntil: 5, Max: 1, Keep: true}}
	if err := fsm.Downgrade(kept, 5); err != nil || kept.Lease.Keep || kept.Lease.Max != 1 {
		t.Fatalf("format 5: %v %+v", err, kept.Lease)
	}
	kept.Lease.Keep = true
	if err := fsm.Downgrade(kept, 6); err != nil || !kept.Lease.Keep {
		t.Fatalf("format 6: %v %+v", err, kept.Lease)
	}
	// At the current format nothing changes.
	s.Owner = "k1"
	if err := fsm.Downgrade(s, fsm.FormatVersion); err != nil || s.Owner != "k1" {
		t.Fatalf("current format: %v %+v", err, s)
	}
}

// The cluster's format is its lowest member's.
func TestClusterFormat(t *testing.T) {
	h := newHarness(t)
	h.want(&fsm.NodeSeen{At: t0, ID: "n1", Format: fsm.FormatVersion}, fsm.OK)
	h.want(&fsm.NodeSeen{At: t0, ID: "n2"}, fsm.OK) // an old release
	for _, c := range []struct {
		members []string
		want    int
	}{{[]string{"n1"}, fsm.FormatVersion}, {[]string{"n1", "n2"}, 1}, {[]string{"n1", "n3"}, 1}} {
		if got, err := h.f.ClusterFormat(c.members); err != nil || got != c.want {
			t.Errorf("ClusterFormat(%v) = %d %v, want %d", c.members, got, err, c.want)
		}
	}
}

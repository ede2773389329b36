package fsm_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
	"github.com/vmihailenco/msgpack/v5"
)

func boolPtr(b bool) *bool { return &b }

// sampleRecords has one fully populated record of every kind, so a field
// dropped by the codec (a missing or duplicated msgpack tag) shows up.
func sampleRecords() []fsm.Record {
	lease := &fsm.LeaseNext{LeaseUntil: 1700000030000, Node: "n1", Boot: "boot-1"}
	return []fsm.Record{
		&fsm.AppSynced{
			At: 1700000000000, AppID: "app", URL: "http://127.0.0.1:3000/api/inngest",
			SDK: "js:v4.24.0", Framework: "nodejs", Checksum: "abc123",
			Owner: "k1", MayReplace: []string{"k0"}, Exclusive: true, By: "app (key:k1)",
			Functions: []fsm.FunctionDef{{
				ID: "app-fn", Name: "Fn", URL: "http://127.0.0.1:3000/api/inngest?fnId=app-fn&stepId=step",
				Triggers: []fsm.Trigger{{Event: "ev/a", Expression: "event.data.x == 1"}, {Cron: "0 * * * *"}},
				Retries:  2, Config: []byte(`{"id":"app-fn"}`),
				Cancel:         []fsm.CancelOn{{Event: "ev/stop", If: "async.data.id == event.data.id", TimeoutMs: 60000}},
				StartTimeoutMs: 1000, FinishTimeoutMs: 2000, Idempotency: "event.data.id",
			}},
		},
		&fsm.EventAccepted{
			At: 1700000000001, ID: "01HEVENT", Name: "ev/a", IdemKey: "user-key",
			JSON: []byte(`{"name":"ev/a","data":{}}`), Lease: lease, By: "cli (key:k1)", ReplayedFrom: "01HOLD",
		},
		&fsm.CallClaimed{
			At: 1700000000002, RunID: "01HRUN", Call: "step", Gen: 7, LeaseUntil: 1700000040000,
			Node: "n1", Boot: "boot-1",
		},
		&fsm.CallFinished{
			At: 1700000000003, RunID: "01HRUN", Call: "step", Gen: 8, Status: 206, SDK: true, Version: 2,
			NoRetry: boolPtr(false), RetryAt: 1700000060000, Body: []byte(`[{"op":"StepRun"}]`),
			Ops: []fsm.Op{{
				ID: "deadbeef", Op: "StepRun", Name: "n", DisplayName: "dn",
				Opts: []byte(`{"type":"step"}`), Data: []byte(`{"x":1}`), Error: []byte(`{"name":"E"}`),
			}},
			Err: "boom", Jitter: 123, Millis: 45, Lease: lease, Fail: []byte(`{"name":"OutputTooLarge"}`),
		},
		&fsm.TimerFired{At: 1700000000004, RunID: "01HRUN", Call: "sleepy", Gen: 1, Lease: lease},
		&fsm.CancelRequested{At: 1700000000005, RunID: "01HRUN", Reason: "because", By: "cli"},
		&fsm.SignalReceived{At: 1700000000006, Signal: "sig", Data: []byte(`{"ok":true}`), Lease: lease, By: "app"},
		&fsm.CronFired{At: 1700000000007, FnID: "app-fn", Cron: "0 * * * *", ScheduledAt: 1700000000000, Lease: lease},
		&fsm.BulkCancel{At: 1700000000008, FnID: "app-fn", From: 1, To: 2, Reason: "bulk", By: "cli"},
		&fsm.NodeSeen{At: 1700000000009, ID: "n2", RaftAddr: "127.0.0.1:7002", HTTPAddr: "127.0.0.1:8002"},
		&fsm.LimitsSet{At: 1700000000011, Limits: fsm.Limits{StepOutputBytes: 1, RunStateBytes: 2, StepsPerRun: 3}},
		&fsm.RunRerun{At: 1700000000012, RunID: "01NEW", From: "01OLD", FromStep: "abc", By: "cli", Replay: "rp", Seq: 4},
		&fsm.ReplayStarted{At: 1700000000013, ID: "rp", FnID: "app-fn", From: 1, To: 2,
			Statuses: []string{"failed"}, Runs: []string{"01OLD"}, By: "cli"},
		&fsm.ReplayCancelled{At: 1700000000014, ID: "rp", By: "cli"},
		&fsm.EndpointStarted{At: 1700000000015, RunID: "r9", AppID: "http://h:1", FnID: "GET /a", URL: "http://h:1/a",
			Method: "GET", Retries: 3, EventID: "e9", JSON: []byte(`{"name":"inngest/http.request"}`),
			Steps: []fsm.Op{{ID: "s1", Op: "StepRun", Name: "a", DisplayName: "a", Opts: []byte(`{}`), Data: []byte(`1`), Error: []byte(`{}`)}},
			By:    "app"},
		&fsm.EndpointCheckpointed{At: 1700000000016, RunID: "r9", Steps: []fsm.Op{{ID: "s2", Op: "Sleep", Name: "1s"}},
			Jitter: 7, By: "app"},
		&fsm.EndpointResponded{At: 1700000000017, RunID: "r9", Response: []byte(`{"status":201}`), By: "app"},
		&fsm.AppRemoved{At: 1700000000010, AppID: "app", By: "key:k1"},
		&fsm.StepsCheckpointed{At: 1700000000015, RunID: "01HRUN", Call: "step", Gen: 3,
			Steps: []fsm.Op{{ID: "deadbeef", Op: "StepRun", Name: "n", DisplayName: "dn", Data: []byte(`{"x":1}`)}}},
	}
}

func TestCodecRoundTripEachKind(t *testing.T) {
	for _, rec := range sampleRecords() {
		t.Run(rec.Kind().String(), func(t *testing.T) {
			data, err := fsm.EncodeEntry(rec)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			got, err := fsm.DecodeEntry(data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if len(got) != 1 {
				t.Fatalf("decoded %d records, want 1", len(got))
			}
			if got[0].Kind() != rec.Kind() {
				t.Fatalf("kind = %v, want %v", got[0].Kind(), rec.Kind())
			}
			if !reflect.DeepEqual(got[0], rec) {
				t.Fatalf("round trip mismatch:\n got %#v\nwant %#v", got[0], rec)
			}
		})
	}
}

func TestCodecRoundTripMinimalRecords(t *testing.T) {
	// Zero-valued optional fields (nil Lease, nil NoRetry, omitempty strings)
	// must survive as zero values.
	recs := []fsm.Record{
		&fsm.AppSynced{AppID: "a"},
		&fsm.EventAccepted{ID: "e", Name: "n"},
		&fsm.CallClaimed{RunID: "r", Call: "step"},
		&fsm.CallFinished{RunID: "r", Call: "step"},
		&fsm.TimerFired{RunID: "r", Call: "c"},
		&fsm.CancelRequested{RunID: "r"},
		&fsm.SignalReceived{Signal: "s"},
		&fsm.CronFired{FnID: "f"},
		&fsm.BulkCancel{FnID: "f"},
	}
	data, err := fsm.EncodeEntry(recs...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fsm.DecodeEntry(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatalf("mismatch:\n got %#v\nwant %#v", got, recs)
	}
	if cf := got[3].(*fsm.CallFinished); cf.NoRetry != nil || cf.Lease != nil {
		t.Fatalf("nil pointers must stay nil: %#v", cf)
	}
}

// manyRecords is every sample record, then the same again in reverse order.
func manyRecords() []fsm.Record {
	recs := sampleRecords()
	for i := len(recs) - 1; i >= 0; i-- {
		recs = append(recs, recs[i])
	}
	return recs
}

func TestCodecRoundTripManyRecordsInOneEntry(t *testing.T) {
	recs := manyRecords() // order must be kept
	data, err := fsm.EncodeEntry(recs...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fsm.DecodeEntry(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, recs) {
		t.Fatalf("mismatch")
	}
}

// A compressed entry (format 4) is smaller and decodes to the same
// records; every damage to it is an error, never a panic.
func TestCompressedEntryRoundTrip(t *testing.T) {
	recs := manyRecords()
	data, err := fsm.EncodeEntry(recs...)
	if err != nil {
		t.Fatal(err)
	}
	small := fsm.CompressEntry(data)
	if small[0] != 2 || len(small) >= len(data) {
		t.Fatalf("compressed %d bytes to %d (version %d)", len(data), len(small), small[0])
	}
	got, err := fsm.DecodeEntry(small)
	if err != nil || !reflect.DeepEqual(got, recs) {
		t.Fatalf("decode of the compressed entry: %v", err)
	}
	if tiny := []byte{1, 0}; !reflect.DeepEqual(fsm.CompressEntry(tiny), tiny) {
		t.Fatal("an entry too small to gain was changed")
	}
	buf := make([]byte, len(small))
	for i := range small {
		copy(buf, small)
		buf[i] ^= 0xff
		decodeNoPanic(t, buf)
	}
	for n := 1; n < len(small); n++ {
		if _, err := decodeNoPanic(t, small[:n]); err == nil {
			t.Fatalf("a compressed entry cut to %d bytes decoded", n)
		}
	}
}

func TestCodecEmptyEntry(t *testing.T) {
	data, err := fsm.EncodeEntry()
	if err != nil {
		t.Fatal(err)
	}
	got, err := fsm.DecodeEntry(data)
	if err != nil {
		t.Fatalf("decode empty entry: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("got %d records, want 0", len(got))
	}
}

func TestDecodeEntryRejectsMalformed(t *testing.T) {
	valid, err := fsm.EncodeEntry(sampleRecords()...)
	if err != nil {
		t.Fatal(err)
	}
	one, err := fsm.EncodeEntry(&fsm.CancelRequested{RunID: "r", Reason: "x"})
	if err != nil {
		t.Fatal(err)
	}
	// one = [version][count=1][kind][len][msgpack body]
	body := one[4:]
	if int(one[3]) != len(body) {
		t.Fatalf("test assumption broken: one-byte length expected, entry % x", one)
	}
	withKind := func(k byte) []byte {
		b := append([]byte(nil), one...)
		b[2] = k
		return b
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"version only", []byte{1}},
		{"unknown version", append([]byte{2}, valid[1:]...)},
		{"version zero", append([]byte{0}, valid[1:]...)},
		{"count unterminated varint", []byte{1, 0x80}},
		{"count overflowing varint", []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"count larger than data", []byte{1, 0x7f}},
		{"huge count", []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f, 6, 0}},
		{"count 1, no record", []byte{1, 1}},
		{"count 2, one record", append([]byte{1, 2}, one[2:]...)},
		{"kind invalid (0)", withKind(0)},
		{"kind unknown (100)", withKind(100)},
		{"kind unknown, not ignorable (127)", withKind(127)},
		{"length unterminated", []byte{1, 1, 6, 0x80}},
		{"length beyond data", []byte{1, 1, 6, 0x10, 0x80}},
		{"length huge", []byte{1, 1, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"trailing bytes", append(append([]byte(nil), valid...), 0)},
		{"body not msgpack", append([]byte{1, 1, 6, 3}, 0xc1, 0xc1, 0xc1)},
		{"body wrong type (string for struct)", append([]byte{1, 1, 6, 3}, 0xa2, 'h', 'i')},
		{"body wrong field type", mustMsgpackEntry(6, map[string]any{"run": []int{1, 2}})},
		{"body truncated map", []byte{1, 1, 6, 1, 0x82}},
		{"kind/body mismatch", mustMsgpackEntry(4, map[string]any{"st": "not a number"})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := decodeNoPanic(t, tc.data)
			if err == nil {
				t.Fatalf("DecodeEntry(% x) = %d records, want an error", tc.data, len(recs))
			}
		})
	}
}

// mustMsgpackEntry builds a one-record entry with a hand-made body.
func mustMsgpackEntry(kind byte, body map[string]any) []byte {
	raw := msgpackMarshal(body)
	if len(raw) > 127 {
		panic("body too long for a one-byte length")
	}
	return append([]byte{1, 1, kind, byte(len(raw))}, raw...)
}

func msgpackMarshal(v any) []byte {
	raw, err := msgpack.Marshal(v)
	if err != nil {
		panic(err)
	}
	return raw
}

func TestDecodeEntryEveryTruncationFails(t *testing.T) {
	valid, err := fsm.EncodeEntry(sampleRecords()...)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(valid); n++ {
		if _, err := decodeNoPanic(t, valid[:n]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(valid))
		}
	}
}

func TestDecodeEntryBitFlipsNeverPanic(t *testing.T) {
	valid, err := fsm.EncodeEntry(sampleRecords()...)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(valid))
	for i := range valid {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			copy(buf, valid)
			buf[i] ^= mask
			decodeNoPanic(t, buf)
		}
	}
}

func decodeNoPanic(t *testing.T, data []byte) (recs []fsm.Record, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("DecodeEntry(% x) panicked: %v", data, r)
		}
	}()
	return fsm.DecodeEntry(data)
}

// A tiny body that declares a huge msgpack array or bin must be rejected as
// malformed, not allocated.
func TestDecodeEntryHugeDeclaredLengthIsAnError(t *testing.T) {
	cases := []struct {
		name string
		kind fsm.Kind
		body []byte
	}{
		// {"fns": array32(0x7fffffff)} with no elements.
		{"array32", fsm.KindAppSynced, []byte{0x81, 0xa3, 'f', 'n', 's', 0xdd, 0x7f, 0xff, 0xff, 0xff}},
		// {"json": bin32(0x7fffffff)} with no bytes.
		{"bin32", fsm.KindEventAccepted, []byte{0x81, 0xa4, 'j', 's', 'o', 'n', 0xc6, 0x7f, 0xff, 0xff, 0xff}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := append([]byte{1, 1, byte(tc.kind), byte(len(tc.body))}, tc.body...)
			if _, err := decodeNoPanic(t, data); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func FuzzDecodeEntry(f *testing.F) {
	for _, r := range sampleRecords() {
		if data, err := fsm.EncodeEntry(r); err == nil {
			f.Add(data)
		}
	}
	if data, err := fsm.EncodeEntry(sampleRecords()...); err == nil {
		f.Add(data)
		f.Add(fsm.CompressEntry(data))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 1, 6, 0})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := fsm.DecodeEntry(data) // must not panic
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to something that decodes to the
		// same records.
		again, err := fsm.EncodeEntry(recs...)
		if err != nil {
			t.Fatalf("re-encode of decoded records: %v", err)
		}
		recs2, err := fsm.DecodeEntry(again)
		if err != nil {
			t.Fatalf("decode of re-encoded entry: %v", err)
		}
		if len(recs) != len(recs2) {
			t.Fatalf("record count changed: %d -> %d", len(recs), len(recs2))
		}
		for i := range recs {
			if !reflect.DeepEqual(recs[i], recs2[i]) {
				t.Fatalf("record %d changed on re-encode:\n%#v\n%#v", i, recs[i], recs2[i])
			}
		}
		if again2, _ := fsm.EncodeEntry(recs2...); !bytes.Equal(again, again2) {
			t.Fatalf("encoding is not stable")
		}
	})
}

// Every kind the package knows must have a sample above, so that a new
// record type cannot be added without a round-trip test.
func TestCodecSamplesCoverEveryKind(t *testing.T) {
	have := map[fsm.Kind]bool{}
	for _, r := range sampleRecords() {
		have[r.Kind()] = true
	}
	for k := fsm.Kind(1); k < 255; k++ {
		data := []byte{1, 1, byte(k), 1, 0x80} // an empty msgpack map
		recs, err := fsm.DecodeEntry(data)
		if k.Ignorable() {
			if err != nil || len(recs) != 1 || recs[0].Kind() != k {
				t.Errorf("ignorable kind %v: %v %v", k, recs, err)
			}
			continue // unknown but skippable
		}
		known := err == nil
		if known && !have[k] {
			t.Errorf("kind %v decodes but has no sample record in sampleRecords", k)
		}
		if !known && have[k] {
			t.Errorf("kind %v has a sample but does not decode: %v", k, err)
		}
	}
}

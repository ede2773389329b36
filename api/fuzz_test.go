package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/expr"
	"github.com/cairn-dev/cairn/fsm"
)

// Fuzz targets for the bodies the API decodes. Each is seeded with what the
// real inngest SDK 4.24.0 sent to a probe server (../shared/protocol/
// fixtures, beside the repository) and with the files in testdata/; a short
// run of each is part of `make test` (make fuzz).

// fixturesDir holds exchanges captured between the SDK and a probe server.
var fixturesDir = filepath.Join("..", "..", "shared", "protocol", "fixtures")

// fuzzNow is the clock of the event fuzz target: parsing must not depend
// on the real one.
var fuzzNow = time.UnixMilli(1767225600000)

// sdkRequest is a request the SDK sent to the server in a fixture.
type sdkRequest struct {
	path   string
	header map[string]string
	body   []byte
}

// sdkRequests returns the captured SDK requests whose path starts with
// prefix. Without the fixtures the fuzz targets run on their other seeds.
func sdkRequests(f *testing.F, prefix string) []sdkRequest {
	files, _ := filepath.Glob(filepath.Join(fixturesDir, "[0-9]*.json"))
	if len(files) == 0 {
		f.Logf("no protocol fixtures in %s: seeding from testdata only", fixturesDir)
	}
	var out []sdkRequest
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var fx struct {
			Out []struct {
				Path    string            `json:"path"`
				Headers map[string]string `json:"headers"`
				Body    json.RawMessage   `json:"body"`
			} `json:"sdk_outbound_requests"`
		}
		if err := json.Unmarshal(raw, &fx); err != nil {
			f.Fatalf("%s: %v", file, err)
		}
		for _, r := range fx.Out {
			if strings.HasPrefix(r.Path, prefix) {
				out = append(out, sdkRequest{path: r.Path, header: r.Headers, body: r.Body})
			}
		}
	}
	return out
}

// testdataSeeds adds every file of testdata/ whose name starts with prefix.
func testdataSeeds(f *testing.F, prefix string, add func([]byte)) {
	files, err := filepath.Glob(filepath.Join("testdata", prefix+"*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

// refusedCleanly fails unless err is an API error with a 4xx status and a
// message: what the client would get.
func refusedCleanly(t *testing.T, err error) {
	t.Helper()
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status < 400 || ae.Status > 499 || ae.Code == "" || ae.Msg == "" {
		t.Fatalf("not a clean 4xx refusal: %#v", err)
	}
}

// FuzzParseEvents: an event body is refused with a 4xx or becomes records
// whose stored event is what an app may rely on; stored events sent again
// with the same seed header come out unchanged (normalizing is idempotent).
func FuzzParseEvents(f *testing.F) {
	for _, r := range sdkRequests(f, "/e/") {
		f.Add(r.body, r.header["x-inngest-event-id-seed"])
	}
	testdataSeeds(f, "event", func(b []byte) { f.Add(b, "1767225600000,AAECAwQFBgcICQ==") })
	f.Add([]byte(`{"name":"a","data":null,"user":null,"id":null,"ts":null}`), "")
	f.Add([]byte(`[{"name":"a","ts":1.5e12},{"name":"b","id":"k","v":"2"}]`), "1,AA==")

	f.Fuzz(func(t *testing.T, body []byte, seed string) {
		recs, err := parseEvents(body, fuzzNow, seed, 1<<20)
		if err != nil {
			refusedCleanly(t, err)
			return
		}
		if len(recs) == 0 {
			t.Fatal("no error and no events")
		}
		stored := make([]json.RawMessage, len(recs))
		for i, r := range recs {
			var ev struct {
				Name string          `json:"name"`
				Data json.RawMessage `json:"data"`
				ID   string          `json:"id"`
				TS   int64           `json:"ts"`
				User json.RawMessage `json:"user"`
			}
			if err := json.Unmarshal(r.JSON, &ev); err != nil {
				t.Fatalf("stored event %d is not an event: %v: %s", i, err, r.JSON)
			}
			switch {
			case ev.Name != r.Name || ev.ID != r.ID || r.At != fuzzNow.UnixMilli():
				t.Fatalf("record %+v disagrees with its event %s", r, r.JSON)
			case strings.TrimSpace(r.Name) == "" || checkName(r.Name, maxEventNameBytes) != "":
				t.Fatalf("bad name %q accepted", r.Name)
			case invalidUTF8At(r.JSON) >= 0:
				t.Fatalf("stored event is not UTF-8: %q", r.JSON)
			case ev.TS <= 0 || ev.TS > fuzzNow.UnixMilli()+maxEventAheadMs:
				t.Fatalf("ts %d out of bounds", ev.TS)
			case ev.Data[0] != '{' || ev.User[0] != '{':
				t.Fatalf("data or user not an object: %s", r.JSON)
			}
			stored[i] = r.JSON
		}
		if _, s := parseSeed(seed); s == nil {
			return // random ids: nothing to compare
		}
		again, err := parseEvents(mustJSON(t, stored), fuzzNow, seed, 1<<30)
		if err != nil {
			t.Fatalf("stored events refused when sent again: %v", err)
		}
		for i := range again {
			if !bytes.Equal(again[i].JSON, recs[i].JSON) || again[i].IdemKey != recs[i].ID {
				t.Fatalf("event %d changed when sent again:\n%s\n%s", i, recs[i].JSON, again[i].JSON)
			}
		}
	})
}

// FuzzParseRegister: a register body is refused with a 4xx or becomes an
// AppSynced record within every limit, which survives the log codec (a
// follower decodes what the leader encodes) and has a stable checksum.
func FuzzParseRegister(f *testing.F) {
	for _, r := range sdkRequests(f, "/fn/register") {
		f.Add(r.body)
	}
	testdataSeeds(f, "register", func(b []byte) { f.Add(b) })
	f.Add([]byte(`{"url":"http://a/","appName":"a","functions":[{"id":"f","steps":{"step":{"runtime":{"url":"http://a/"}}},"concurrency":2}]}`))

	f.Fuzz(func(t *testing.T, body []byte) {
		rec, err := parseRegister(body)
		if err != nil {
			refusedCleanly(t, err)
			return
		}
		if checkName(rec.AppID, maxIDBytes) != "" {
			t.Fatalf("bad app name %q accepted", rec.AppID)
		}
		for _, fn := range rec.Functions {
			if fn.ID == "" || checkName(fn.ID, maxIDBytes) != "" {
				t.Fatalf("bad function id %q accepted", fn.ID)
			}
			if err := checkFunction(&fn); err != nil {
				t.Fatalf("function past its limits accepted: %v", err)
			}
			for _, tr := range fn.Triggers {
				if tr.Expression != "" {
					if _, err := expr.CompileCondition(tr.Expression); err != nil {
						t.Fatalf("trigger condition accepted: %v", err)
					}
				}
			}
		}
		entry, err := fsm.EncodeEntry(rec)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		back, err := fsm.DecodeEntry(entry)
		if err != nil || len(back) != 1 || !reflect.DeepEqual(back[0], rec) {
			t.Fatalf("the record does not survive the log: %v\n%#v\n%#v", err, rec, back)
		}
		if again, _ := parseRegister(body); again.Checksum != rec.Checksum {
			t.Fatal("checksum differs between two parses of one body")
		}
	})
}

// FuzzDecodeAnswers: a forwarded answers body (an fsm entry) is refused
// with a 4xx or yields only call answers, leasing nothing, that encode
// back to an entry decoding the same.
func FuzzDecodeAnswers(f *testing.F) {
	lease := &fsm.LeaseNext{LeaseUntil: 1767225630000, Node: "n2", Boot: "b"}
	noRetry := true
	seeds := [][]fsm.Record{
		{&fsm.CallFinished{At: 1767225600000, RunID: "01JPROBERUN000000000000002", Call: "step", Gen: 1, Status: 206, SDK: true,
			Version: 2, Ops: []fsm.Op{{ID: "c56b78b6e793d3166ced30e23236fc9b7bc7dc58", Op: "StepRun", Name: "parse-csv",
				DisplayName: "parse-csv", Opts: []byte(`{}`), Data: []byte(`[{"email":"a@example.com"}]`)}}, Millis: 4, Lease: lease}},
		{&fsm.CallFinished{RunID: "r", Call: "step", Gen: 3, Status: 500, NoRetry: &noRetry, RetryAt: 1767225660000,
			Body: []byte(`{"name":"Error","message":"boom"}`), Err: "HTTP 500", Jitter: 77},
			&fsm.CallFinished{RunID: "r2", Call: "x", Gen: 1, Status: 200, SDK: true, Body: []byte(`"done"`)}},
		{&fsm.CancelRequested{RunID: "r"}},
		{},
	}
	for _, recs := range seeds {
		b, err := fsm.EncodeEntry(recs...)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"run":"x"}`))

	f.Fuzz(func(t *testing.T, body []byte) {
		recs, err := decodeAnswers(body)
		if err != nil {
			refusedCleanly(t, err)
			return
		}
		for _, r := range recs {
			if cf, ok := r.(*fsm.CallFinished); !ok || cf.Lease != nil {
				t.Fatalf("accepted %#v", r)
			}
		}
		entry, err := fsm.EncodeEntry(recs...)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		back, err := decodeAnswers(entry)
		if err != nil || !reflect.DeepEqual(back, recs) {
			t.Fatalf("answers changed through the codec: %v\n%#v\n%#v", err, recs, back)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package executor

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cairn-dev/cairn/fsm"
)

// Fuzz targets for what apps answer (protocol.go), seeded with every answer
// the real inngest SDK 4.24.0 gave in the captured fixtures. An app is
// outside Cairn: whatever it sends, the executor must make a record of it
// that the log can carry, and never panic.

// capturedAnswers returns the app answers to execution calls in the
// fixtures; none when they are not there.
func capturedAnswers(f *testing.F) []*response {
	files, _ := filepath.Glob(filepath.Join(fixturesDir, "[0-9]*.json"))
	if len(files) == 0 {
		f.Logf("no protocol fixtures in %s: seeding from the literals only", fixturesDir)
	}
	var out []*response
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var fx fixture
		if err := json.Unmarshal(b, &fx); err != nil {
			f.Fatalf("%s: %v", file, err)
		}
		if fx.Request.Method != http.MethodPost || fx.Response.Status == 0 {
			continue
		}
		h := http.Header{}
		for k, v := range fx.Response.Headers {
			h.Set(k, v)
		}
		out = append(out, &response{status: fx.Response.Status, header: h, body: []byte(fx.Response.RawBody)})
	}
	return out
}

// FuzzParseOps: a 206 body is refused or gives ops that all have an
// opcode and that, written back as the SDK would, parse to the same ops.
func FuzzParseOps(f *testing.F) {
	for _, r := range capturedAnswers(f) {
		if r.status == http.StatusCreated && unwrapStream(r) != nil {
			continue
		}
		if r.status == http.StatusPartialContent {
			f.Add(r.body)
		}
	}
	f.Add([]byte(`{"id":"a","op":"RunComplete","data":{"status":200,"body":"ok"}}`))
	f.Add([]byte(`[{"id":"a","op":"StepError","error":{"name":"Error","message":"x"},"opts":null}]`))

	f.Fuzz(func(t *testing.T, body []byte) {
		ops, err := parseOps(body)
		if err != nil {
			return
		}
		wire := make([]sdkOp, len(ops))
		for i, op := range ops {
			if op.Op == "" {
				t.Fatalf("op %d without an opcode from %q", i, body)
			}
			wire[i] = sdkOp{op.ID, op.Op, op.Name, op.DisplayName, op.Opts, op.Data, op.Error}
		}
		b, err := json.Marshal(wire)
		if err != nil {
			t.Fatalf("ops do not write back: %v", err)
		}
		again, err := parseOps(b)
		if err != nil {
			t.Fatalf("ops written back do not parse: %v: %s", err, b)
		}
		if !reflect.DeepEqual(canonicalOps(t, again), canonicalOps(t, ops)) {
			t.Fatalf("ops changed when written back:\n%+v\n%+v", ops, again)
		}
	})
}

// sdkOp is an op as the SDK writes it, omitting what it lacks.
type sdkOp struct {
	ID          string          `json:"id"`
	Op          string          `json:"op"`
	Name        string          `json:"name,omitempty"`
	DisplayName string          `json:"displayName,omitempty"`
	Opts        json.RawMessage `json:"opts,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Error       json.RawMessage `json:"error,omitempty"`
}

// canonicalOps rewrites the JSON values of ops in one spelling, since
// writing JSON back may change spaces and escapes but not values.
func canonicalOps(t *testing.T, ops []fsm.Op) []fsm.Op {
	out := make([]fsm.Op, len(ops))
	for i, op := range ops {
		op.Opts, op.Data, op.Error = canonicalJSON(t, op.Opts), canonicalJSON(t, op.Data), canonicalJSON(t, op.Error)
		out[i] = op
	}
	return out
}

func canonicalJSON(t *testing.T, b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("an op carries invalid JSON %q: %v", b, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzUnwrapStream: the last object of a streamed (201) answer is refused
// or unwrapped; wrapped again the same way, it unwraps to the same answer.
func FuzzUnwrapStream(f *testing.F) {
	for _, r := range capturedAnswers(f) {
		if r.status == http.StatusCreated {
			f.Add(r.body)
		}
	}
	f.Add([]byte(`{"status":500,"headers":{"x-inngest-no-retry":"true"},"body":{"name":"Error"}}`))
	f.Add([]byte(`{"status":206,"body":null}`))

	f.Fuzz(func(t *testing.T, body []byte) {
		r := &response{status: http.StatusCreated, body: body}
		if unwrapStream(r) != nil {
			return
		}
		if r.header == nil {
			t.Fatal("unwrapped answer without a header map")
		}
		if !utf8.Valid(r.body) {
			return // a raw body that is not a JSON string: bytes as sent
		}
		headers := map[string]string{}
		for k := range r.header {
			headers[k] = r.header.Get(k)
		}
		inner, _ := json.Marshal(string(r.body))
		wrapped, err := json.Marshal(streamed{Status: r.status, Headers: headers, Body: inner})
		if err != nil {
			t.Fatal(err)
		}
		again := &response{status: http.StatusCreated, body: wrapped}
		if err := unwrapStream(again); err != nil {
			t.Fatalf("a wrapped answer does not unwrap: %v: %s", err, wrapped)
		}
		if again.status != r.status || !reflect.DeepEqual(again.header, r.header) || !bytes.Equal(again.body, r.body) {
			t.Fatalf("answer changed when wrapped again:\n%d %v %q\n%d %v %q", r.status, r.header, r.body, again.status, again.header, again.body)
		}
	})
}

// FuzzCallAnswer drives a whole answer (status, retry headers, body, and a
// stream around it) through finishedFrom: the record must keep a JSON
// body, honour Retry-After within reason, and survive the log codec.
func FuzzCallAnswer(f *testing.F) {
	for _, r := range capturedAnswers(f) {
		f.Add(r.status, r.header.Get("X-Inngest-No-Retry"), r.header.Get("Retry-After"), r.body)
	}
	f.Add(500, "false", "30", []byte(`{"name":"Error","message":"retry me"}`))
	f.Add(429, "", "Wed, 21 Oct 2015 07:28:00 GMT", []byte("rate limited \xff"))

	now := time.UnixMilli(1767225600000)
	f.Fuzz(func(t *testing.T, status int, noRetry, retryAfter string, body []byte) {
		h := http.Header{"X-Inngest-Sdk": {"inngest-js:v4.24.0"}, "X-Inngest-Req-Version": {"2"}}
		h.Set("X-Inngest-No-Retry", noRetry)
		h.Set("Retry-After", retryAfter)
		r := &response{status: status, header: h, body: body}
		if status == http.StatusCreated && unwrapStream(r) != nil {
			return
		}
		rec := finishedFrom(r, now)
		if len(rec.Body) > 0 && !json.Valid(rec.Body) {
			t.Fatalf("body kept as invalid JSON: %q", rec.Body)
		}
		for _, op := range rec.Ops {
			if op.Op == "" {
				t.Fatal("op without an opcode")
			}
		}
		if s, err := strconv.Atoi(r.header.Get("Retry-After")); err == nil && s >= 0 && rec.RetryAt < now.UnixMilli() {
			t.Fatalf("Retry-After %d s gave a retry at %d, before now (%d)", s, rec.RetryAt, now.UnixMilli())
		}
		rec.RunID, rec.Call, rec.Gen, rec.At = "01JPROBERUN000000000000002", "step", 1, now.UnixMilli()
		entry, err := fsm.EncodeEntry(rec)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		back, err := fsm.DecodeEntry(entry)
		if err != nil || len(back) != 1 || !reflect.DeepEqual(back[0], rec) {
			t.Fatalf("the record does not survive the log: %v\n%#v\n%#v", err, rec, back)
		}
	})
}

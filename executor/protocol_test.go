package executor

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixturesDir holds exchanges captured between the real inngest SDK 4.24.0
// and a probe server (../shared beside the repository).
var fixturesDir = filepath.Join("..", "..", "shared", "protocol", "fixtures")

type fixture struct {
	Request struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	Response struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		RawBody string            `json:"raw_body"`
	} `json:"response"`
}

type indexEntry struct {
	File    string   `json:"file"`
	Request string   `json:"request"`
	Status  int      `json:"status"`
	Ops     []string `json:"ops"`
}

// TestFinishedFromCapturedResponses reduces every captured SDK answer to an
// execution call into a record and checks the opcodes and the retry headers
// came through as the SDK sent them.
func TestFinishedFromCapturedResponses(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(fixturesDir, "000-index.json"))
	if err != nil {
		t.Skipf("protocol fixtures not found (%v)", err)
	}
	var index struct {
		Exchanges []indexEntry `json:"exchanges"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, ex := range index.Exchanges {
		if !strings.HasPrefix(ex.Request, "POST /api/inngest?fnId=") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(fixturesDir, ex.File))
		if err != nil {
			t.Fatal(err)
		}
		var fx fixture
		if err := json.Unmarshal(b, &fx); err != nil {
			t.Fatalf("%s: %v", ex.File, err)
		}
		h := http.Header{}
		for k, v := range fx.Response.Headers {
			h.Set(k, v)
		}
		r := &response{status: fx.Response.Status, header: h, body: []byte(fx.Response.RawBody)}
		if r.status == http.StatusCreated {
			if err := unwrapStream(r); err != nil {
				t.Fatalf("%s: %v", ex.File, err)
			}
		}
		rec := finishedFrom(r, time.Unix(1000, 0))
		if rec.Err != "" {
			t.Errorf("%s: %s", ex.File, rec.Err)
			continue
		}
		if r.status == http.StatusUnauthorized {
			// Signature refusals carry no SDK headers: a failed attempt.
			if rec.SDK {
				t.Errorf("%s: a 401 counted as an SDK answer", ex.File)
			}
			continue
		}
		if !rec.SDK {
			t.Errorf("%s: SDK response not recognised", ex.File)
		}
		var got []string
		for _, op := range rec.Ops {
			got = append(got, op.Op)
		}
		var want []string
		for _, op := range ex.Ops {
			want = append(want, strings.SplitN(op, ":", 2)[0])
		}
		if fx.Response.Status == http.StatusCreated {
			want = got // the index lists the ops of the raw 201, which has none
			if r.status == 206 && len(got) == 0 {
				t.Errorf("%s: no ops inside the streamed 206", ex.File)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: ops %v, want %v", ex.File, got, want)
		}
		if nr := h.Get("X-Inngest-No-Retry"); nr != "" && !staleDispatch(rec.Body) && (rec.NoRetry == nil || *rec.NoRetry != (nr == "true")) {
			t.Errorf("%s: no-retry %q not carried", ex.File, nr)
		}
		if ra := h.Get("Retry-After"); ra != "" && rec.RetryAt == 0 {
			t.Errorf("%s: Retry-After %q not carried", ex.File, ra)
		}
		if r.status != 206 && len(rec.Body) == 0 {
			t.Errorf("%s: status %d lost its body", ex.File, r.status)
		}
		checked++
	}
	if checked < 40 {
		t.Fatalf("only %d captured execution calls checked", checked)
	}
}

func TestFinishedFromRejectsNonSDKAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   string
	}{
		{"proxy 200 without SDK header", 200, http.Header{}, `{"ok":true}`, "not an SDK response"},
		{"206 with garbage ops", 206, http.Header{"X-Inngest-Sdk": {"js"}}, `[{"id":1}]`, "bad ops"},
		{"206 with an op without opcode", 206, http.Header{"X-Inngest-Sdk": {"js"}}, `[{"id":"x"}]`, "bad ops"},
	}
	for _, c := range cases {
		rec := finishedFrom(&response{status: c.status, header: c.header, body: []byte(c.body)}, time.Now())
		if !strings.Contains(rec.Err, c.want) {
			t.Errorf("%s: err %q, want %q", c.name, rec.Err, c.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Unix(1000, 0)
	if got := retryAfter("30", now); got != now.Add(30*time.Second).UnixMilli() {
		t.Errorf("seconds: %d", got)
	}
	if got := retryAfter("1970-01-01T00:20:00Z", now); got != 1200000 {
		t.Errorf("date: %d", got)
	}
	if got := retryAfter("soon", now); got != 0 {
		t.Errorf("garbage: %d", got)
	}
}

func TestUnwrapStream(t *testing.T) {
	r := &response{status: 201, header: http.Header{}, body: []byte(`   {"status":206,"headers":{"x-inngest-sdk":"js"},"body":"[{\"id\":\"a\",\"op\":\"StepRun\",\"data\":1}]","version":2}`)}
	if err := unwrapStream(r); err != nil {
		t.Fatal(err)
	}
	rec := finishedFrom(r, time.Now())
	if r.status != 206 || !rec.SDK || len(rec.Ops) != 1 || string(rec.Ops[0].Data) != "1" {
		t.Fatalf("unwrapped %+v", rec)
	}
}

// FuzzFinishedFrom feeds arbitrary app answers to the response parser: it
// must never panic, and whatever it accepts as ops must have opcodes.
func FuzzFinishedFrom(f *testing.F) {
	f.Add(206, `[{"id":"a","op":"StepRun","data":1}]`)
	f.Add(206, `{"id":"a","op":"RunComplete","data":{"status":200}}`)
	f.Add(201, `   {"status":206,"headers":{"x-inngest-sdk":"js"},"body":"[]"}`)
	f.Add(200, `null`)
	f.Add(500, `{"name":"Error"}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		r := &response{status: status, header: http.Header{"X-Inngest-Sdk": {"js"}}, body: []byte(body)}
		if status == http.StatusCreated && unwrapStream(r) != nil {
			return
		}
		rec := finishedFrom(r, time.Unix(0, 0))
		for _, op := range rec.Ops {
			if op.Op == "" {
				t.Fatalf("op without opcode from %q", body)
			}
		}
	})
}

// The SDK's answer after a 409 checkpoint (fixture
// import-contacts-checkpoint-api-409-stale-c01-discovery) is retried, not
// final: the claim it came from is stale, and were it not, the run must
// not fail for it.
func TestStaleDispatchIsNotFinal(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixturesDir, "033-import-contacts-checkpoint-api-409-stale-c01-discovery.json"))
	if err != nil {
		t.Skipf("protocol fixtures not found (%v)", err)
	}
	var fx fixture
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for k, v := range fx.Response.Headers {
		h.Set(k, v)
	}
	rec := finishedFrom(&response{status: fx.Response.Status, header: h, body: []byte(fx.Response.RawBody)}, time.Unix(1000, 0))
	if rec.Status != 400 || !rec.SDK || rec.NoRetry == nil || *rec.NoRetry {
		t.Fatalf("record %+v", rec)
	}
	other := finishedFrom(&response{status: 400, header: h, body: []byte(`{"name":"Error","message":"boom"}`)}, time.Unix(1000, 0))
	if other.NoRetry == nil || !*other.NoRetry {
		t.Fatal("an ordinary no-retry error became retriable")
	}
}

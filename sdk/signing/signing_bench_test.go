package signing

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/sdk/jcs"
)

// benchKey is a throwaway 32-byte key, the size `openssl rand -hex 32` gives.
const benchKey = "signkey-bench-00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// callBody builds what the executor sends for the last call of a 3-step
// run (json.Marshal output, as it is before signing): the event, then three
// memoized step results of about 200 bytes each. The shape follows
// executor/protocol.go; the values follow bench's import-contacts function.
func callBody(tb testing.TB) []byte {
	tb.Helper()
	event := json.RawMessage(`{"name":"contacts/csv.uploaded","data":{"fileURI":"s3://bench/contacts-2024-06.csv","uploadedBy":"user_2fQ8xK3b","rows":3},"id":"01J0BENCH7Q9M4V6X2T8R5N3K1","ts":1718000000000,"v":"2024-06-01"}`)
	memo := []json.RawMessage{
		json.RawMessage(`{"data":[{"email":"Ann@Example.com","name":"  Ann ","source":"csv"},{"email":"bob@example.com","name":"Bob","source":"csv"},{"email":"ann@example.com","name":"Ann again","source":"csv"}]}`),
		json.RawMessage(`{"data":[{"email":"ann@example.com","name":"Ann","tags":["imported","2024-06"]},{"email":"bob@example.com","name":"Bob","tags":["imported","2024-06"]}],"dropped":1,"ms":12.5}`),
		json.RawMessage(`{"data":{"imported":2,"emails":["ann@example.com","bob@example.com"],"list":"newsletter","at":"2024-06-10T06:13:20.000Z","skipped":[]}}`),
	}
	steps := map[string]json.RawMessage{}
	var stack []string
	for i, name := range []string{"parse-csv", "normalize-raw-csv", "input-contacts"} {
		sum := sha1.Sum([]byte(name))
		id := hex.EncodeToString(sum[:])
		steps[id] = memo[i]
		stack = append(stack, id)
	}
	body, err := json.Marshal(map[string]any{
		"event": event, "events": []json.RawMessage{event}, "steps": steps, "version": 2, "use_api": false,
		"ctx": map[string]any{
			"run_id": "01J0BENCHRUN4V6X2T8R5N3K1Q", "attempt": 0, "max_attempts": 4,
			"disable_immediate_execution": false, "use_api": false,
			"stack": map[string]any{"stack": stack, "current": len(stack)},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// processCPU is the CPU time this process has used (all threads, so GC
// included).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loop runs op b.N times and reports, besides ns/op (wall time), cpu-ns/op:
// on a shared machine wall time counts waiting for a core, CPU time does
// not, so cpu-ns/op is the figure to compare with Cairn's CPU per step.
func loop(b *testing.B, op func() error) {
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}

// answer is an SDK's 206 answer running one step, signed by the app.
var answer = []byte(`[{"id":"c5bd3a4b2f1b8b5f0e6a1f0f3f1d2c9c9e1b7a33","op":"StepRun","name":"input-contacts","displayName":"input-contacts","data":{"imported":2,"emails":["ann@example.com","bob@example.com"]}}]`)

// BenchmarkSignCall is what production mode adds to every app call on
// Cairn's side: canonicalize the marshalled body (RFC 8785) and HMAC it.
func BenchmarkSignCall(b *testing.B) {
	k, err := ParseKey(benchKey)
	if err != nil {
		b.Fatal(err)
	}
	body := callBody(b)
	now := time.Now()
	b.SetBytes(int64(len(body)))
	loop(b, func() error {
		_, _, err := k.SignJSON(body, now)
		return err
	})
}

// BenchmarkCanonicalize is the RFC 8785 part of BenchmarkSignCall alone,
// to tell it from the HMAC.
func BenchmarkCanonicalize(b *testing.B) {
	body := callBody(b)
	b.SetBytes(int64(len(body)))
	loop(b, func() error {
		_, err := jcs.Transform(body)
		return err
	})
}

// BenchmarkVerifyAnswer is the other half: checking the signature of an
// SDK's answer (raw bytes, no canonicalization).
func BenchmarkVerifyAnswer(b *testing.B) {
	k, err := ParseKey(benchKey)
	if err != nil {
		b.Fatal(err)
	}
	ks := Keys{Primary: k}
	now := time.Now()
	sig := k.Sign(answer, now)
	b.SetBytes(int64(len(answer)))
	loop(b, func() error {
		_, err := ks.Verify(sig, answer, now)
		return err
	})
}

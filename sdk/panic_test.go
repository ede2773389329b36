package sdk_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/sdk"
	"github.com/cairn-dev/cairn/sdk/step"
)

// A panic in user code is an error, not a dropped connection: in a step it
// is the step's error (retried), between steps the function's.
func TestPanicsAreErrors(t *testing.T) {
	dev := true
	c, err := sdk.NewClient(sdk.ClientOpts{AppID: "p", Dev: &dev, BaseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	sdk.CreateFunction(c, sdk.FunctionOpts{ID: "in-step"}, sdk.EventTrigger("x"),
		func(ctx context.Context, in sdk.Input[any]) (int, error) {
			return step.Run(ctx, "boom", func(context.Context) (int, error) { panic("step exploded") })
		})
	sdk.CreateFunction(c, sdk.FunctionOpts{ID: "in-function"}, sdk.EventTrigger("x"),
		func(ctx context.Context, in sdk.Input[any]) (int, error) { panic("function exploded") })

	call := func(fn string) (int, string, string) {
		body := `{"event":{"name":"x","data":{}},"events":[],"steps":{},"ctx":{"run_id":"r1","attempt":0,"max_attempts":3},"version":1}`
		req := httptest.NewRequest("POST", "/api/inngest?fnId=p-"+fn+"&stepId=step", strings.NewReader(body))
		rec := httptest.NewRecorder()
		c.Serve().ServeHTTP(rec, req)
		return rec.Code, rec.Header().Get("X-Inngest-No-Retry"), rec.Body.String()
	}
	code, noRetry, body := call("in-step")
	var ops []struct {
		Op    string `json:"op"`
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	json.Unmarshal([]byte(body), &ops)
	if code != 206 || noRetry != "false" || len(ops) != 1 || ops[0].Op != "StepError" || !strings.Contains(ops[0].Error.Message, "step exploded") {
		t.Fatalf("a panicking step: %d no-retry=%s %s", code, noRetry, body)
	}
	code, noRetry, body = call("in-function")
	if code != 500 || noRetry != "false" || !strings.Contains(body, "function exploded") {
		t.Fatalf("a panicking function: %d no-retry=%s %s", code, noRetry, body)
	}
}

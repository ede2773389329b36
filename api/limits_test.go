package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestInputLimits sends every input the limits of validate.go refuse: each
// gets a 4xx whose message names what is wrong, and nothing is appended to
// the log. Inputs at the limits are accepted.
func TestInputLimits(t *testing.T) {
	s := startNode(t)
	base := s.URL()
	appURL := "http://" + freeAddr(t) + "/api/inngest"
	// A function nobody triggers, for the bulk cancels.
	if resp := post(t, base+"/fn/register", registerBody(appURL, fnConfig("probe-app-idle", "")), nil); resp.status != 200 {
		t.Fatalf("register: %d %s", resp.status, resp.body)
	}

	now := time.Now().UnixMilli()
	name := func(n int) string { return strings.Repeat("n", n) }
	event := func(fields string) string { return `{"name":"app/x","data":{}` + fields + `}` }
	// withFn registers one function with extra config fields, or with its
	// trigger replaced when trigger is not "".
	withFn := func(id, trigger, extra string) string {
		fn := fnConfig(id, extra)
		if trigger != "" {
			fn = strings.Replace(fn, `{"event":"app/x"}`, trigger, 1)
		}
		return registerBody(appURL, fn)
	}
	flow := func(extra string) string { return withFn("probe-app-idle", "", ","+extra) }

	cases := []struct {
		name   string
		path   string
		body   string
		status int
		code   string
		msg    string // the error message contains this
	}{
		// Events: name, UTF-8, ts.
		{"event name over 256 bytes", "/e/k", `{"name":"` + name(257) + `"}`, 400, "invalid_event", `"name" is 257 bytes; the limit is 256`},
		{"event name with a NUL", "/e/k", `{"name":"app/\u0000x"}`, 400, "invalid_event", `"name" contains a control character`},
		{"event name with a newline", "/e/k", `{"name":"app/\nx"}`, 400, "invalid_event", `"name" contains a control character`},
		{"event name not UTF-8", "/e/k", "{\"name\":\"app/\xff\"}", 400, "invalid_event", "event 0 is not valid UTF-8 (byte 13"},
		{"event data not UTF-8", "/e/k", "{\"name\":\"a\",\"data\":{\"k\":\"\xc3\x28\"}}", 400, "invalid_event", `event 0 "data" is not valid UTF-8`},
		{"second event's user not UTF-8", "/e/k", "[{\"name\":\"a\"},{\"name\":\"a\",\"user\":{\"k\":\"\xed\xa0\x80\"}}]", 400, "invalid_event", `event 1 "user" is not valid UTF-8`},
		{"event user a string", "/e/k", event(`,"user":"u1"`), 400, "invalid_event", `"user" must be an object`},
		{"event ts negative", "/e/k", event(`,"ts":-1`), 400, "invalid_event", `"ts" is -1: must not be negative`},
		{"event ts in µs", "/e/k", event(fmt.Sprintf(`,"ts":%d`, now*1000)), 400, "invalid_event", "more than a year ahead"},
		{"event ts 1e300", "/e/k", event(`,"ts":1e300`), 400, "invalid_event", "more than a year ahead"},
		{"event ts not a number", "/e/k", event(`,"ts":true`), 400, "invalid_event", `"ts" must be a number of ms`},

		// Registration: ids, conditions, flow-control numbers.
		{"register body not UTF-8", "/fn/register", strings.Replace(registerBody(appURL, fnConfig("probe-app-a", "")), "probe-app-a", "probe-app-\xfe", 1),
			400, "invalid_json", "register body is not valid UTF-8"},
		{"appName over 256 bytes", "/fn/register", strings.Replace(registerBody(appURL), `"appName":"probe-app"`, `"appName":"`+name(257)+`"`, 1),
			400, "invalid_app", `"appName" is 257 bytes; the limit is 256`},
		{"function id over 256 bytes", "/fn/register", withFn(name(257), "", ""), 400, "invalid_function", `function 0: "id" is 257 bytes; the limit is 256`},
		{"function id with a NUL", "/fn/register", registerBody(appURL, strings.Replace(fnConfig("probe-app-a", ""), `"id":"probe-app-a"`, `"id":"probe-app-\u0000a"`, 1)), 400, "invalid_function", `"id" contains a control character`},
		{"trigger event name over 256 bytes", "/fn/register", withFn("probe-app-a", `{"event":"`+name(257)+`"}`, ""),
			400, "invalid_function", "trigger 0: event name is 257 bytes"},
		{"trigger if a string", "/fn/register", withFn("probe-app-a", `{"event":"app/x","expression":"'free'"}`, ""),
			400, "invalid_function", "gives string, not a boolean"},
		{"trigger if a number", "/fn/register", withFn("probe-app-a", `{"event":"app/x","expression":"event.data.items.size()"}`, ""),
			400, "invalid_function", "gives int, not a boolean"},
		{"cancel if of the event's type (dyn)", "/fn/register", flow(`"cancel":[{"event":"app/stop","if":"async.data.ok"}]`), 200, "", ""}, // known per event: allowed
		{"cancel if a list", "/fn/register", flow(`"cancel":[{"event":"app/stop","if":"[1]"}]`), 400, "invalid_function", "cancel 0 if: expression \"[1]\" gives list(int), not a boolean"},
		{"cancel event with a tab", "/fn/register", flow(`"cancel":[{"event":"app/\tstop"}]`), 400, "invalid_function", "cancel 0: event name contains a control character"},
		{"cancel timeout over a year", "/fn/register", flow(`"cancel":[{"event":"app/stop","timeout":"400d"}]`), 400, "invalid_function", "cancel 0 timeout (ms) must be between 0 and"},
		{"timeouts.finish over a year", "/fn/register", flow(`"timeouts":{"finish":"60w"}`), 400, "invalid_function", "timeouts.finish (ms) must be between 0 and"},
		{"concurrency over the limit", "/fn/register", flow(`"concurrency":100001`), 400, "invalid_function", "concurrency 0 limit must be between 1 and 100000, got 100001"},
		{"concurrency past int64", "/fn/register", flow(`"concurrency":1e30`), 400, "invalid_function", "concurrency must be a number"},
		{"throttle limit over the limit", "/fn/register", flow(`"throttle":{"limit":1000000,"period":"1m"}`), 400, "invalid_function", "throttle limit must be between 1 and 100000"},
		{"throttle burst negative", "/fn/register", flow(`"throttle":{"limit":1,"period":"1m","burst":-1}`), 400, "invalid_function", "throttle burst must be between 0 and 100000, got -1"},
		{"throttle burst huge", "/fn/register", flow(`"throttle":{"limit":1,"period":"1m","burst":9000000000}`), 400, "invalid_function", "throttle burst must be between 0 and 100000"},
		{"throttle period over 7d", "/fn/register", flow(`"throttle":{"limit":1,"period":"8d"}`), 400, "invalid_function", "throttle period must be between 1s and 7d"},
		{"throttle period under 1s", "/fn/register", flow(`"throttle":{"limit":1,"period":"10ms"}`), 400, "invalid_function", "throttle period must be between 1s and 7d"},
		{"rateLimit limit over the limit", "/fn/register", flow(`"rateLimit":{"limit":100001,"period":"1h"}`), 400, "invalid_function", "rateLimit limit must be between 1 and 100000"},
		{"rateLimit period over 24h", "/fn/register", flow(`"rateLimit":{"limit":1,"period":"25h"}`), 400, "invalid_function", "rateLimit period must be between 1s and 1d"},
		{"debounce timeout over a year", "/fn/register", flow(`"debounce":{"period":"1m","timeout":"400d"}`), 400, "invalid_function", "debounce timeout (ms) must be between"},
		{"batch maxSize negative", "/fn/register", flow(`"batchEvents":{"maxSize":-5,"timeout":"5s"}`), 400, "invalid_function", "batchEvents maxSize must be positive"},
		{"batch maxSize over 100", "/fn/register", flow(`"batchEvents":{"maxSize":101,"timeout":"5s"}`), 400, "invalid_function", "batchEvents maxSize must be between 1 and 100, got 101"},
		{"batch timeout over 60s", "/fn/register", flow(`"batchEvents":{"maxSize":10,"timeout":"2m"}`), 400, "invalid_function", "batchEvents timeout must be between 1s and 60s"},
		{"batch if a string", "/fn/register", flow(`"batchEvents":{"maxSize":10,"timeout":"5s","if":"event.name + 'x'"}`), 400, "invalid_function", "batchEvents if: expression \"event.name + 'x'\" gives string, not a boolean"},

		// Bulk cancel.
		{"bulk cancel of an unknown function", "/v1/functions/nope/cancel", `{}`, 404, "function_not_found", `no function "nope"`},
		{"bulk cancel matching nothing", "/v1/functions/probe-app-idle/cancel", `{"reason":"x"}`, 200, "", ""},
		{"bulk cancel of an empty range", "/v1/functions/probe-app-idle/cancel", `{"from":"2020-01-01T00:00:00Z","to":"2020-01-02T00:00:00Z"}`, 200, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := position(s)
			resp := post(t, base+tc.path, tc.body, nil)
			if resp.status != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.status, tc.status, resp.body)
			}
			m := resp.json(t)
			if tc.status == 200 {
				if tc.path == "/fn/register" {
					return // an accepted config: the log may grow
				}
				if got := string(resp.body); got != `{"data":{"cancelled":[]}}`+"\n" {
					t.Errorf("body %s", got)
				}
			} else {
				if m["code"] != tc.code || m["status"] != float64(tc.status) {
					t.Errorf("code %v status %v, want %s %d: %s", m["code"], m["status"], tc.code, tc.status, resp.body)
				}
				if msg, _ := m["error"].(string); !strings.Contains(msg, tc.msg) {
					t.Errorf("error %q does not say %q", msg, tc.msg)
				}
			}
			if after := position(s); after != before {
				t.Errorf("the log grew: %+v -> %+v", before, after)
			}
		})
	}
}

// TestInputsAtTheLimits: the largest accepted values go through.
func TestInputsAtTheLimits(t *testing.T) {
	s := startNode(t)
	base := s.URL()
	appURL := "http://" + freeAddr(t) + "/api/inngest"
	now := time.Now().UnixMilli()
	cases := []struct {
		name, path, body string
	}{
		{"event name of 256 bytes", "/e/k", `{"name":"` + strings.Repeat("n", 256) + `"}`},
		{"event name in UTF-8", "/e/k", `{"name":"app/événement","data":{"k":"日本"}}`},
		{"event ts 0 (now)", "/e/k", `{"name":"a","ts":0}`},
		{"event ts 300 days ahead", "/e/k", fmt.Sprintf(`{"name":"a","ts":%d}`, now+300*24*3600*1000)},
		{"function id of 256 bytes", "/fn/register", registerBody(appURL, fnConfig(strings.Repeat("f", 256), ""))},
		{"flow control at its limits", "/fn/register", registerBody(appURL, fnConfig("probe-app-a",
			`,"concurrency":100000,"throttle":{"limit":100000,"period":"7d","burst":100000},`+
				`"rateLimit":{"limit":100000,"period":"24h"},"timeouts":{"start":"366d","finish":"366d"}`),
			fnConfig("probe-app-b", `,"batchEvents":{"maxSize":100,"timeout":"60s","if":"event.data.ok"}`),
			fnConfig("probe-app-c", `,"throttle":{"limit":1,"period":"1s","burst":0},"debounce":{"period":"1s","timeout":"366d"}`))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if resp := post(t, base+tc.path, tc.body, nil); resp.status != 200 {
				t.Fatalf("status %d: %s", resp.status, resp.body)
			}
		})
	}
}

// A bulk cancel that matches a run proposes and cancels it.
func TestBulkCancelMatchingARun(t *testing.T) {
	s := startNode(t)
	base := s.URL()
	appURL := "http://" + freeAddr(t) + "/api/inngest"
	if resp := post(t, base+"/fn/register", registerBody(appURL, fnConfig("probe-app-a", "")), nil); resp.status != 200 {
		t.Fatalf("register: %d %s", resp.status, resp.body)
	}
	if resp := post(t, base+"/e/k", `{"name":"app/x"}`, nil); resp.status != 200 {
		t.Fatalf("send: %d %s", resp.status, resp.body)
	}
	resp := post(t, base+"/v1/functions/probe-app-a/cancel", `{}`, nil)
	var out struct {
		Data struct {
			Cancelled []string `json:"cancelled"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil || resp.status != 200 || len(out.Data.Cancelled) != 1 {
		t.Fatalf("bulk cancel: %d %s", resp.status, resp.body)
	}
	if r, _ := s.FSM.Run(out.Data.Cancelled[0]); r == nil || r.Status != "cancelled" {
		t.Fatalf("run after the bulk cancel: %+v", r)
	}
}

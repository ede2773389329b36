package api

import (
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// TestRegisterThrottleRecordsInngestAdmission: the registration records a
// throttle that starts limit×max(burst,1) runs at once (fsm.Throttle), so
// `limit: 3, period: "1m"` starts 3 of 5 events at once, as Inngest does.
func TestRegisterThrottleRecordsInngestAdmission(t *testing.T) {
	cases := []struct {
		throttle string
		want     fsm.RateSpec
	}{
		{`{"limit":3,"period":"1m"}`, fsm.RateSpec{Limit: 3, PeriodMs: 60000, Burst: 2}},
		{`{"limit":3,"period":"1m","burst":2,"key":"event.data.k"}`, fsm.RateSpec{Limit: 3, PeriodMs: 60000, Key: "event.data.k", Burst: 5}},
		{`{"limit":1,"period":"1m30s"}`, fsm.RateSpec{Limit: 1, PeriodMs: 90000}},
	}
	for _, c := range cases {
		body := `{"url":"http://a/api","appName":"a","functions":[{"id":"f","name":"f",` +
			`"triggers":[{"event":"go"}],"steps":{"step":{"id":"step","runtime":{"url":"http://a/api"}}},` +
			`"throttle":` + c.throttle + `}]}`
		rec, err := parseRegister([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", c.throttle, err)
		}
		if got := rec.Functions[0].Throttle; got == nil || *got != c.want {
			t.Fatalf("%s: recorded %+v, want %+v", c.throttle, got, c.want)
		}
		if err := checkFunction(&rec.Functions[0]); err != nil {
			t.Fatalf("%s: %v", c.throttle, err)
		}
	}
}

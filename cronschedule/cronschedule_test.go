package cronschedule

import (
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	base := time.Date(2026, 1, 1, 1, 30, 0, 0, time.UTC)
	cases := []struct {
		spec string
		want time.Time
	}{
		{"*/5 * * * *", time.Date(2026, 1, 1, 1, 35, 0, 0, time.UTC)},
		{"0 3 * * *", time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)},
		{"TZ=Europe/Paris 0 3 * * *", time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)}, // 02:30 in Paris now; 03:00 CET = 02:00 UTC
		{"@hourly", time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		got, err := Next(c.spec, base)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("%s: got %v, %v; want %v", c.spec, got.UTC(), err, c.want)
		}
	}
	for _, bad := range []string{"", "61 * * * *", "TZ=Nowhere/Land 0 3 * * *", "* * *"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

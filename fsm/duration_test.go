package fsm_test

import (
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// TestParseDurationMsIsExact: decimal fractions sum exactly, the way every
// CPU computes them, and round up to whole ms only once, at the end.
func TestParseDurationMsIsExact(t *testing.T) {
	cases := []struct {
		in   string
		want int64
	}{
		{"0.27m", 16_200}, // 0.27*60000 is 16200.000000000002 in floats: 16201
		{"0.017m", 1_020}, // floats: 1021
		{"1.1s", 1100},
		{"0.1s0.2s", 300},
		{"2.3s", 2300},
		{"4.35m", 261_000},
		{"1.15h", 4_140_000},
		{"0.7d", 60_480_000},
		{"1m30s", 90_000},
		{"1.5m", 90_000},
		{".5s", 500},
		{"5.s", 5000},
		{"1.000001ms", 2},
		{"999999ns1ns", 1},
		{"0.5ns0.5ns", 1},
		{"1000000ns", 1},
		{"1000001ns", 2},
		{"0.001s", 1},
		{"0.0001s", 1},
		{"9007199254740992ms", 1 << 53},
	}
	for _, c := range cases {
		got, err := fsm.ParseDurationMs(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseDurationMs(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{".s", "..5s", "1..s", "9007199254740993ms", "1.2.3s", "5", "1e3s"} {
		if got, err := fsm.ParseDurationMs(in); err == nil {
			t.Errorf("ParseDurationMs(%q) = %d, want an error", in, got)
		}
	}
}

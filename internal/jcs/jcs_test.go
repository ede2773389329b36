package jcs

import (
	"math"
	"testing"
)

func TestFormatNumber(t *testing.T) {
	// Values from RFC 8785 Appendix B and ECMAScript's Number#toString.
	for _, c := range []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{1, "1"},
		{-1.5, "-1.5"},
		{1e21, "1e+21"},
		{1e20, "100000000000000000000"},
		{1e-7, "1e-7"},
		{1e-6, "0.000001"},
		{0.30000000000000004, "0.30000000000000004"},
		{5e-324, "5e-324"},
		{1.7976931348623157e308, "1.7976931348623157e+308"},
		{9007199254740993, "9007199254740992"},
		{295147905179352830000, "295147905179352830000"},
		{4.5e-7, "4.5e-7"},
		{123.456, "123.456"},
		{1795834917795000000, "1795834917795000000"},
	} {
		if got := FormatNumber(c.in); got != c.want {
			t.Errorf("FormatNumber(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestTransform(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"b":1,"a":[true,false,null]}`, `{"a":[true,false,null],"b":1}`},
		{" { \"z\" : 1.0 , \"a\":\"x\" } ", `{"a":"x","z":1}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`"<>&\u2028\u00e9\n\u001f"`, "\"<>&\u2028\u00e9\\n\\u001f\""},
		{`{"\ud83d\ude00":1,"\ufb33":2}`, "{\"\U0001F600\":1,\"\ufb33\":2}"}, // UTF-16 order, not UTF-8
		{`[1e2,-0,0.0000001]`, `[100,0,1e-7]`},
	} {
		got, err := Transform([]byte(c.in))
		if err != nil {
			t.Fatalf("Transform(%s): %v", c.in, err)
		}
		if string(got) != c.want {
			t.Errorf("Transform(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a":1}x`, `[1,]`, `1e999`} {
		if _, err := Transform([]byte(bad)); err == nil {
			t.Errorf("Transform(%q) accepted", bad)
		}
	}
}

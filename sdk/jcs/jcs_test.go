package jcs

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
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
		{`"a\u0041\/\u00e9"`, "\"aA/\u00e9\""},
		{`"\ud800x"`, `"\ud800x"`}, // a lone surrogate stays one, as in JSON.stringify
		{"\"\xff\"", "\"\ufffd\""}, // invalid UTF-8 reads as U+FFFD
		{`{"b":{"d":1,"c":2},"a":[{"z":0,"y":1}]}`, `{"a":[{"y":1,"z":0}],"b":{"c":2,"d":1}}`},
		{`{"b":1,"a":2,"b":3}`, `{"a":2,"b":3}`},
		{`{"a\"":1,"a":2}`, `{"a":2,"a\"":1}`},
		{`123456789012345678`, `123456789012345680`},
		{`[ ]`, `[]`},
		{`{ }`, `{}`},
	} {
		got, err := Transform([]byte(c.in))
		if err != nil {
			t.Fatalf("Transform(%s): %v", c.in, err)
		}
		if string(got) != c.want {
			t.Errorf("Transform(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a":1}x`, `[1,]`, `1e999`, `01`, `1.`, `-`, `.5`, `tru`, `nul`,
		"\"a\x01\"", `"\x"`, `"\u12"`, `{"a" 1}`, `{a:1}`, `[1 2]`, `{"a":1,}`, `"abc`} {
		if _, err := Transform([]byte(bad)); err == nil {
			t.Errorf("Transform(%q) accepted", bad)
		}
	}
}

// Whatever the input, the output means the same to encoding/json and is
// its own canonical form.
func FuzzTransform(f *testing.F) {
	for _, seed := range []string{`{"b":[1,2.5,{"y":null,"x":true}],"a":"\u00e9\n"}`, `[1e21,-0.0,"\ud83d\ude00"]`, `"x"`, `{"a":1,"a":2}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Transform(in)
		if err != nil {
			if json.Valid(in) && !strings.Contains(err.Error(), "out of range") && !strings.Contains(err.Error(), "nested") {
				t.Fatalf("valid JSON refused: %q: %v", in, err)
			}
			return
		}
		if !json.Valid(in) {
			t.Fatalf("invalid JSON accepted: %q -> %q", in, out)
		}
		again, err := Transform(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", in, out, again, err)
		}
		var a, b any
		if json.Unmarshal(in, &a) == nil && json.Unmarshal(out, &b) == nil && !bytes.Contains(in, []byte(`\u`)) && !reflect.DeepEqual(a, b) {
			t.Fatalf("meaning changed: %q -> %q", in, out)
		}
	})
}

package expr

import "testing"

func TestMatch(t *testing.T) {
	ev := []byte(`{"name":"app/user.signup","data":{"plan":"pro","user_id":"u1","n":3}}`)
	as := []byte(`{"name":"app/profile.done","data":{"user_id":"u1","n":3.0}}`)
	cases := []struct {
		src  string
		want bool
		err  bool
	}{
		{"", true, false},
		{"event.data.plan != 'free'", true, false},
		{"event.data.plan == 'free'", false, false},
		{"async.data.user_id == event.data.user_id", true, false},
		{"event.data.n == async.data.n", true, false},
		{"event.data.n > 2", true, false},
		{"event.data.plan.startsWith('p')", true, false},
		{"event.data.missing == 1", false, true},
		{"event.data.plan", false, true}, // not a boolean
	}
	for _, c := range cases {
		got, err := Match(c.src, ev, as)
		if (err != nil) != c.err || (err == nil && got != c.want) {
			t.Errorf("%q: got %v, %v; want %v (error %v)", c.src, got, err, c.want, c.err)
		}
	}
	if _, err := Compile("event.data.plan =="); err == nil {
		t.Error("a syntax error compiled")
	}
}

func TestCompileCondition(t *testing.T) {
	cases := []struct {
		src string
		ok  bool
	}{
		{"event.data.plan != 'free'", true},
		{"event.data.flag", true}, // dyn: known only per event
		{"true", true},
		{"event.data.tags.exists(t, t == 'a')", true},
		{"'free'", false},
		{"1 + 2", false},
		{"event.data.plan.size()", false},
		{"null", false},
		{"[1, 2]", false},
		{"event.data.x ==", false}, // does not compile at all
	}
	for _, c := range cases {
		_, err := CompileCondition(c.src)
		if (err == nil) != c.ok {
			t.Errorf("%q: error %v, want ok=%v", c.src, err, c.ok)
		}
	}
}

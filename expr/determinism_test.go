package expr

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// manyKeys is an event whose maps have enough keys for Go's random map
// order to show in any comprehension that follows it.
func manyKeys() []byte {
	data := map[string]any{}
	nested := map[string]any{}
	for i := range 40 {
		data[fmt.Sprintf("k%02d", i)] = i
		nested[fmt.Sprintf("n%02d", i)] = fmt.Sprintf("v%d", i%7)
	}
	data["nested"] = nested
	data["list"] = []any{nested, map[string]any{"b": 1, "a": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": 9}}
	data["s"] = "x"
	js, _ := json.Marshal(map[string]any{"name": "app/e", "data": data})
	return js
}

// determinismCorpus holds expressions of the kinds functions carry: keys
// (concurrency, throttle, rate limit, debounce, batch, singleton,
// idempotency, priority) and conditions, with comprehensions over maps.
var determinismCorpus = []string{
	`event.data.map(k, k)`,
	`event.data.nested.map(k, event.data.nested[k])`,
	`event.data.nested.map(k, k + '=' + event.data.nested[k]).join(',')`,
	`event.data.filter(k, k.startsWith('k1'))`,
	`event.data.nested.filter(k, event.data.nested[k] == 'v3')`,
	`event.data.nested.map(k, k.endsWith('1'), k)`,
	`event.data.list.map(m, m.map(k, k))`,
	`event.data.list[1].map(k, k)[0]`,
	`{'b': event.data.s, 'a': 1, 'c': 2, 'd': 3, 'e': 4, 'f': 5, 'g': 6, 'h': 7, 'i': 8}.map(k, k)`,
	`[event.data.nested, event.data.nested].map(m, m.filter(k, k < 'n05'))`,
	`event.data.nested.map(k, k).size()`,
	`event.data.nested`,
	`{'b': event.data.k01, 'a': event.data.k02, 'c': event.data.nested}`,
	`[event.data.nested]`,
	`event.data.list.map(m, m)`,
	`[event.data.list, {'x': event.data.list}]`,
	`event.data.list`,
	`'%s'.format([event.data.nested])`,
	`event.data.nested.map(k, k) + event.data.list[1].map(k, k)`,
	// conditions
	`event.data.map(k, k)[0] == 'k00'`,
	`event.data.nested.all(k, k.startsWith('n'))`,
	`event.data.exists(k, event.data[k] > 38)`,
	`event.data.exists_one(k, k == 'k07')`,
	`event.data.nested.existsOne(k, event.data.nested[k] == 'v6')`,
	`event.data.filter(k, k.endsWith('1')).size() == 4`,
	`event.data.map(k, k).join('').contains('k39')`,
}

// TestEvaluationIsDeterministic evaluates each expression of the corpus
// many times on an event with many keys: every replica applying the same
// record must derive the same key or condition.
func TestEvaluationIsDeterministic(t *testing.T) {
	js := manyKeys()
	for _, src := range determinismCorpus {
		p, err := Compile(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		seen := map[string]int{}
		for range 200 {
			vars, err := Vars(js, js)
			if err != nil {
				t.Fatal(err)
			}
			v, err := p.Eval(vars)
			seen[fmt.Sprint(v, err)]++
		}
		if len(seen) != 1 {
			var outs []string
			for o, n := range seen {
				if len(outs) < 3 {
					outs = append(outs, fmt.Sprintf("%dx %.80s", n, o))
				}
			}
			t.Errorf("%s gave %d results in 200 evaluations:\n  %s", src, len(seen), strings.Join(outs, "\n  "))
		}
	}
}

// TestComprehensionsIterateMapsInKeyOrder pins the order, and that lists
// keep theirs and their element type.
func TestComprehensionsIterateMapsInKeyOrder(t *testing.T) {
	ev := []byte(`{"data":{"c":1,"a":2,"b":3,"tags":["z","y"]}}`)
	cases := []struct{ src, want string }{
		{`event.data.map(k, k)`, `[a b c tags]`},
		{`event.data.filter(k, k != 'a')`, `[b c tags]`},
		{`event.data.tags.map(t, t)`, `[z y]`},
		{`{2: 'x', 1: 'y'}.map(k, k)`, `[1 2]`},
		{`{true: 1, false: 2}.map(k, k)`, `[false true]`},
		{`{2u: 'x', 1u: 'y'}.map(k, k)`, `[1 2]`},
	}
	for _, c := range cases {
		p, err := Compile(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		vars, _ := Vars(ev, nil)
		v, err := p.Eval(vars)
		if got := fmt.Sprint(v); err != nil || got != c.want {
			t.Errorf("%s = %s, %v; want %s", c.src, got, err, c.want)
		}
	}
	if p, _ := Compile(`[1, 2].map(x, x + 1)`); p == nil || p.out.String() != "list(int)" {
		t.Errorf("a list's comprehension lost its element type: %v", p.out)
	}
	_, err := Compile(`'abc'.map(x, x)`)
	if err == nil || !strings.Contains(err.Error(), "cannot be range of a comprehension") {
		t.Errorf("a string range: %v", err)
	}
}

// TestKeysKeepTheirForm: a result that printed the same way on every
// evaluation before (no CEL map of two or more entries inside) still prints
// as it did, so keys already derived from records in the log do not change.
func TestKeysKeepTheirForm(t *testing.T) {
	js := []byte(`{"data":{"a":1,"b":"x","tags":["t1","t2"],"m":{"k":1,"j":2},"l":[{"p":1,"q":2}]}}`)
	for _, src := range []string{
		`event.data`, `event.data.tags`, `event.data.tags.map(t, t)`, `[1, 2]`, `{'a': [1, 2]}`,
		`[{'a': 1}]`, `{'b': 1, 'a': 2}`, `{'a': {'b': 1}}`, `event.data.m`, `event.data.l`,
		`[event.data.a, event.data.b]`, `event.data.b + '-' + string(event.data.a)`, `event.data.a`,
	} {
		p, err := Compile(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		vars, _ := Vars(js, nil)
		raw, _, err := p.prg.Eval(vars)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got, _ := p.Eval(vars)
		if fmt.Sprint(got) != fmt.Sprint(raw.Value()) {
			t.Errorf("%s prints %v, printed %v", src, got, raw.Value())
		}
	}
}

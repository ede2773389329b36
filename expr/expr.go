// Package expr compiles and evaluates the CEL expressions that functions
// carry: trigger "if" filters, waitForEvent "if" matches and cancelOn
// conditions. Variables are the ones the Inngest SDK expects: `event` (the
// run's triggering event) and `async` (the candidate incoming event).
//
// Evaluation is pure and deterministic (comprehensions over maps iterate in
// key order: see orderedRange), so the FSM may call it from Apply.
// Compiled programs are cached by source text: compiling is far dearer than
// evaluating, and the same few expressions are evaluated for every event.
package expr

import (
	"cmp"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/parser"
)

// Program is a compiled expression.
type Program struct {
	src string
	prg cel.Program
	out *cel.Type // the checked result type; dyn when it depends on the event
}

var (
	env     *cel.Env
	envErr  error
	envOnce sync.Once

	cacheMu sync.Mutex
	cache   = map[string]*Program{}
)

const maxCache = 10000

func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		env, envErr = cel.NewEnv(
			cel.Variable("event", cel.DynType),
			cel.Variable("async", cel.DynType),
			cel.CrossTypeNumericComparisons(true),
			ext.Strings(),
			// Comprehensions iterate in a fixed order (see orderedRange).
			// Two-variable comprehensions (ext.TwoVarComprehensions) fold
			// maps in Go's order and must stay off.
			cel.ClearMacros(),
			cel.Macros(parser.HasMacro,
				ordered(parser.AllMacro, parser.MakeAll),
				ordered(parser.ExistsMacro, parser.MakeExists),
				ordered(parser.ExistsOneMacro, parser.MakeExistsOne),
				ordered(parser.ExistsOneMacroNew, parser.MakeExistsOne),
				ordered(parser.MapMacro, parser.MakeMap),
				ordered(parser.MapFilterMacro, parser.MakeMap),
				ordered(parser.FilterMacro, parser.MakeFilter)),
			cel.Function(orderedRange,
				cel.Overload("cairn_ordered_list", []*cel.Type{cel.ListType(cel.TypeParamType("E"))},
					cel.ListType(cel.TypeParamType("E"))),
				cel.Overload("cairn_ordered_map", []*cel.Type{cel.MapType(cel.TypeParamType("K"), cel.TypeParamType("V"))},
					cel.ListType(cel.TypeParamType("K"))),
				cel.SingletonUnaryBinding(orderedValues)),
		)
	})
	return env, envErr
}

// orderedRange is the range every comprehension macro iterates over. cel-go
// walks a map in Go's map order, which is random: `event.data.map(k, k)`
// gave a different list from one evaluation to the next, so replicas would
// derive different concurrency, throttle or idempotency keys from one
// event. The macros wrap their range in this function, which gives a list
// as it is and a map's keys in sorted order; the result is what cel-go gave
// for every expression whose result did not depend on the order (all and
// exists, sizes, sums), so records already in the log evaluate as before.
// The name starts with '@', which no source text can spell.
const orderedRange = "@cairn_ordered"

// rangeMsg finds orderedRange refusing a range in a checker error, so that
// the message says what cel-go says without it.
var rangeMsg = regexp.MustCompile(`found no matching overload for '` + orderedRange + `' applied to '\((.*?)\)'`)

// ordered is the standard macro m with its range wrapped in orderedRange.
func ordered(m parser.Macro, expand parser.MacroExpander) parser.Macro {
	return parser.NewReceiverMacro(m.Function(), m.ArgCount(),
		func(eh parser.ExprHelper, target ast.Expr, args []ast.Expr) (ast.Expr, *cel.Error) {
			return expand(eh, eh.NewCall(orderedRange, target), args)
		})
}

// orderedValues implements orderedRange.
func orderedValues(v ref.Val) ref.Val {
	switch x := v.(type) {
	case traits.Lister:
		return x
	case traits.Mapper:
		var keys []ref.Val
		for it := x.Iterator(); it.HasNext() == types.True; {
			keys = append(keys, it.Next())
		}
		slices.SortFunc(keys, compareKeys)
		return types.NewRefValList(types.DefaultTypeAdapter, keys)
	}
	return types.MaybeNoSuchOverloadErr(v)
}

// compareKeys orders map keys (bool, int, uint or string in CEL): by kind,
// then by value.
func compareKeys(a, b ref.Val) int {
	rank := func(v ref.Val) int {
		switch v.(type) {
		case types.Bool:
			return 0
		case types.Int:
			return 1
		case types.Uint:
			return 2
		case types.String:
			return 3
		}
		return 4
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return ra - rb
	}
	switch x := a.(type) {
	case types.Bool:
		y := b.(types.Bool)
		switch {
		case x == y:
			return 0
		case !bool(x):
			return -1
		}
		return 1
	case types.Int:
		return cmp.Compare(x, b.(types.Int))
	case types.Uint:
		return cmp.Compare(x, b.(types.Uint))
	case types.String:
		return cmp.Compare(x, b.(types.String))
	}
	return strings.Compare(fmt.Sprint(a.Value()), fmt.Sprint(b.Value()))
}

// Compile parses and checks src, or returns an error that says what is wrong.
func Compile(src string) (*Program, error) {
	cacheMu.Lock()
	p, ok := cache[src]
	cacheMu.Unlock()
	if ok {
		return p, nil
	}
	e, err := celEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := e.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, fmt.Errorf("expression %q: %s", src, rangeMsg.ReplaceAllString(iss.Err().Error(),
			"expression of type '$1' cannot be range of a comprehension (must be list, map, or dynamic)"))
	}
	prg, err := e.Program(ast, cel.CostLimit(100000))
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", src, err)
	}
	p = &Program{src: src, prg: prg, out: ast.OutputType()}
	cacheMu.Lock()
	if len(cache) >= maxCache {
		cache = map[string]*Program{}
	}
	cache[src] = p
	cacheMu.Unlock()
	return p, nil
}

// CompileCondition compiles src and refuses it unless it can give a
// boolean: a condition such as `event.data.plan` (a string) would otherwise
// be accepted at registration and then fail on every event.
func CompileCondition(src string) (*Program, error) {
	p, err := Compile(src)
	if err != nil {
		return nil, err
	}
	if t := p.out; t != nil && !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, fmt.Errorf("expression %q gives %s, not a boolean", src, t)
	}
	return p, nil
}

// Vars builds the variables from raw event JSON (nil leaves one unset, as
// an empty map).
func Vars(event, async []byte) (map[string]any, error) {
	ev, err := Decode(event)
	if err != nil {
		return nil, fmt.Errorf("event is not JSON: %w", err)
	}
	as, err := Decode(async)
	if err != nil {
		return nil, fmt.Errorf("async is not JSON: %w", err)
	}
	return VarsOf(ev, as), nil
}

// Decode reads raw event JSON into the value expressions see (nil for no
// event). Decode an event once and evaluate every expression that reads it
// over the value (VarsOf): it is only read, never changed.
func Decode(raw []byte) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var v any
	err := json.Unmarshal(raw, &v)
	return v, err
}

// VarsOf builds the variables from decoded events (nil: an empty map).
func VarsOf(event, async any) map[string]any {
	if event == nil {
		event = map[string]any{}
	}
	if async == nil {
		async = map[string]any{}
	}
	return map[string]any{"event": event, "async": async}
}

// Eval evaluates the program to a Go value.
func (p *Program) Eval(vars map[string]any) (any, error) {
	out, _, err := p.prg.Eval(vars)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", p.src, err)
	}
	if printsInMapOrder(out.Value()) {
		return plain(out), nil
	}
	return out.Value(), nil
}

// printsInMapOrder tells whether fmt (which keys print with) would reach a
// CEL map of two or more entries inside v: fmt sorts Go maps, but a CEL map
// prints itself in Go's random map order, so `[event.data]` gave a
// different key on each replica. Other values keep the form they always
// printed in, so keys already derived from the log do not change.
func printsInMapOrder(v any) bool {
	switch x := v.(type) {
	case []ref.Val:
		return slices.ContainsFunc(x, celMapInside)
	case map[ref.Val]ref.Val:
		for _, e := range x {
			if celMapInside(e) {
				return true
			}
		}
	}
	return false
}

// celMapInside tells whether a CEL value is or holds a map of two or more
// entries.
func celMapInside(v ref.Val) bool {
	switch x := v.(type) {
	case traits.Mapper:
		if x.Size() != types.IntZero && x.Size() != types.IntOne {
			return true
		}
		for it := x.Iterator(); it.HasNext() == types.True; {
			if e, ok := x.Find(it.Next()); ok && celMapInside(e) {
				return true
			}
		}
	case traits.Lister:
		for i := types.Int(0); i < x.Size().(types.Int); i++ {
			if celMapInside(x.Get(i)) {
				return true
			}
		}
	}
	return false
}

// plain converts a CEL value to Go maps (string keys), slices and scalars,
// which fmt prints in one order.
func plain(v ref.Val) any {
	switch x := v.(type) {
	case traits.Mapper:
		m := map[string]any{}
		for it := x.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			e, _ := x.Find(k)
			m[fmt.Sprint(k.Value())] = plain(e)
		}
		return m
	case traits.Lister:
		var l []any
		for i := types.Int(0); i < x.Size().(types.Int); i++ {
			l = append(l, plain(x.Get(i)))
		}
		return l
	}
	return v.Value()
}

// Bool evaluates the program as a condition; a non-boolean result is an error.
func (p *Program) Bool(vars map[string]any) (bool, error) {
	v, err := p.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("expression %q gave %T, not a boolean", p.src, v)
	}
	return b, nil
}

// Match compiles src and evaluates it as a condition over two raw events.
// An empty src matches everything.
func Match(src string, event, async []byte) (bool, error) {
	if src == "" {
		return true, nil
	}
	p, err := Compile(src)
	if err != nil {
		return false, err
	}
	vars, err := Vars(event, async)
	if err != nil {
		return false, err
	}
	return p.Bool(vars)
}

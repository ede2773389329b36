// Package expr compiles and evaluates the CEL expressions that functions
// carry: trigger "if" filters, waitForEvent "if" matches and cancelOn
// conditions. Variables are the ones the Inngest SDK expects: `event` (the
// run's triggering event) and `async` (the candidate incoming event).
//
// Evaluation is pure and deterministic, so the FSM may call it from Apply.
// Compiled programs are cached by source text: compiling is far dearer than
// evaluating, and the same few expressions are evaluated for every event.
package expr

import (
	"encoding/json"
	"fmt"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/ext"
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
		)
	})
	return env, envErr
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
		return nil, fmt.Errorf("expression %q: %w", src, iss.Err())
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
	vars := map[string]any{"event": map[string]any{}, "async": map[string]any{}}
	for name, raw := range map[string][]byte{"event": event, "async": async} {
		if len(raw) == 0 {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%s is not JSON: %w", name, err)
		}
		vars[name] = v
	}
	return vars, nil
}

// Eval evaluates the program to a Go value.
func (p *Program) Eval(vars map[string]any) (any, error) {
	out, _, err := p.prg.Eval(vars)
	if err != nil {
		return nil, fmt.Errorf("expression %q: %w", p.src, err)
	}
	return out.Value(), nil
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

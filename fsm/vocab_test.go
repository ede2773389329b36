package fsm_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// Every call type declared in vocab.go is listed in CallTypes and has a
// known classification: the executor fires timers and claims the rest, and
// Apply refuses the other record for each, so a new type must be placed on
// one side on purpose (here, and in IsTimer if it is an app call).
func TestEveryCallTypeIsClassified(t *testing.T) {
	timer := map[string]bool{
		fsm.CallHTTP: false, fsm.CallSleep: true, fsm.CallWait: true,
		fsm.CallSignal: true, fsm.CallInvoke: true, fsm.CallTimeout: true,
	}
	file, err := parser.ParseFile(token.NewFileSet(), "vocab.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range file.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Call") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					declared = append(declared, v)
				}
			}
		}
	}
	if len(declared) == 0 {
		t.Fatal("found no call types in vocab.go")
	}
	for _, typ := range declared {
		want, ok := timer[typ]
		if !ok {
			t.Errorf("call type %q is not classified: add it to this test and check Call.IsTimer", typ)
			continue
		}
		if !slices.Contains(fsm.CallTypes, typ) {
			t.Errorf("call type %q missing from fsm.CallTypes", typ)
		}
		if got := (&fsm.Call{Type: typ}).IsTimer(); got != want {
			t.Errorf("Call{Type: %q}.IsTimer() = %v, want %v", typ, got, want)
		}
	}
	if len(fsm.CallTypes) != len(declared) {
		t.Errorf("CallTypes %v, declared %v", fsm.CallTypes, declared)
	}
}

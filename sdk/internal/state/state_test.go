package state

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/sdk/protocol"
)

// TestHashesMatchTheCapture checks step ids hash as the official SDK hashed
// them (protocol note §4.2), repeats included.
func TestHashesMatchTheCapture(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "shared", "protocol", "fixtures", "000-index.json"))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	var idx struct {
		Hashes map[string]string `json:"step_id_hashes"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Hashes) < 10 {
		t.Fatalf("only %d hashes in the index", len(idx.Hashes))
	}
	r := &Run{}
	for id, want := range idx.Hashes {
		if strings.Contains(id, ":") {
			continue // repeats are checked below, in order
		}
		if got := r.Next(id).Hash; got != want {
			t.Errorf("%s hashes to %s, want %s", id, got, want)
		}
	}
	r = &Run{}
	for _, key := range []string{"process-item", "process-item:1", "process-item:2"} {
		s := r.Next("process-item")
		if s.Hash != idx.Hashes[key] {
			t.Errorf("use %d of process-item hashes to %s, want %s (%s)", s.Index, s.Hash, idx.Hashes[key], key)
		}
	}
}

// TestParallelPlansEveryBranch: in a discovery call, each branch's first
// new step is planned and the call stops once all branches have been seen.
func TestParallelPlansEveryBranch(t *testing.T) {
	r := &Run{Target: DiscoveryStep}
	var reached []string
	_, _, stopped := Call(func() (any, error) {
		err := r.Parallel([]func() error{
			func() error {
				s := r.Next("a")
				reached = append(reached, "a")
				if r.Decide(s, true) != Plan {
					t.Error("a parallel step in a discovery call must be planned")
				}
				r.Report(s.Op(protocol.OpStepPlanned, "a"))
				return nil
			},
			func() error {
				s := r.Next("b")
				reached = append(reached, "b")
				r.Report(s.Op(protocol.OpStepPlanned, "b"))
				return nil
			},
		})
		return nil, err
	})
	o := r.Outcome()
	if !stopped || len(o.Ops) != 2 || strings.Join(reached, ",") != "a,b" {
		t.Fatalf("stopped %v, ops %v, reached %v", stopped, o.Ops, reached)
	}
}

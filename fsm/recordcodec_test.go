package fsm

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The plain types have the records' fields and tags but not their codecs.
// A plain record's nested LeaseNext, LeaseRoom or Op still uses its codec:
// those are checked against reflection first, on their own.
type (
	plainLeaseRoom         LeaseRoom
	plainOp                Op
	plainLeaseNext         LeaseNext
	plainEventAccepted     EventAccepted
	plainCallClaimed       CallClaimed
	plainCallFinished      CallFinished
	plainTimerFired        TimerFired
	plainStepsCheckpointed StepsCheckpointed
)

// The hand-written record codecs write the bytes reflection writes and read
// what it reads, nested values included.
func TestRecordCodecsMatchReflection(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 3000 {
		full := i%10 == 0
		checkRow(t, rng, full, &LeaseRoom{}, &plainLeaseRoom{})
		checkRow(t, rng, full, &Op{}, &plainOp{})
		checkRow(t, rng, full, &LeaseNext{}, &plainLeaseNext{})
		checkRow(t, rng, full, &EventAccepted{}, &plainEventAccepted{})
		checkRow(t, rng, full, &CallClaimed{}, &plainCallClaimed{})
		checkRow(t, rng, full, &CallFinished{}, &plainCallFinished{})
		checkRow(t, rng, full, &TimerFired{}, &plainTimerFired{})
		checkRow(t, rng, full, &StepsCheckpointed{}, &plainStepsCheckpointed{})
	}
}

// Records are read strictly: a key this release does not know, at the top
// or in a nested lease, room or op, fails the entry (decodeStrict), as
// reflection's DisallowUnknownFields did.
func TestRecordCodecsRefuseUnknownKeys(t *testing.T) {
	lease := map[string]any{"lease": 5, "node": "n", "boot": "b", "rooms": []any{map[string]any{"fn": "f", "n": 1}}}
	op := map[string]any{"id": "s1", "op": "StepRun", "data": []byte(`1`)}
	cases := []struct {
		kind Kind
		body map[string]any
	}{
		{KindEventAccepted, map[string]any{"at": 1, "id": "e", "name": "n", "json": []byte(`{}`), "lease": lease}},
		{KindCallClaimed, map[string]any{"at": 1, "run": "r", "call": "c", "gen": 1, "lease": 9, "node": "n", "boot": "b"}},
		{KindCallFinished, map[string]any{"at": 1, "run": "r", "call": "c", "gen": 1, "st": 206, "ops": []any{op}, "lease": lease}},
		{KindTimerFired, map[string]any{"at": 1, "run": "r", "call": "c", "gen": 1, "lease": lease}},
		{KindStepsCheckpointed, map[string]any{"at": 1, "run": "r", "call": "c", "gen": 1, "steps": []any{op}}},
	}
	decode := func(k Kind, body map[string]any) error {
		raw, err := msgpack.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		return decodeStrict(raw, newRecord(k))
	}
	for _, c := range cases {
		if err := decode(c.kind, c.body); err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
		c.body["from_the_future"] = true
		if err := decode(c.kind, c.body); err == nil || !strings.Contains(err.Error(), "from_the_future") {
			t.Fatalf("%s with an unknown key: %v", c.kind, err)
		}
		delete(c.body, "from_the_future")
	}
	lease["zz"] = 1
	if err := decode(KindTimerFired, cases[3].body); err == nil {
		t.Fatal("a lease with an unknown key decoded")
	}
	delete(lease, "zz")
	lease["rooms"] = []any{map[string]any{"fn": "f", "n": 1, "zz": 2}}
	if err := decode(KindTimerFired, cases[3].body); err == nil {
		t.Fatal("a lease room with an unknown key decoded")
	}
	op["zz"] = 1
	if err := decode(KindStepsCheckpointed, cases[4].body); err == nil {
		t.Fatal("an op with an unknown key decoded")
	}
}

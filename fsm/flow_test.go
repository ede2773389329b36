package fsm_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// TestConcurrencyNeverExceededAndReplays drives random event streams, claims
// and answers through functions with random concurrency limits (a per-key
// limit and a function-wide one) and a random throttle, and checks after
// every record that no key ever has more claimed steps than its limit. Then
// it replays the log into a fresh FSM and compares every admission decision
// and the final state.
func TestConcurrencyNeverExceededAndReplays(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			v := newVocab(t)
			perKey, fnWide := 1+rng.IntN(3), 2+rng.IntN(4)
			v.apply(vApp(vFn("app-flow", func(d *fsm.FunctionDef) {
				d.Triggers = []fsm.Trigger{{Event: "go"}}
				d.Concurrency = []fsm.ConcurrencyLimit{{Limit: perKey, Key: "event.data.k"}, {Limit: fnWide}}
				if rng.IntN(2) == 0 {
					d.Throttle = &fsm.RateSpec{Limit: 1 + rng.IntN(5), PeriodMs: 1000, Burst: rng.IntN(3)}
				}
				d.Priority = "event.data.p"
			})))
			keyOf := map[string]string{} // run → key
			type claim struct {
				run, call string
				gen       uint32
			}
			var inflight []claim
			var results [][]fsm.Result
			now := int64(1000)
			check := func() {
				byKey := map[string]int{}
				for _, c := range inflight {
					byKey[keyOf[c.run]]++
				}
				for k, n := range byKey {
					if n > perKey {
						t.Fatalf("key %s has %d claimed steps, limit %d", k, n, perKey)
					}
				}
				if len(inflight) > fnWide {
					t.Fatalf("%d claimed steps, function limit %d", len(inflight), fnWide)
				}
			}
			for i := 0; i < 800; i++ {
				now += int64(rng.IntN(300))
				switch r := rng.IntN(10); {
				case r < 3: // an event
					k := string(rune('a' + rng.IntN(3)))
					res := v.apply(vEvent(now, fmt.Sprintf("e%d", i), "go", fmt.Sprintf(`{"k":%q,"p":%d}`, k, rng.IntN(600))))
					results = append(results, res)
					for _, run := range res[0].Runs {
						keyOf[run] = k
					}
				case r < 7: // the executor claims what is due
					due, _, err := v.f.Due(now, 3, nil)
					if err != nil {
						t.Fatal(err)
					}
					for _, c := range due {
						if c.Type != fsm.CallHTTP {
							results = append(results, v.apply(&fsm.TimerFired{At: now, RunID: c.RunID, Call: c.ID, Gen: c.Gen}))
							continue
						}
						res := v.apply(&fsm.CallClaimed{At: now, RunID: c.RunID, Call: c.ID, Gen: c.Gen, LeaseUntil: now + 1e9, Node: "n", Boot: "b"})
						results = append(results, res)
						if res[0].Code == fsm.OK {
							inflight = append(inflight, claim{c.RunID, c.ID, res[0].Gen})
						}
					}
				default: // an app answers one claimed call
					if len(inflight) == 0 {
						continue
					}
					j := rng.IntN(len(inflight))
					c := inflight[j]
					inflight = append(inflight[:j], inflight[j+1:]...)
					rec := &fsm.CallFinished{At: now, RunID: c.run, Call: c.call, Gen: c.gen, Status: 206, SDK: true,
						Ops: []fsm.Op{{ID: fmt.Sprintf("s%d", i), Op: "StepRun", Data: []byte("1")}}}
					switch rng.IntN(4) {
					case 0:
						rec.Status, rec.Ops, rec.Body = 200, nil, []byte(`"done"`)
					case 1:
						rec.Ops = []fsm.Op{{ID: fmt.Sprintf("z%d", i), Op: "Sleep", Name: "500ms"}}
					}
					results = append(results, v.apply(rec))
				}
				check()
			}
			// Drain: answer everything and keep claiming; every run must end,
			// none may be left waiting for a slot that nobody holds.
			for round := 0; round < 10000; round++ {
				now += 600
				due, next, _ := v.f.Due(now, 50, nil)
				if len(due) == 0 && len(inflight) == 0 {
					if next == 0 {
						break
					}
					now = next // a throttled start or a timer ahead
					continue
				}
				for _, c := range due {
					if c.Type != fsm.CallHTTP {
						results = append(results, v.apply(&fsm.TimerFired{At: now, RunID: c.RunID, Call: c.ID, Gen: c.Gen}))
						continue
					}
					res := v.apply(&fsm.CallClaimed{At: now, RunID: c.RunID, Call: c.ID, Gen: c.Gen, LeaseUntil: now + 1e9, Node: "n", Boot: "b"})
					results = append(results, res)
					if res[0].Code == fsm.OK {
						inflight = append(inflight, claim{c.RunID, c.ID, res[0].Gen})
					}
					check()
				}
				for _, c := range inflight {
					results = append(results, v.apply(&fsm.CallFinished{At: now, RunID: c.run, Call: c.call, Gen: c.gen,
						Status: 200, SDK: true, Body: []byte(`"done"`)}))
				}
				inflight = nil
			}
			for run := range keyOf {
				if r := v.run(run); !r.Done() {
					t.Fatalf("run %s stalled: %+v", run, r)
				}
			}
			blocked := 0
			for _, r := range results {
				if r[0].Code == fsm.Rejected && r[0].Msg == "concurrency limit reached" {
					blocked++
				}
			}
			if blocked == 0 {
				t.Fatal("no claim was ever held back: the limits were not exercised")
			}
			t.Logf("limits %d per key, %d per function: %d claims held back", perKey, fnWide, blocked)
			// Replay: the same admission decisions, the same state.
			replay, _ := fsm.Open(t.TempDir(), fsm.Options{})
			defer replay.Close()
			var again [][]fsm.Result
			for _, e := range v.log {
				again = append(again, replay.ApplyEntries([]fsm.Entry{e})[0])
			}
			want := results
			got := again[1:] // the first entry synced the app
			if !reflect.DeepEqual(stripRecs(got), stripRecs(want)) {
				t.Fatal("replay gave different results")
			}
			d1, _ := v.f.StateDigest()
			d2, _ := replay.StateDigest()
			if d1 != d2 {
				t.Fatalf("replay digest %s, want %s", d2, d1)
			}
			// Followers apply committed entries in groups of any size: the
			// grouping must not change the outcome.
			grouped, _ := fsm.Open(t.TempDir(), fsm.Options{})
			defer grouped.Close()
			for i := 0; i < len(v.log); {
				n := 1 + rng.IntN(40)
				grouped.ApplyEntries(v.log[i:min(i+n, len(v.log))])
				i += n
			}
			if d3, _ := grouped.StateDigest(); d3 != d1 {
				t.Fatalf("replay in random groups: digest %s, want %s", d3, d1)
			}
		})
	}
}

// stripRecs keeps what a result decides (code, runs, generation).
func stripRecs(rs [][]fsm.Result) []string {
	var out []string
	for _, r := range rs {
		for _, x := range r {
			out = append(out, fmt.Sprintf("%v %v %d", x.Code, x.Runs, x.Gen))
		}
	}
	return out
}

package fsm_test

import (
	"math/rand"
	"reflect"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// The row cache and the batch prefetch change no outcome: a random log
// applied with them and without them (Apply reading Pebble only) gives the
// same results and the same projection, and so does the log applied again
// in random groups of entries (a batch's prefetch must not serve a row an
// earlier entry of the batch wrote). And Run and Call, which answer from
// the cache, return after every entry the rows stored.
func TestRowCacheMatchesTheStore(t *testing.T) {
	t.Run("default size", func(t *testing.T) { testRowCache(t, false) })
	// Generations of 4 rows: rows age out of the cache all the time.
	t.Run("small", func(t *testing.T) {
		fsm.SetRowCacheGen(t, 4)
		testRowCache(t, false)
	})
	// Emptied before every entry: the prefetch serves every step record.
	t.Run("prefetch only", func(t *testing.T) { testRowCache(t, true) })
}

func testRowCache(t *testing.T, resetEach bool) {
	rng := rand.New(rand.NewSource(5))
	g := &gen{t: t, rng: rng, h: newHarness(t), now: t0, reuseSteps: true}
	plain := newHarness(t)
	fsm.DisableRowCache(plain.f)
	var log []fsm.Entry
	var results [][]fsm.Result
	hits := 0
	seen := map[[2]string]bool{} // every call ever stored: true while it is
	for range 400 {
		recs := g.next()
		if resetEach {
			fsm.ResetRowCache(g.h.f)
		}
		got := g.h.apply(recs...)
		log = append(log, fsm.Entry{Index: g.h.idx, Data: encode(t, recs...)})
		results = append(results, got)
		if want := plain.apply(recs...); !reflect.DeepEqual(got, want) {
			t.Fatalf("entry %d: results %+v with the row cache, %+v without", g.h.idx, got, want)
		}
		if a, b := g.h.digest(), plain.digest(); a != b {
			t.Fatalf("entry %d: projection digest %s with the row cache, %s without", g.h.idx, a, b)
		}
		stored, err := g.h.f.RecentRuns(10000)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range stored {
			got, err := g.h.f.Run(want.ID)
			if err != nil || got == nil || !reflect.DeepEqual(*got, want) {
				t.Fatalf("entry %d: Run(%s) = %+v, %v; stored %+v", g.h.idx, want.ID, got, err, want)
			}
		}
		calls, err := fsm.StoredCalls(g.h.f)
		if err != nil {
			t.Fatal(err)
		}
		for k := range seen {
			seen[k] = false
		}
		for _, want := range calls {
			seen[[2]string{want.RunID, want.ID}] = true
			got, err := g.h.f.Call(want.RunID, want.ID)
			if err != nil || got == nil || !reflect.DeepEqual(*got, want) {
				t.Fatalf("entry %d: Call(%s, %s) = %+v, %v; stored %+v", g.h.idx, want.RunID, want.ID, got, err, want)
			}
		}
		for k, stored := range seen {
			if got, err := g.h.f.Call(k[0], k[1]); !stored && (got != nil || err != nil) {
				t.Fatalf("entry %d: Call(%s, %s) = %+v, %v; none is stored", g.h.idx, k[0], k[1], got, err)
			}
		}
		hits += len(calls)
	}
	if hits == 0 {
		t.Fatal("the log queued no call: the test compared nothing")
	}
	grouped := newHarness(t)
	var again [][]fsm.Result
	for i := 0; i < len(log); {
		n := min(1+rng.Intn(20), len(log)-i)
		again = append(again, grouped.f.ApplyEntries(log[i:i+n])...)
		i += n
	}
	if !reflect.DeepEqual(again, results) {
		t.Fatal("the log applied in groups gave other results")
	}
	if a, b := grouped.digest(), g.h.digest(); a != b {
		t.Fatalf("the log applied in groups: digest %s, want %s", a, b)
	}
}

// callsAt, the queues' batched read of calls (from the row cache, the rest
// with one seeking iterator), returns what Call returns key by key, in the
// order asked, without the keys that hold no call.
func TestCallsAtReadsLikeCall(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	g := &gen{t: t, rng: rng, h: newHarness(t), now: t0}
	for range 300 {
		g.h.apply(g.next()...)
	}
	stored, err := fsm.StoredCalls(g.h.f)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) < 10 {
		t.Fatalf("the log left %d calls: too few to test", len(stored))
	}
	var keys [][2]string
	for _, c := range stored {
		keys = append(keys, [2]string{c.RunID, c.ID})
		if rng.Intn(3) == 0 {
			keys = append(keys, [2]string{c.RunID, c.ID + "-gone"}, [2]string{c.RunID + "0", c.ID})
		}
	}
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	check := func(name string) {
		var want []fsm.Call
		for _, k := range keys {
			if c := g.h.call(k[0], k[1]); c != nil {
				want = append(want, *c)
			}
		}
		got, err := fsm.CallsAt(g.h.f, keys)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: CallsAt = %d calls, %v; Call one by one: %d calls", name, len(got), err, len(want))
		}
	}
	check("after the log")
	fsm.ResetRowCache(g.h.f)
	check("with the row cache empty")
}

// RunsCalls, one iterator seeking from run to run, reads each run's calls
// as stored (and RunCalls, which is it for one run, too): for runs with
// calls, without, unknown, given twice or out of order.
func TestRunsCallsReadsLikeRunCalls(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	g := &gen{t: t, rng: rng, h: newHarness(t), now: t0}
	for range 300 {
		g.h.apply(g.next()...)
	}
	runs, err := g.h.f.RecentRuns(1000)
	if err != nil || len(runs) < 10 {
		t.Fatalf("the log left %d runs (%v): too few to test", len(runs), err)
	}
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.ID)
		if rng.Intn(3) == 0 {
			ids = append(ids, r.ID, r.ID+"0", r.ID[:len(r.ID)-1])
		}
	}
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	got, err := g.h.f.RunsCalls(ids)
	if err != nil {
		t.Fatal(err)
	}
	// What every stored call says, by run: read apart from RunsCalls.
	stored, err := fsm.StoredCalls(g.h.f)
	if err != nil {
		t.Fatal(err)
	}
	byRun := map[string][]fsm.Call{}
	for _, c := range stored {
		byRun[c.RunID] = append(byRun[c.RunID], c)
	}
	withCalls := map[string]bool{}
	for _, id := range ids {
		want := byRun[id]
		if !reflect.DeepEqual(got[id], want) {
			t.Fatalf("run %s: RunsCalls gave %d calls, the store holds %d", id, len(got[id]), len(want))
		}
		if one, err := g.h.f.RunCalls(id); err != nil || !reflect.DeepEqual(one, want) {
			t.Fatalf("run %s: RunCalls gave %d calls (%v), the store holds %d", id, len(one), err, len(want))
		}
		if len(want) > 0 {
			withCalls[id] = true
		}
	}
	if len(withCalls) == 0 || len(got) != len(withCalls) {
		t.Fatalf("%d runs with calls, RunsCalls returned %d runs", len(withCalls), len(got))
	}
}

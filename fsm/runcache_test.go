package fsm_test

import (
	"math/rand"
	"reflect"
	"testing"
)

// Run answers from the run cache for the runs Apply wrote last: after every
// entry of a random log, each run it returns is the one stored (RecentRuns
// reads the store).
func TestRunCacheMatchesTheStore(t *testing.T) {
	g := &gen{t: t, rng: rand.New(rand.NewSource(5)), h: newHarness(t), now: t0, reuseSteps: true}
	for range 400 {
		g.h.apply(g.next()...)
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
	}
}

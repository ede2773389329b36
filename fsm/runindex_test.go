package fsm

import (
	"slices"
	"testing"
)

// Runs projected by a release before fr/ existed are indexed once when the
// projection is next opened, large rows (stored in parts) included.
func TestOpenIndexesRunsOfEarlierReleases(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string]int{}
	big := &Run{ID: "r2", FnID: "fn", CreatedAt: 20, Output: make([]byte, 3*partSize)}
	write(t, f, parts, func(tx *txn) {
		tx.put(keyRun("r1"), &Run{ID: "r1", FnID: "fn", CreatedAt: 10, Status: StatusFailed})
		tx.put(keyRun("r2"), big)
		tx.del(keyRunsIndexed) // as a projection of the earlier release
	})
	if runs, _ := f.FunctionRuns(RunQuery{FnID: "fn", To: 100}); len(runs) != 0 {
		t.Fatalf("setup: runs already indexed: %v", runs)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runs, err := f.FunctionRuns(RunQuery{FnID: "fn", To: 100})
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	if err != nil || !slices.Equal(ids, []string{"r1", "r2"}) {
		t.Fatalf("after reopening: %v %v", ids, err)
	}
	if got := stored(t, f); got[string(keyRunsIndexed)] == 0 {
		t.Fatal("no mark")
	}
}

package fsm_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// TestHugeApplyBatchKeepsEveryWrite applies tens of megabytes of entries in
// one call, as a follower catching up after a pause does, and checks that
// every write is there.
func TestHugeApplyBatchKeepsEveryWrite(t *testing.T) {
	f, err := fsm.Open(t.TempDir(), fsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pad := strings.Repeat("x", 4000)
	var entries []fsm.Entry
	for i := 1; i <= 20000; i++ {
		data, _ := fsm.EncodeEntry(&fsm.EventAccepted{At: 1000, ID: fmt.Sprintf("e%05d", i), Name: "n",
			JSON: []byte(fmt.Sprintf(`{"name":"n","data":{"p":%q}}`, pad))})
		entries = append(entries, fsm.Entry{Index: uint64(i), Data: data})
	}
	f.ApplyEntries(entries)
	for i := 1; i <= 20000; i++ {
		if ev, _ := f.Event(fmt.Sprintf("e%05d", i)); ev == nil {
			t.Fatalf("event %d lost after a huge batch", i)
		}
	}
}

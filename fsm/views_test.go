package fsm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
)

// Every view fails on a row it cannot decode, with an error naming the
// row's key, rather than skip it (some did, others failed).
func TestViewsFailOnUndecodableRows(t *testing.T) {
	bad := []byte{0xc1} // a msgpack byte that is never valid
	cases := []struct {
		key  []byte
		view func(f *FSM) error
	}{
		{keyApp("x"), func(f *FSM) error { _, err := f.Apps(); return err }},
		{keyApp("x"), func(f *FSM) error { _, err := f.App("x"); return err }},
		{keyRun("x"), func(f *FSM) error { _, err := f.RecentRuns(10); return err }},
		{keyRun("x"), func(f *FSM) error { _, err := f.Run("x"); return err }},
		{keyHistory("x", 1), func(f *FSM) error { _, err := f.History("x"); return err }},
		{keyCronFn("x"), func(f *FSM) error { _, err := f.CronFunctions(); return err }},
		{keyCall("x", "c"), func(f *FSM) error { _, err := f.Call("x", "c"); return err }},
		{[]byte("qt/short"), func(f *FSM) error { _, _, err := f.Due(1<<62, 10, nil); return err }},
		{[]byte("qf/x\x00short"), func(f *FSM) error { _, _, err := f.Due(1<<62, 10, nil); return err }},
		{[]byte("qf/short"), func(f *FSM) error { _, err := f.QueuedFunctions(); return err }},
		{[]byte("lq/short"), func(f *FSM) error { _, err := f.ClaimedBy("n"); return err }},
		{[]byte("cr/x\x00short"), func(f *FSM) error { _, err := f.LastCronFired("x"); return err }},
	}
	for _, c := range cases {
		f, err := Open(t.TempDir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.db.Set(c.key, bad, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		err = c.view(f)
		f.Close()
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", c.key)) {
			t.Errorf("view over undecodable %q: error %v, want one naming the key", c.key, err)
		}
	}
}

package fsm

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
)

// write applies fn to a batch of its own, as Apply does, and commits it.
func write(t *testing.T, f *FSM, parts map[string]int, fn func(tx *txn)) {
	t.Helper()
	b := f.db.NewIndexedBatch()
	defer b.Close()
	fn(&txn{b: b, parts: parts})
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
}

// stored lists every key as stored, with the size of its stored value.
func stored(t *testing.T, f *FSM) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := f.scanStored(nil, nil, false, func(it *pebble.Iterator) bool {
		out[string(it.Key())] = len(it.Value())
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLargeValuesAreStoredInParts(t *testing.T) {
	f, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k := keyStep("run", "big")
	big := bytes.Repeat([]byte("0123456789"), 10*partSize/10+7) // 10 parts and 7 bytes
	small := []byte(`"small"`)

	write(t, f, map[string]int{}, func(tx *txn) { tx.putRaw(k, big) })
	for key, n := range stored(t, f) {
		if n > partSize {
			t.Fatalf("%q holds %d bytes: a stored value may not exceed a part (%d)", key, n, partSize)
		}
	}
	if got, _ := f.Memo("run", "big"); !bytes.Equal(got, big) {
		t.Fatalf("view read %d bytes, want the %d written", len(got), len(big))
	}
	var scanned []byte
	f.scan([]byte("s/"), prefixEnd([]byte("s/")), false, func(_, v []byte) bool { scanned = v; return true })
	if !bytes.Equal(scanned, big) {
		t.Fatalf("scan read %d bytes, want %d", len(scanned), len(big))
	}
	if n := countParts(stored(t, f)); n != 11 {
		t.Fatalf("%d parts stored, want 11", n)
	}

	// Apply rewrites what it has read: a smaller value drops the parts it
	// no longer needs, a delete drops them all.
	parts := map[string]int{}
	write(t, f, parts, func(tx *txn) {
		if got := tx.getRaw(k); !bytes.Equal(got, big) {
			t.Fatalf("txn read %d bytes, want %d", len(got), len(big))
		}
		tx.putRaw(k, big[:3*partSize])
	})
	if got, _ := f.Memo("run", "big"); !bytes.Equal(got, big[:3*partSize]) || countParts(stored(t, f)) != 3 {
		t.Fatalf("after shrinking: %d bytes, %d parts; want %d bytes in 3", len(got), countParts(stored(t, f)), 3*partSize)
	}
	write(t, f, parts, func(tx *txn) { tx.putRaw(k, small) })
	if got, _ := f.Memo("run", "big"); !bytes.Equal(got, small) || countParts(stored(t, f)) != 0 {
		t.Fatalf("after replacing by a small value: %q, %d parts left", got, countParts(stored(t, f)))
	}
	write(t, f, parts, func(tx *txn) { tx.putRaw(k, big) })
	write(t, f, parts, func(tx *txn) { tx.del(k) })
	if got := stored(t, f); len(got) != 2 || got[string(keyRunsIndexed)] == 0 || got[string(keyQueuesSplit)] == 0 {
		t.Fatalf("after delete, stored: %v (want only the marks of opening)", got)
	}
}

func countParts(keys map[string]int) int {
	n := 0
	for k := range keys {
		if strings.HasPrefix(k, string(prefixParts)) {
			n++
		}
	}
	return n
}

func TestPartsHeaderIsUnambiguous(t *testing.T) {
	for _, v := range [][]byte{nil, {}, {partMark}, {partMark, 1, 0}, {partMark, 0x80}, []byte(`{"a":1}`),
		append(partsHeader(3*partSize), 0), {partMark, 10, 1}} {
		if _, _, ok := parseHeader(v); ok {
			t.Errorf("%q parsed as a parts header", v)
		}
	}
	if size, n, ok := parseHeader(partsHeader(3*partSize + 1)); !ok || size != 3*partSize+1 || n != 4 {
		t.Errorf("header round trip: %d %d %v", size, n, ok)
	}
}

package fsm

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble"
)

// Large values are stored in parts.
//
// Pebble keeps a value whole inside one data block, so a 15 MB step output
// makes a 15 MB block, and its block cache (8 MB, in shards of 2 MB) never
// keeps a block larger than a shard. Every read that merely lands on such a
// block (a lookup of a new event or run id next to it, a scan of an empty
// waitForEvent or cancelOn prefix before it) then reads and decompresses
// all of it again: one run with large steps cut ingest from thousands of
// events per second to tens, for as long as its values stayed in the
// projection. Stored in parts of at most partSize under their own prefix,
// no block is much larger than a part, and each stays cacheable.
//
// A value longer than partSize is written as a header at its own key and
// its bytes at keyPart(key, 0..n-1). The header starts with partMark, a
// byte that begins no other stored value (it is never used by msgpack and
// is invalid in JSON), and must decode exactly, or the value is a plain one.
const (
	partSize = 32 << 10
	partMark = 0xc1
)

// partsOf returns how many parts a value of size bytes takes (0: stored whole).
func partsOf(size int) int {
	if size <= partSize {
		return 0
	}
	return (size + partSize - 1) / partSize
}

func partsHeader(size int) []byte {
	h := []byte{partMark}
	h = binary.AppendUvarint(h, uint64(size))
	return binary.AppendUvarint(h, uint64(partsOf(size)))
}

// parseHeader reports whether v is the header of a value stored in parts,
// with the value's size and part count.
func parseHeader(v []byte) (size, parts int, ok bool) {
	if len(v) < 3 || v[0] != partMark {
		return 0, 0, false
	}
	s, n := binary.Uvarint(v[1:])
	if n <= 0 {
		return 0, 0, false
	}
	p, m := binary.Uvarint(v[1+n:])
	if m <= 0 || 1+n+m != len(v) || s > 1<<40 || int(p) != partsOf(int(s)) || p == 0 {
		return 0, 0, false
	}
	return int(s), int(p), true
}

// setValue stores v at k, in parts if it is large. oldParts is how many
// parts the value it replaces had: those the new one does not overwrite are
// deleted.
func setValue(b *pebble.Batch, k, v []byte, oldParts int) (parts int) {
	parts = partsOf(len(v))
	if parts == 0 {
		must(b.Set(k, v, nil), "set", k)
	} else {
		must(b.Set(k, partsHeader(len(v)), nil), "set", k)
		for i := range parts {
			must(b.Set(keyPart(k, i), v[i*partSize:min(len(v), (i+1)*partSize)], nil), "set part of", k)
		}
	}
	for i := parts; i < oldParts; i++ {
		must(b.Delete(keyPart(k, i), nil), "delete part of", k)
	}
	return parts
}

// deleteValue deletes k and the parts its value had.
func deleteValue(b *pebble.Batch, k []byte, oldParts int) {
	must(b.Delete(k, nil), "delete", k)
	for i := range oldParts {
		must(b.Delete(keyPart(k, i), nil), "delete part of", k)
	}
}

// joinParts reads the parts of the value at k, whose header said it has
// size bytes in n parts, through it: an iterator over the same state the
// header was read from (its bounds are changed).
func joinParts(it *pebble.Iterator, k []byte, size, n int) ([]byte, error) {
	first, last := keyPart(k, 0), keyPart(k, n-1)
	it.SetBounds(first, prefixEnd(last))
	out := make([]byte, 0, size)
	i := 0
	for ok := it.SeekGE(first); ok && i < n; ok = it.Next() {
		if string(it.Key()) != string(keyPart(k, i)) {
			continue // another key's part that sorts in between
		}
		out = append(out, it.Value()...)
		i++
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if i != n || len(out) != size {
		return nil, fmt.Errorf("fsm: value of %q: %d of %d parts, %d of %d bytes", k, i, n, len(out), size)
	}
	return out, nil
}

func must(err error, what string, k []byte) {
	if err != nil {
		panic(fmt.Sprintf("fsm: %s %q: %v", what, k, err))
	}
}

// wholeValue returns the value at it's position, joining its parts if it is
// stored in parts (read through a clone, so it stays where it is).
func wholeValue(it *pebble.Iterator) ([]byte, error) {
	v := it.Value()
	size, n, ok := parseHeader(v)
	if !ok {
		return v, nil
	}
	parts, err := it.Clone(pebble.CloneOptions{}) // same state as it
	if err != nil {
		return nil, err
	}
	defer parts.Close()
	return joinParts(parts, it.Key(), size, n)
}

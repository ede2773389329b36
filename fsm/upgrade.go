package fsm

import (
	"errors"

	"github.com/cockroachdb/pebble"
)

// upgradeRows rewrites, once, the rows under prefix of a projection written
// by an older release: fn sees each row and adds its rewrite to the batch.
// The batch also sets mark, and a projection that has the mark is left
// alone; every projection gets it when opened or restored, so replicas
// keep the same digest whichever way they came by their rows.
func upgradeRows(db *pebble.DB, mark, prefix []byte, fn func(b *pebble.Batch, it *pebble.Iterator) error) error {
	if _, closer, err := db.Get(mark); err == nil {
		return closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	b := db.NewBatch()
	defer b.Close()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(b, it); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if err := b.Set(mark, []byte{1}, nil); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync) // no WAL: flushed with the rest, or redone
}

package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble"
)

// Snapshot format: a magic header, then every key/value of the projection
// as [uvarint len][key][uvarint len][value]. It is streamed from a Pebble
// snapshot, so memory stays bounded whatever the projection's size.
const snapshotMagic = "CAIRNSNAP1"

// Snapshot is a point-in-time view of the projection, consistent with the
// applied index stored in it.
type Snapshot struct {
	snap *pebble.Snapshot
}

// Snapshot makes the projection durable up to now (Raft may truncate the log
// behind a snapshot, and projection writes are not fsynced one by one) and
// returns a consistent view to stream.
func (f *FSM) Snapshot() (*Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Flush(); err != nil {
		return nil, fmt.Errorf("fsm: flush before snapshot: %w", err)
	}
	return &Snapshot{snap: f.db.NewSnapshot()}, nil
}

// WriteTo streams the snapshot to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	n := int64(0)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return 0, err
	}
	it, err := s.snap.NewIter(nil)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	var tmp [binary.MaxVarintLen64]byte
	for ok := it.First(); ok; ok = it.Next() {
		for _, b := range [][]byte{it.Key(), it.Value()} {
			m, _ := bw.Write(tmp[:binary.PutUvarint(tmp[:], uint64(len(b)))])
			k, err := bw.Write(b)
			if err != nil {
				return n, err
			}
			n += int64(m + k)
		}
	}
	if err := it.Error(); err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// Release frees the snapshot.
func (s *Snapshot) Release() { s.snap.Close() }

// Restore replaces the whole projection with a snapshot stream.
func (f *FSM) Restore(r io.Reader) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	br := bufio.NewReaderSize(r, 1<<16)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return errors.New("fsm: not a cairn snapshot")
	}
	if err := f.db.DeleteRange([]byte{0}, []byte{0xff, 0xff, 0xff, 0xff}, pebble.NoSync); err != nil {
		return err
	}
	if err := f.db.Delete(nil, pebble.NoSync); err != nil {
		return err
	}
	b := f.db.NewBatch()
	for {
		k, err := readChunk(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		v, err := readChunk(br)
		if err != nil {
			return fmt.Errorf("fsm: snapshot value: %w", err)
		}
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		if b.Len() > 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b = f.db.NewBatch()
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	if err := f.db.Flush(); err != nil { // no WAL: make the restored state durable
		return err
	}
	f.applied = appliedState{}
	if ok, err := f.get(keyApplied, &f.applied); err != nil || !ok {
		return fmt.Errorf("fsm: snapshot has no applied index (%v)", err)
	}
	f.hint.Store(0)
	f.fns.reset()
	f.notify()
	return nil
}

func readChunk(r *bufio.Reader) ([]byte, error) {
	l, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if l > 1<<30 {
		return nil, errors.New("fsm: snapshot chunk too large")
	}
	b := make([]byte, l)
	_, err = io.ReadFull(r, b)
	return b, err
}

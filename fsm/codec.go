package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Entry format (the Data of one Raft log entry). Many records share one entry:
// that is group commit, one fsync for all of them.
//
//	+---------+----------------+-------------------------------------------+
//	| version | count (uvarint) | count × [kind (1)][len (uvarint)][msgpack] |
//	+---------+----------------+-------------------------------------------+
const entryVersion = 1

// EncodeEntry packs records into one log entry.
func EncodeEntry(recs ...Record) ([]byte, error) {
	enc := make([][]byte, len(recs))
	for i, r := range recs {
		var err error
		if enc[i], err = EncodeRecord(r); err != nil {
			return nil, err
		}
	}
	return JoinEntry(enc...), nil
}

// EncodeRecord encodes one record as it sits in an entry (kind, length,
// body). raftnode encodes each proposal this way before batching, so that a
// record that cannot be encoded fails its own proposer, not its batch.
func EncodeRecord(r Record) ([]byte, error) {
	body, err := msgpack.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode %s: %w", r.Kind(), err)
	}
	out := make([]byte, 0, 1+binary.MaxVarintLen64+len(body))
	out = append(out, byte(r.Kind()))
	out = binary.AppendUvarint(out, uint64(len(body)))
	return append(out, body...), nil
}

// JoinEntry packs records encoded by EncodeRecord into one log entry.
func JoinEntry(recs ...[]byte) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, r := range recs {
		n += len(r)
	}
	out := make([]byte, 0, n)
	out = append(out, entryVersion)
	out = binary.AppendUvarint(out, uint64(len(recs)))
	for _, r := range recs {
		out = append(out, r...)
	}
	return out
}

// decodeStrict decodes a record and fails on a field this release does not
// know: a node that skipped it would compute another state than the nodes
// that read it (see format.go for how new fields are rolled out).
func decodeStrict(body []byte, r Record) error {
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(bytes.NewReader(body))
	dec.DisallowUnknownFields(true)
	return dec.Decode(r)
}

// DecodeEntry unpacks a log entry. It returns an error, never panics, on
// malformed input.
func DecodeEntry(data []byte) ([]Record, error) {
	if len(data) < 2 {
		return nil, errors.New("fsm: entry too short")
	}
	if data[0] != entryVersion {
		return nil, fmt.Errorf("fsm: unknown entry version %d", data[0])
	}
	p := data[1:]
	n, w := binary.Uvarint(p)
	if w <= 0 || n > uint64(len(p)) {
		return nil, errors.New("fsm: bad record count")
	}
	p = p[w:]
	recs := make([]Record, 0, n)
	for i := uint64(0); i < n; i++ {
		if len(p) < 1 {
			return nil, errors.New("fsm: truncated entry")
		}
		k := Kind(p[0])
		p = p[1:]
		l, w := binary.Uvarint(p)
		if w <= 0 || l > uint64(len(p)-w) {
			return nil, errors.New("fsm: bad record length")
		}
		body := p[w : w+int(l)]
		p = p[w+int(l):]
		r := newRecord(k)
		if r == nil && k.Ignorable() {
			recs = append(recs, &ignoredRecord{kind: k})
			continue
		}
		if r == nil {
			return nil, fmt.Errorf("fsm: unknown record kind %d (written by a newer release?)", k)
		}
		if err := checkSizes(body); err != nil {
			return nil, fmt.Errorf("fsm: decode %s: %w", k, err)
		}
		if err := decodeStrict(body, r); err != nil {
			return nil, fmt.Errorf("fsm: decode %s: %w", k, err)
		}
		recs = append(recs, r)
	}
	if len(p) != 0 {
		return nil, errors.New("fsm: trailing bytes in entry")
	}
	return recs, nil
}

package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"
)

// Entry format (the Data of one Raft log entry). Many records share one entry:
// that is group commit, one fsync for all of them.
//
//	+---------+----------------+-------------------------------------------+
//	| version | count (uvarint) | count × [kind (1)][len (uvarint)][msgpack] |
//	+---------+----------------+-------------------------------------------+
//
// A compressed entry (format 4) is the version byte 2 and a zstd frame
// holding a whole version-1 entry: records repeat their field names, ids
// and names from one to the next, so a batch of them shrinks about four
// times, for about 15 µs of the leader's CPU per entry (2 KB) and half that
// to decode it. The leader compresses only once every member reads format
// 4 (CompressEntry's callers check the cluster's format).
const (
	entryVersion    = 1
	entryCompressed = 2
	// maxCompressed bounds the entries that are compressed, and so what a
	// compressed entry may expand to: bigger ones are app data that gains
	// little, and the bound keeps a corrupt frame from asking for more.
	maxCompressed = 16 << 20
)

// EntryCompressionFormat is the record format from which entries may be
// compressed.
const EntryCompressionFormat = 4

var zstdCodec struct {
	once sync.Once
	enc  *zstd.Encoder
	dec  *zstd.Decoder
}

func codec() (*zstd.Encoder, *zstd.Decoder) {
	z := &zstdCodec
	z.once.Do(func() {
		// Both are safe for concurrent EncodeAll/DecodeAll calls.
		z.enc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		z.dec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxCompressed+1<<20),
			zstd.WithDecoderMaxWindow(maxCompressed))
	})
	return z.enc, z.dec
}

// CompressEntry returns a version-1 entry compressed, or as it is when
// compressing does not make it smaller (or it is over maxCompressed).
func CompressEntry(data []byte) []byte {
	if len(data) < 64 || len(data) > maxCompressed || data[0] != entryVersion {
		return data
	}
	enc, _ := codec()
	out := enc.EncodeAll(data, append(make([]byte, 0, len(data)/3+16), entryCompressed))
	if len(out) >= len(data) {
		return data
	}
	return out
}

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
	if data[0] == entryCompressed {
		_, dec := codec()
		plain, err := dec.DecodeAll(data[1:], nil)
		if err != nil {
			return nil, fmt.Errorf("fsm: compressed entry: %w", err)
		}
		if len(plain) < 2 || plain[0] != entryVersion {
			return nil, errors.New("fsm: a compressed entry holds no entry")
		}
		data = plain
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

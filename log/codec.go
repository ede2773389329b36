package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// codecVersion is the first byte of every encoded entry, so the format can
// change later without guessing what an old entry looks like.
const codecVersion = 1

// errCorrupt is wrapped by every decoding failure, so callers can tell a
// damaged entry from an I/O error.
var errCorrupt = errors.New("corrupt log entry")

// appendLog appends the encoding of l to dst:
//
//	version    1 byte
//	index      8 bytes big-endian
//	term       8 bytes big-endian
//	type       1 byte
//	appendedAt 8 bytes big-endian, Unix nanoseconds, 0 for the zero time
//	extensions uvarint length, then the bytes
//	data       uvarint length, then the bytes
//
// Fixed-width integers keep the header trivially seekable; lengths are
// varints because they are usually small. The zero time gets its own value
// because time.Time{}.UnixNano is undefined and Raft tests IsZero.
func appendLog(dst []byte, l *raft.Log) []byte {
	var nanos int64
	if !l.AppendedAt.IsZero() {
		nanos = l.AppendedAt.UnixNano()
	}
	dst = append(dst, codecVersion)
	dst = binary.BigEndian.AppendUint64(dst, l.Index)
	dst = binary.BigEndian.AppendUint64(dst, l.Term)
	dst = append(dst, byte(l.Type))
	dst = binary.BigEndian.AppendUint64(dst, uint64(nanos))
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	return dst
}

// decodeLog overwrites every field of l with the entry encoded in b. It
// copies Data and Extensions, because b usually belongs to Pebble and is only
// valid until the read is released. Truncated, oversized or trailing input is
// an error wrapping errCorrupt; it never panics.
func decodeLog(b []byte, l *raft.Log) error {
	r := reader{b: b}
	if v := r.byte(); r.err == nil && v != codecVersion {
		return fmt.Errorf("%w: unknown version %d", errCorrupt, v)
	}
	index, term, typ := r.uint64(), r.uint64(), r.byte()
	nanos := int64(r.uint64())
	ext, data := r.bytes(), r.bytes()
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(r.b))
	}
	if r.err != nil {
		return r.err
	}
	*l = raft.Log{Index: index, Term: term, Type: raft.LogType(typ), Extensions: ext, Data: data}
	if nanos != 0 {
		l.AppendedAt = time.Unix(0, nanos)
	}
	return nil
}

// reader consumes b front to back and remembers the first failure, so
// decodeLog reads like the format description instead of a ladder of ifs.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n uint64, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: truncated %s: need %d bytes, have %d", errCorrupt, what, n, len(r.b))
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) byte() byte {
	if p := r.take(1, "header"); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) uint64() uint64 {
	if p := r.take(8, "header"); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// bytes reads a uvarint length and then a copy of that many bytes; an empty
// field decodes as nil.
func (r *reader) bytes() []byte {
	if r.err != nil {
		return nil
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err = fmt.Errorf("%w: bad length prefix", errCorrupt)
		return nil
	}
	r.b = r.b[k:]
	p := r.take(n, "field")
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// AppendEntry appends the encoding of l to dst: the same bytes the store
// keeps, so that the archive (package archive) keeps entries exactly as the
// log held them and decodes them with the same strict reader.
func AppendEntry(dst []byte, l *raft.Log) []byte { return appendLog(dst, l) }

// DecodeEntry decodes an entry encoded by AppendEntry into l; a damaged
// entry is an error, never a panic.
func DecodeEntry(b []byte, l *raft.Log) error { return decodeLog(b, l) }

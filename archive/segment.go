package archive

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"

	raftlog "github.com/cairn-dev/cairn/log"
	"github.com/hashicorp/raft"
)

// Segment format: a run of consecutive Raft entries, each encoded exactly as
// the log store keeps it (log.AppendEntry), so an archived entry decodes
// with the same strict reader as a live one.
//
//	magic      8 bytes "CAIRNSEG"
//	version    1 byte
//	count      uvarint
//	count ×    uvarint length, then the entry
//	crc32c     4 bytes big-endian, of everything before it
//
// The trailing CRC makes a segment check itself without the manifest; the
// manifest's SHA-256 of the whole file is what a read is verified against.
const (
	segmentMagic   = "CAIRNSEG"
	segmentVersion = 1
)

// ErrCorrupt is wrapped by every failure to read back a segment as it was
// written: a checksum mismatch, a bad encoding, entries that are not the
// ones the manifest names.
var ErrCorrupt = errors.New("archive: corrupt segment")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeSegment encodes consecutive entries.
func encodeSegment(entries []*raft.Log) []byte {
	size := len(segmentMagic) + 1 + binary.MaxVarintLen64 + 4
	for _, e := range entries {
		size += binary.MaxVarintLen64 + 40 + len(e.Data) + len(e.Extensions)
	}
	b := make([]byte, 0, size)
	b = append(b, segmentMagic...)
	b = append(b, segmentVersion)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	var enc []byte
	for _, e := range entries {
		enc = raftlog.AppendEntry(enc[:0], e)
		b = binary.AppendUvarint(b, uint64(len(enc)))
		b = append(b, enc...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeSegment decodes a segment; any damage is an error wrapping
// ErrCorrupt.
func decodeSegment(b []byte) ([]*raft.Log, error) {
	head := len(segmentMagic) + 1
	if len(b) < head+1+4 || string(b[:len(segmentMagic)]) != segmentMagic {
		return nil, fmt.Errorf("%w: not a segment", ErrCorrupt)
	}
	if v := b[len(segmentMagic)]; v != segmentVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorrupt, v)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, fmt.Errorf("%w: crc32c mismatch", ErrCorrupt)
	}
	p := body[head:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)) {
		return nil, fmt.Errorf("%w: bad entry count", ErrCorrupt)
	}
	p = p[k:]
	out := make([]*raft.Log, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return nil, fmt.Errorf("%w: bad length of entry %d", ErrCorrupt, i)
		}
		e := new(raft.Log)
		if err := raftlog.DecodeEntry(p[k:k+int(l)], e); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, i, err)
		}
		out = append(out, e)
		p = p[k+int(l):]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(p))
	}
	return out, nil
}

// checksum is the manifest's checksum of a segment file.
func checksum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// segmentName names a segment by its index range; zero-padded so that
// names sort in log order.
func segmentName(first, last uint64) string {
	return fmt.Sprintf("%s%020d-%020d%s", segmentPrefix, first, last, segmentSuffix)
}

const (
	segmentPrefix  = "segment-"
	segmentSuffix  = ".seg"
	manifestPrefix = "manifest-"
	manifestSuffix = ".json"
)

func manifestName(seq uint64) string {
	return fmt.Sprintf("%s%020d%s", manifestPrefix, seq, manifestSuffix)
}

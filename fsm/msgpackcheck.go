package fsm

import (
	"errors"
)

// errOversized: a msgpack header declares more than the body holds.
var errOversized = errors.New("fsm: record declares more data than it holds")

// checkSizes walks one msgpack value and fails if any str, bin, ext, array
// or map header declares more bytes or elements than remain. msgpack v5
// allocates a declared length before reading it, so without this check a
// few corrupt bytes could ask for gigabytes. Truncated values pass here and
// fail in the decoder, which reports them without allocating.
func checkSizes(b []byte) error {
	_, err := walkSizes(b, 0)
	return err
}

func walkSizes(b []byte, depth int) ([]byte, error) {
	if len(b) == 0 || depth > 512 {
		return nil, nil
	}
	c, b := b[0], b[1:]
	length := func(n int) (int, bool) {
		if len(b) < n {
			return 0, false
		}
		var v uint64
		for _, x := range b[:n] {
			v = v<<8 | uint64(x)
		}
		b = b[n:]
		if v > uint64(len(b)) {
			return -1, true
		}
		return int(v), true
	}
	skip := func(n int) ([]byte, error) {
		if n < 0 || n > len(b) {
			return nil, errOversized
		}
		return b[n:], nil
	}
	elems := func(n int) ([]byte, error) {
		if n < 0 || n > len(b) { // every element takes at least a byte
			return nil, errOversized
		}
		rest := b
		for i := 0; i < n && rest != nil; i++ {
			var err error
			if rest, err = walkSizes(rest, depth+1); err != nil {
				return nil, err
			}
		}
		return rest, nil
	}
	sized := func(lenBytes, extra, perElem int) ([]byte, error) {
		n, ok := length(lenBytes)
		if !ok {
			return nil, nil // truncated: the decoder says so
		}
		if n < 0 {
			return nil, errOversized
		}
		if perElem > 0 {
			return elems(n * perElem)
		}
		return skip(n + extra)
	}
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return b, nil // fixint, nil, bools
	case c <= 0x8f:
		return elems(2 * int(c&0x0f)) // fixmap
	case c <= 0x9f:
		return elems(int(c & 0x0f)) // fixarray
	case c <= 0xbf:
		return skip(int(c & 0x1f)) // fixstr
	}
	switch c {
	case 0xc4, 0xd9: // bin8, str8
		return sized(1, 0, 0)
	case 0xc5, 0xda:
		return sized(2, 0, 0)
	case 0xc6, 0xdb:
		return sized(4, 0, 0)
	case 0xc7, 0xc8, 0xc9: // ext with a type byte
		return sized(1<<(c-0xc7), 1, 0)
	case 0xca, 0xce, 0xd2:
		return skip(4)
	case 0xcb, 0xcf, 0xd3:
		return skip(8)
	case 0xcc, 0xd0:
		return skip(1)
	case 0xcd, 0xd1:
		return skip(2)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext
		return skip(1 + 1<<(c-0xd4))
	case 0xdc:
		return sized(2, 0, 1)
	case 0xdd:
		return sized(4, 0, 1)
	case 0xde:
		return sized(2, 0, 2)
	case 0xdf:
		return sized(4, 0, 2)
	}
	return nil, nil // 0xc1 is never used; the decoder rejects it
}

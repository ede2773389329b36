package log

import (
	"encoding/binary"
	"fmt"
)

// Key prefixes; doc.go explains the layout.
const (
	prefixLog    byte = 0x01
	prefixStable byte = 0x02
	prefixMeta   byte = 0x03
)

var (
	// logLower and logUpper bound every log key, so iterators never wander
	// into stable or meta keys.
	logLower = []byte{prefixLog}
	logUpper = []byte{prefixLog + 1}

	commitKey = []byte{prefixMeta, 'c', 'o', 'm', 'm', 'i', 't'}
)

func logKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

// parseLogKey returns the index in a key found inside the log range; any
// other shape means the database holds something this package did not write.
func parseLogKey(k []byte) (uint64, error) {
	if len(k) != 9 || k[0] != prefixLog {
		return 0, fmt.Errorf("unexpected key %x in log range", k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

func stableKey(key []byte) []byte {
	return append([]byte{prefixStable}, key...)
}

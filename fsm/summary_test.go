package fsm

import (
	"bytes"
	"fmt"
	"testing"
)

// The state digest's row encoding is the one StateDigest always had (fmt's
// "%d:%s%d:%s"): nodes of two releases compare digests.
func TestDigestRowIsTheFmtEncoding(t *testing.T) {
	for _, c := range [][2][]byte{{nil, nil}, {[]byte("r/abc"), []byte("xyz")},
		{bytes.Repeat([]byte("k"), 12345), bytes.Repeat([]byte{0, 1}, 70000)}} {
		var want, got bytes.Buffer
		fmt.Fprintf(&want, "%d:%s%d:%s", len(c[0]), c[0], len(c[1]), c[1])
		digestRow(&got, c[0], c[1])
		if !bytes.Equal(want.Bytes(), got.Bytes()) {
			t.Fatalf("row (%d, %d bytes) encodes differently", len(c[0]), len(c[1]))
		}
	}
}

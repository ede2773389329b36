package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestCodecRoundTrip(t *testing.T) {
	for _, l := range []*raft.Log{
		{},
		{Index: 1<<64 - 1, Term: 1<<64 - 1, Type: 255},
		{Index: 7, Term: 3, Type: raft.LogConfiguration, Data: []byte("cfg"), Extensions: []byte{0}},
		{Index: 9, AppendedAt: time.Unix(0, -1)},
		{Index: 9, AppendedAt: time.Now()},
		{Index: 10, Data: bytes.Repeat([]byte{1}, 300)}, // multi-byte length
	} {
		var got raft.Log
		if err := decodeLog(appendLog(nil, l), &got); err != nil {
			t.Fatalf("decode(encode(%+v)): %v", l, err)
		}
		if !equalLog(&got, l) {
			t.Fatalf("round trip: got %+v, want %+v", got, *l)
		}
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	valid := appendLog(nil, testLog(3)) // has extensions and data
	const header = 26                   // version, index, term, type, time
	cases := map[string][]byte{
		"empty":               nil,
		"wrong version":       append([]byte{2}, valid[1:]...),
		"trailing byte":       append(bytes.Clone(valid), 0),
		"length past end":     append(bytes.Clone(valid[:header]), 0x7f),
		"length overflows":    append(bytes.Clone(valid[:header]), bytes.Repeat([]byte{0xff}, 10)...),
		"unterminated varint": append(bytes.Clone(valid[:header]), 0x80),
		"huge length":         binary.AppendUvarint(bytes.Clone(valid[:header]), 1<<63),
	}
	for n := range len(valid) {
		cases[fmt.Sprintf("truncated to %d", n)] = valid[:n]
	}
	for name, b := range cases {
		var l raft.Log
		if err := decodeLog(b, &l); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: decode(%x) error = %v, want errCorrupt", name, b, err)
		}
	}
}

func TestDecodeRandomBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, rng.IntN(64))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		if rng.IntN(2) == 0 && len(b) > 0 {
			b[0] = codecVersion // get past the version check more often
		}
		checkDecode(t, b)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(appendLog(nil, testLog(3)))
	f.Add(appendLog(nil, testLog(5)))
	f.Add(appendLog(nil, &raft.Log{}))
	f.Fuzz(checkDecode)
}

// checkDecode asserts that decoding b either fails with errCorrupt or yields
// an entry that survives another round trip; it must never panic.
func checkDecode(t *testing.T, b []byte) {
	var l raft.Log
	if err := decodeLog(b, &l); err != nil {
		if !errors.Is(err, errCorrupt) {
			t.Fatalf("decode(%x) error %v does not wrap errCorrupt", b, err)
		}
		return
	}
	var again raft.Log
	if err := decodeLog(appendLog(nil, &l), &again); err != nil || !equalLog(&again, &l) {
		t.Fatalf("decode(%x) = %+v, but re-encoding gives %+v, %v", b, l, again, err)
	}
}

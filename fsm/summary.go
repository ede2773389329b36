package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"

	"github.com/cockroachdb/pebble"
	"github.com/vmihailenco/msgpack/v5"
)

// Summary describes the whole projection at one applied index: what
// GET /v1/state shows, live or at a past index (package pointintime).
type Summary struct {
	Index  uint64         // applied index stored with the state
	Digest string         // StateDigest of the same state
	Runs   map[string]int // runs by status
}

var prefixRuns = []byte("r/")

// Summary reads the applied index, the state digest and the runs by
// status in one pass over one consistent view, so the three agree even
// while entries are being applied (separate reads could each see another
// batch).
func (f *FSM) Summary() (Summary, error) {
	s := Summary{Runs: map[string]int{}}
	h := sha256.New()
	var derr error
	err := f.scanStored(nil, nil, false, func(it *pebble.Iterator) bool {
		k, v := it.Key(), it.Value()
		if bytes.Equal(k, keyApplied) {
			var st appliedState
			if derr = decodeRow(k, v, &st); derr != nil {
				return false
			}
			s.Index = st.Index
			return true
		}
		digestRow(h, k, v)
		if bytes.HasPrefix(k, prefixRuns) {
			var status string
			if status, derr = runStatus(it, k, v); derr != nil {
				return false
			}
			s.Runs[status]++
		}
		return true
	})
	if err == nil {
		err = derr
	}
	s.Digest = hex.EncodeToString(h.Sum(nil))
	return s, err
}

// runStatus decodes only the status of a stored run row; a run stored in
// parts is joined through a clone of it (the same state).
func runStatus(it *pebble.Iterator, k, v []byte) (string, error) {
	if size, n, ok := parseHeader(v); ok {
		parts, err := it.Clone(pebble.CloneOptions{})
		if err != nil {
			return "", err
		}
		v, err = joinParts(parts, k, size, n)
		parts.Close()
		if err != nil {
			return "", err
		}
	}
	var r struct {
		Status string `msgpack:"st"`
	}
	if err := msgpack.Unmarshal(v, &r); err != nil {
		return "", errRow(k, err)
	}
	return r.Status, nil
}

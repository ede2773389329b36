package fsm

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Hand-written msgpack codecs for the rows read and written on every step:
// Run, Call and HistoryEntry. They write exactly the bytes msgpack's
// reflection writes for these structs (a map keyed by the tag names,
// omitempty fields left out when empty), so rows stored by either read the
// same; rowcodec_test.go checks both ways. They only save the reflection,
// which was most of the cost of encoding and decoding a row.
//
// A field added to one of these structs must be added here too: the test
// fails until it is.

// rowWriter writes one map, remembering the first error.
type rowWriter struct {
	e   *msgpack.Encoder
	err error
}

func (w *rowWriter) do(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *rowWriter) key(k string) { w.do(w.e.EncodeString(k)) }

func (w *rowWriter) str(k, v string) { w.key(k); w.do(w.e.EncodeString(v)) }

func (w *rowWriter) int(k string, v int) { w.key(k); w.do(w.e.EncodeInt(int64(v))) }

// int64 and the unsigned ones keep their width, as reflection writes them.
func (w *rowWriter) int64(k string, v int64)   { w.key(k); w.do(w.e.EncodeInt64(v)) }
func (w *rowWriter) uint32(k string, v uint32) { w.key(k); w.do(w.e.EncodeUint32(v)) }
func (w *rowWriter) uint64(k string, v uint64) { w.key(k); w.do(w.e.EncodeUint64(v)) }
func (w *rowWriter) bool(k string, v bool)     { w.key(k); w.do(w.e.EncodeBool(v)) }
func (w *rowWriter) bytes(k string, v []byte)  { w.key(k); w.do(w.e.EncodeBytes(v)) }

func (w *rowWriter) strs(k string, v []string) {
	w.key(k)
	if v == nil {
		w.do(w.e.EncodeNil())
		return
	}
	w.do(w.e.EncodeArrayLen(len(v)))
	for _, s := range v {
		w.do(w.e.EncodeString(s))
	}
}

func (w *rowWriter) ints(k string, v []int) {
	w.key(k)
	if v == nil {
		w.do(w.e.EncodeNil())
		return
	}
	w.do(w.e.EncodeArrayLen(len(v)))
	for _, n := range v {
		w.do(w.e.EncodeInt(int64(n)))
	}
}

// count returns how many of the omitempty fields are set.
func count(set ...bool) int {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	return n
}

// readRow reads a map, calling field for each key; field returns false for
// a key it does not know, which is skipped (a row of a newer release). The
// key is only valid during the call (switch on string(k) copies nothing).
func readRow(d *msgpack.Decoder, field func(k []byte) (bool, error)) error {
	n, err := d.DecodeMapLen()
	if err != nil || n < 0 {
		return err
	}
	var buf [32]byte
	for range n {
		k, err := readKey(d, &buf)
		if err != nil {
			return err
		}
		known, err := field(k)
		if err != nil {
			return fmt.Errorf("field %q: %w", k, err)
		}
		if !known {
			if err := d.Skip(); err != nil {
				return err
			}
		}
	}
	return nil
}

// readKey reads a map key into buf when it is a short string (every key
// these rows have), without allocating one string per field.
func readKey(d *msgpack.Decoder, buf *[32]byte) ([]byte, error) {
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	if c >= msgpcode.FixedStrLow && c <= msgpcode.FixedStrHigh {
		n := int(c & msgpcode.FixedStrMask)
		if err := d.ReadFull(buf[:1]); err != nil { // the code itself
			return nil, err
		}
		return buf[:n], d.ReadFull(buf[:n])
	}
	s, err := d.DecodeString()
	return []byte(s), err
}

func readStrs(d *msgpack.Decoder) ([]string, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	out := make([]string, n)
	for i := range out {
		if out[i], err = d.DecodeString(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readInts(d *msgpack.Decoder) ([]int, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	out := make([]int, n)
	for i := range out {
		if out[i], err = d.DecodeInt(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *Run) EncodeMsgpack(e *msgpack.Encoder) error {
	w := rowWriter{e: e}
	w.do(e.EncodeMapLen(16 + count(r.StateBytes != 0, r.Corr != "", len(r.CancelKeys) > 0, r.Waiting != "",
		len(r.ConcKeys) > 0, len(r.ConcLimits) > 0, r.Priority != 0, len(r.AdmitKeys) > 0, r.RerunOf != "",
		r.Endpoint != "", len(r.Response) > 0)))
	w.str("id", r.ID)
	w.str("fn", r.FnID)
	w.str("app", r.AppID)
	w.strs("evs", r.EventIDs)
	w.str("st", r.Status)
	w.int64("ca", r.CreatedAt)
	w.int64("sa", r.StartedAt)
	w.int64("ea", r.EndedAt)
	w.bytes("out", r.Output)
	w.bytes("err", r.Error)
	w.strs("stack", r.Stack)
	w.int("v", r.Version)
	w.bool("fp", r.ForcePlan)
	w.bool("race", r.Race)
	w.int("calls", r.Calls)
	w.uint64("hseq", r.HistSeq)
	if r.StateBytes != 0 {
		w.int64("sb", r.StateBytes)
	}
	if r.Corr != "" {
		w.str("corr", r.Corr)
	}
	if len(r.CancelKeys) > 0 {
		w.strs("cks", r.CancelKeys)
	}
	if r.Waiting != "" {
		w.str("wait", r.Waiting)
	}
	if len(r.ConcKeys) > 0 {
		w.strs("ck", r.ConcKeys)
	}
	if len(r.ConcLimits) > 0 {
		w.ints("cl", r.ConcLimits)
	}
	if r.Priority != 0 {
		w.int64("prio", r.Priority)
	}
	if len(r.AdmitKeys) > 0 {
		w.strs("aks", r.AdmitKeys)
	}
	if r.RerunOf != "" {
		w.str("rof", r.RerunOf)
	}
	if r.Endpoint != "" {
		w.str("ep", r.Endpoint)
	}
	if len(r.Response) > 0 {
		w.bytes("resp", r.Response)
	}
	return w.err
}

func (r *Run) DecodeMsgpack(d *msgpack.Decoder) error {
	*r = Run{}
	return readRow(d, func(k []byte) (bool, error) {
		var err error
		switch string(k) {
		case "id":
			r.ID, err = d.DecodeString()
		case "fn":
			r.FnID, err = d.DecodeString()
		case "app":
			r.AppID, err = d.DecodeString()
		case "evs":
			r.EventIDs, err = readStrs(d)
		case "st":
			r.Status, err = d.DecodeString()
		case "ca":
			r.CreatedAt, err = d.DecodeInt64()
		case "sa":
			r.StartedAt, err = d.DecodeInt64()
		case "ea":
			r.EndedAt, err = d.DecodeInt64()
		case "out":
			r.Output, err = d.DecodeBytes()
		case "err":
			r.Error, err = d.DecodeBytes()
		case "stack":
			r.Stack, err = readStrs(d)
		case "v":
			r.Version, err = d.DecodeInt()
		case "fp":
			r.ForcePlan, err = d.DecodeBool()
		case "race":
			r.Race, err = d.DecodeBool()
		case "calls":
			r.Calls, err = d.DecodeInt()
		case "hseq":
			r.HistSeq, err = d.DecodeUint64()
		case "sb":
			r.StateBytes, err = d.DecodeInt64()
		case "corr":
			r.Corr, err = d.DecodeString()
		case "cks":
			r.CancelKeys, err = readStrs(d)
		case "wait":
			r.Waiting, err = d.DecodeString()
		case "ck":
			r.ConcKeys, err = readStrs(d)
		case "cl":
			r.ConcLimits, err = readInts(d)
		case "prio":
			r.Priority, err = d.DecodeInt64()
		case "aks":
			r.AdmitKeys, err = readStrs(d)
		case "rof":
			r.RerunOf, err = d.DecodeString()
		case "ep":
			r.Endpoint, err = d.DecodeString()
		case "resp":
			r.Response, err = d.DecodeBytes()
		default:
			return false, nil
		}
		return true, err
	})
}

func (c *Call) EncodeMsgpack(e *msgpack.Encoder) error {
	w := rowWriter{e: e}
	w.do(e.EncodeMapLen(7 + count(c.Node != "", c.Boot != "", len(c.LastError) > 0, c.Event != "", c.If != "",
		c.Signal != "", c.Corr != "", c.Slots, c.Blocked != "")))
	w.str("run", c.RunID)
	w.str("id", c.ID)
	w.str("t", c.Type)
	w.int("att", c.Attempt)
	w.uint32("gen", c.Gen)
	w.int64("due", c.Due)
	w.bool("cl", c.Claimed)
	if c.Node != "" {
		w.str("node", c.Node)
	}
	if c.Boot != "" {
		w.str("boot", c.Boot)
	}
	if len(c.LastError) > 0 {
		w.bytes("le", c.LastError)
	}
	if c.Event != "" {
		w.str("ev", c.Event)
	}
	if c.If != "" {
		w.str("if", c.If)
	}
	if c.Signal != "" {
		w.str("sig", c.Signal)
	}
	if c.Corr != "" {
		w.str("corr", c.Corr)
	}
	if c.Slots {
		w.bool("slots", c.Slots)
	}
	if c.Blocked != "" {
		w.str("blk", c.Blocked)
	}
	return w.err
}

func (c *Call) DecodeMsgpack(d *msgpack.Decoder) error {
	*c = Call{}
	return readRow(d, func(k []byte) (bool, error) {
		var err error
		switch string(k) {
		case "run":
			c.RunID, err = d.DecodeString()
		case "id":
			c.ID, err = d.DecodeString()
		case "t":
			c.Type, err = d.DecodeString()
		case "att":
			c.Attempt, err = d.DecodeInt()
		case "gen":
			c.Gen, err = d.DecodeUint32()
		case "due":
			c.Due, err = d.DecodeInt64()
		case "cl":
			c.Claimed, err = d.DecodeBool()
		case "node":
			c.Node, err = d.DecodeString()
		case "boot":
			c.Boot, err = d.DecodeString()
		case "le":
			c.LastError, err = d.DecodeBytes()
		case "ev":
			c.Event, err = d.DecodeString()
		case "if":
			c.If, err = d.DecodeString()
		case "sig":
			c.Signal, err = d.DecodeString()
		case "corr":
			c.Corr, err = d.DecodeString()
		case "slots":
			c.Slots, err = d.DecodeBool()
		case "blk":
			c.Blocked, err = d.DecodeString()
		default:
			return false, nil
		}
		return true, err
	})
}

func (h *HistoryEntry) EncodeMsgpack(e *msgpack.Encoder) error {
	w := rowWriter{e: e}
	w.do(e.EncodeMapLen(4 + count(h.Call != "", h.Attempt != 0, h.Name != "", h.Detail != "", len(h.Data) > 0, h.By != "")))
	w.uint64("seq", h.Seq)
	w.uint64("idx", h.Index)
	w.int64("at", h.At)
	w.str("t", h.Type)
	if h.Call != "" {
		w.str("call", h.Call)
	}
	if h.Attempt != 0 {
		w.int("att", h.Attempt)
	}
	if h.Name != "" {
		w.str("name", h.Name)
	}
	if h.Detail != "" {
		w.str("msg", h.Detail)
	}
	if len(h.Data) > 0 {
		w.bytes("data", h.Data)
	}
	if h.By != "" {
		w.str("by", h.By)
	}
	return w.err
}

func (h *HistoryEntry) DecodeMsgpack(d *msgpack.Decoder) error {
	*h = HistoryEntry{}
	return readRow(d, func(k []byte) (bool, error) {
		var err error
		switch string(k) {
		case "seq":
			h.Seq, err = d.DecodeUint64()
		case "idx":
			h.Index, err = d.DecodeUint64()
		case "at":
			h.At, err = d.DecodeInt64()
		case "t":
			h.Type, err = d.DecodeString()
		case "call":
			h.Call, err = d.DecodeString()
		case "att":
			h.Attempt, err = d.DecodeInt()
		case "name":
			h.Name, err = d.DecodeString()
		case "msg":
			h.Detail, err = d.DecodeString()
		case "data":
			h.Data, err = d.DecodeBytes()
		case "by":
			h.By, err = d.DecodeString()
		default:
			return false, nil
		}
		return true, err
	})
}

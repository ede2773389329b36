package fsm

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Hand-written msgpack codecs for the records of every step: EventAccepted,
// CallClaimed, CallFinished, TimerFired and StepsCheckpointed, with the
// LeaseNext, LeaseRoom and Op they hold. Like the row codecs (rowcodec.go)
// they write exactly the bytes msgpack's reflection writes, so entries of
// either read the same (recordcodec_test.go checks both ways); unlike rows,
// records are read strictly: a key this release does not know is an error,
// not skipped (see decodeStrict). The leader encodes each record once and
// every member decodes it, so reflection was paid once per node per record.
//
// A field added to one of these structs must be added here too: the test
// fails until it is.

// readRecord reads a map as readRow does, but a key that field does not
// know fails the record.
func readRecord(d *msgpack.Decoder, field func(k []byte) (bool, error)) error {
	return readRow(d, func(k []byte) (bool, error) {
		known, err := field(k)
		if err == nil && !known {
			err = fmt.Errorf("unknown field %q (written by a newer release?)", k)
		}
		return true, err
	})
}

func (w *rowWriter) lease(k string, l *LeaseNext) {
	w.key(k)
	w.do(l.EncodeMsgpack(w.e))
}

func (w *rowWriter) ops(k string, ops []Op) {
	w.key(k)
	if ops == nil {
		w.do(w.e.EncodeNil())
		return
	}
	w.do(w.e.EncodeArrayLen(len(ops)))
	for i := range ops {
		w.do(ops[i].EncodeMsgpack(w.e))
	}
}

func readOps(d *msgpack.Decoder) ([]Op, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n < 0 {
		return nil, err
	}
	out := make([]Op, n)
	for i := range out {
		if err := out[i].DecodeMsgpack(d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readLease(d *msgpack.Decoder) (*LeaseNext, error) {
	if isNil(d) {
		return nil, d.DecodeNil()
	}
	l := &LeaseNext{}
	return l, l.DecodeMsgpack(d)
}

// isNil reports whether the next value is msgpack's nil.
func isNil(d *msgpack.Decoder) bool {
	c, err := d.PeekCode()
	return err == nil && c == msgpcode.Nil
}

func (r *EventAccepted) EncodeMsgpack(e *msgpack.Encoder) error {
	w := rowWriter{e: e}
	w.do(e.EncodeMapLen(4 + count(r.IdemKey != "", r.Lease != nil, r.By != "", r.ReplayedFrom != "")))
	w.int64("at", r.At)
	w.str("id", r.ID)
	w.str("name", r.Name)
	if r.IdemKey != "" {
		w.str("idk", r.IdemKey)
	}
	w.bytes("json", r.JSON)
	if r.Lease != nil {
		w.lease("lease", r.Lease)
	}
	if r.By != "" {
		w.str("by", r.By)
	}
	if r.ReplayedFrom != "" {
		w.str("rpl", r.ReplayedFrom)
	}
	return w.err
}

func (r *EventAccepted) DecodeMsgpack(d *msgpack.Decoder) error {
	*r = EventAccepted{}
	return readRecord(d, func(k []byte) (bool, error) {
		var err error
		switch string(k) {
		case "at":
			r.At, err = d.DecodeInt64()
		case "id":
			r.ID, err = d.DecodeString()
		case "name":
			r.Name, err = d.DecodeString()
		case "idk":
			r.IdemKey, err = d.DecodeString()
		case "json":
			r.JSON, err = d.DecodeBytes()
		case "lease":
			r.Lease, err = readLease(d)
		case "by":
			r.By, err = d.DecodeString()
		case "rpl":
			r.ReplayedFrom, err = d.DecodeString()
		default:
			return false, nil
		}
		return true, err
	})
}

func (r *CallClaimed) EncodeMsgpack(e *msgpack.Encoder) error {
	w := rowWriter{e: e}
	w.do(e.EncodeMapLen(7 + count(r.Revoke)))
	w.int64("at", r.At)
	w.str("run", r.RunID)
	w.str("call", r.Call)
	w.uint32("gen", r.Gen)
	w.int64("lease", r.LeaseUntil)
	w.str("node", r.Node)
	w.str("boot", r.Boot)
	if r.Revoke {
		w.bool("rv", r.Revoke)
	}
	return w.err
}

func (r *CallClaimed) DecodeMsgpack(d *msgpack.Decoder) error {
	*r = CallClaimed{}
	return readRecord(d, func(k []byte) (bool, error) {
		var err error
		switch string(k) {
		case "at":
			r.At, err = d.DecodeInt64()
		case "run":
			r.RunID, err = d.DecodeString()
		case "call":
			r.Call, err = d.DecodeString()
		case "gen":
			r.Gen, err = d.DecodeUint32()
		case "lease":
			r.LeaseUntil, err = d.DecodeInt64()
		case "node":
			r.Node, err = d.DecodeString()
		case "boot":
			r.Boot, err = d.DecodeString()
		case "rv":
			r.Revoke, err = d.DecodeBool()
		default:
			return false, nil
		}
		return true, err
	})
}

func (r *CallFinished) EncodeMsgpack(e *msgpack.Encoder) error {
	w := rowWriter{e: e}
	w.do(e.EncodeMapLen(14 + count(r.Lease != nil, len(r.Fail) > 0)))
	w.int64("at", r.At)
	w.str("run", r.RunID)
	w.str("call", r.Call)
	w.uint32("gen", r.Gen)
	w.int("st", r.Status)
	w.bool("sdk", r.SDK)
	w.int("v", r.Version)
	w.key("nr")
	if r.NoRetry == nil {
		w.do(e.EncodeNil())
	} else {
		w.do(e.EncodeBool(*r.NoRetry))
	}
	w.int64("ra", r.RetryAt)
	w.bytes("body", r.Body)
	w.ops("ops", r.Ops)
	w.str("err", r.Err)
	w.uint32("jit", r.Jitter)
	w.int64("ms", r.Millis)
	if r.Lease != nil {
		w.lease("lease", r.Lease)
	}
	if len(r.Fail) > 0 {
		w.bytes("fail", r.Fail)
	}
	return w.err
}

func (r *CallFinished) DecodeMsgpack(d *msgpack.Decoder) error {
	*r = CallFinished{}
	return readRecord(d, func(k []byte) (bool, error) {
		var err error
		switch string(k) {
		case "at":
			r.At, err = d.DecodeInt64()
		case "run":
			r.RunID, err = d.DecodeString()
		case "call":
			r.Call, err = d.DecodeString()
		case "gen":
			r.Gen, err = d.DecodeUint32()
		case "st":
			r.Status, err = d.DecodeInt()
		case "sdk":
			r.SDK, err = d.DecodeBool()
		case "v":
			r.Version, err = d.DecodeInt()
		case "nr":
			if isNil(d) {
				r.NoRetry, err = nil, d.DecodeNil()
				break
			}
			var b bool
			b, err = d.DecodeBool()
			r.NoRetry = &b
		case "ra":
			r.RetryAt, err = d.DecodeInt64()
		case "body":
			r.Body, err = d.DecodeBytes()
		case "ops":
			r.Ops, err = readOps(d)
		case "err":
			r.Err, err = d.DecodeString()
		case "jit":
			r.Jitter, err = d.DecodeUint32()
		case "ms":
			r.Millis, err = d.DecodeInt64()
		case "lease":
			r.Lease, err = readLease(d)
		case "fail":
			r.Fail, err = d.DecodeBytes()
		default:
			return false, nil
		}
		return true, err
	})
}

func (r *TimerFired) EncodeMsgpack(e *msgpack.Encoder) error {
	w := rowWriter{e: e}
	w.do(e.EncodeMapLen(4 + count(r.Lease != nil)))
	w.int64("at", r.At)
	w.str("run", r.RunID)
	w.str("call", r.Call)
	w.uint32("gen", r.Gen)
	if r.Lease != nil {
		w.lease("lease", r.Lease)
	}
	return w.err
}

func (r *TimerFired) DecodeMsgpack(d *msgpack.Decoder) error {
	*r = TimerFired{}
	return readRecord(d, func(k []byte) (bool, error) {
		var err error
		switch string(k) {
		case "at":
			r.At, err = d.DecodeInt64()
		case "run":
			r.RunID, err = d.DecodeString()
		case "call":
			r.Call, err = d.DecodeString()
		case "gen":
			r.Gen, err = d.DecodeUint32()
		case "lease":
			r.Lease, err = readLease(d)
		default:
			return false, nil
		}
		return true, err
	})
}

func (r *StepsCheckpointed) EncodeMsgpack(e *msgpack.Encoder) error {
	w := rowWriter{e: e}
	w.do(e.EncodeMapLen(5))
	w.int64("at", r.At)
	w.str("run", r.RunID)
	w.str("call", r.Call)
	w.uint32("gen", r.Gen)
	w.ops("steps", r.Steps)
	return w.err
}

func (r *StepsCheckpointed) DecodeMsgpack(d *msgpack.Decoder) error {
	*r = StepsCheckpointed{}
	return readRecord(d, func(k []byte) (bool, error) {
		var err error
		switch string(k) {
		case "at":
			r.At, err = d.DecodeInt64()
		case "run":
			r.RunID, err = d.DecodeString()
		case "call":
			r.Call, err = d.DecodeString()
		case "gen":
			r.Gen, err = d.DecodeUint32()
		case "steps":
			r.Steps, err = readOps(d)
		default:
			return false, nil
		}
		return true, err
	})
}

func (l *LeaseNext) EncodeMsgpack(e *msgpack.Encoder) error {
	w := rowWriter{e: e}
	w.do(e.EncodeMapLen(3 + count(l.Max != 0, l.Each != 0, len(l.Rooms) > 0, l.Keep)))
	w.int64("lease", l.LeaseUntil)
	w.str("node", l.Node)
	w.str("boot", l.Boot)
	if l.Max != 0 {
		w.int("max", l.Max)
	}
	if l.Each != 0 {
		w.int("each", l.Each)
	}
	if len(l.Rooms) > 0 {
		w.key("rooms")
		w.do(e.EncodeArrayLen(len(l.Rooms)))
		for i := range l.Rooms {
			w.do(l.Rooms[i].EncodeMsgpack(e))
		}
	}
	if l.Keep {
		w.bool("keep", l.Keep)
	}
	return w.err
}

func (l *LeaseNext) DecodeMsgpack(d *msgpack.Decoder) error {
	*l = LeaseNext{}
	return readRecord(d, func(k []byte) (bool, error) {
		var err error
		switch string(k) {
		case "lease":
			l.LeaseUntil, err = d.DecodeInt64()
		case "node":
			l.Node, err = d.DecodeString()
		case "boot":
			l.Boot, err = d.DecodeString()
		case "max":
			l.Max, err = d.DecodeInt()
		case "each":
			l.Each, err = d.DecodeInt()
		case "rooms":
			var n int
			if n, err = d.DecodeArrayLen(); err != nil || n < 0 {
				break
			}
			l.Rooms = make([]LeaseRoom, n)
			for i := range l.Rooms {
				if err = l.Rooms[i].DecodeMsgpack(d); err != nil {
					break
				}
			}
		case "keep":
			l.Keep, err = d.DecodeBool()
		default:
			return false, nil
		}
		return true, err
	})
}

func (r *LeaseRoom) EncodeMsgpack(e *msgpack.Encoder) error {
	w := rowWriter{e: e}
	w.do(e.EncodeMapLen(1 + count(r.Fn != "", r.App != "")))
	if r.Fn != "" {
		w.str("fn", r.Fn)
	}
	if r.App != "" {
		w.str("app", r.App)
	}
	w.int("n", r.N)
	return w.err
}

func (r *LeaseRoom) DecodeMsgpack(d *msgpack.Decoder) error {
	*r = LeaseRoom{}
	return readRecord(d, func(k []byte) (bool, error) {
		var err error
		switch string(k) {
		case "fn":
			r.Fn, err = d.DecodeString()
		case "app":
			r.App, err = d.DecodeString()
		case "n":
			r.N, err = d.DecodeInt()
		default:
			return false, nil
		}
		return true, err
	})
}

func (o *Op) EncodeMsgpack(e *msgpack.Encoder) error {
	w := rowWriter{e: e}
	w.do(e.EncodeMapLen(2 + count(o.Name != "", o.DisplayName != "", len(o.Opts) > 0, len(o.Data) > 0, len(o.Error) > 0)))
	w.str("id", o.ID)
	w.str("op", o.Op)
	if o.Name != "" {
		w.str("name", o.Name)
	}
	if o.DisplayName != "" {
		w.str("dn", o.DisplayName)
	}
	if len(o.Opts) > 0 {
		w.bytes("opts", o.Opts)
	}
	if len(o.Data) > 0 {
		w.bytes("data", o.Data)
	}
	if len(o.Error) > 0 {
		w.bytes("error", o.Error)
	}
	return w.err
}

func (o *Op) DecodeMsgpack(d *msgpack.Decoder) error {
	*o = Op{}
	return readRecord(d, func(k []byte) (bool, error) {
		var err error
		switch string(k) {
		case "id":
			o.ID, err = d.DecodeString()
		case "op":
			o.Op, err = d.DecodeString()
		case "name":
			o.Name, err = d.DecodeString()
		case "dn":
			o.DisplayName, err = d.DecodeString()
		case "opts":
			o.Opts, err = d.DecodeBytes()
		case "data":
			o.Data, err = d.DecodeBytes()
		case "error":
			o.Error, err = d.DecodeBytes()
		default:
			return false, nil
		}
		return true, err
	})
}

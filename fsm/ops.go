package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
)

// wireOp is an op as the SDK sends it; unknown fields (checkpoints carry
// many: mode, rawArgs, promise, ...) are ignored.
type wireOp struct {
	ID          string          `json:"id"`
	Op          string          `json:"op"`
	Name        string          `json:"name"`
	DisplayName string          `json:"displayName"`
	Opts        json.RawMessage `json:"opts"`
	Data        json.RawMessage `json:"data"`
	Error       json.RawMessage `json:"error"`
}

// ParseOps reads the ops of an SDK message: a 206 body or a checkpoint's
// steps. It is an array of ops or, in a durable endpoint's last answer,
// one op object. Both the executor and the API read ops with it, so an
// answer and a checkpoint mean the same.
func ParseOps(body []byte) ([]Op, error) {
	body = bytes.TrimSpace(body)
	var wire []wireOp
	if len(body) > 0 && body[0] == '{' {
		var one wireOp
		if err := json.Unmarshal(body, &one); err != nil {
			return nil, err
		}
		wire = []wireOp{one}
	} else if err := json.Unmarshal(body, &wire); err != nil {
		return nil, err
	}
	ops := make([]Op, 0, len(wire))
	for _, w := range wire {
		if w.Op == "" {
			return nil, errors.New("op without an opcode")
		}
		dn := w.DisplayName
		if dn == "" {
			dn = w.Name
		}
		ops = append(ops, Op{ID: w.ID, Op: w.Op, Name: w.Name, DisplayName: dn,
			Opts: nonNullJSON(w.Opts), Data: w.Data, Error: nonNullJSON(w.Error)})
	}
	return ops, nil
}

func nonNullJSON(b json.RawMessage) []byte {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return b
}

package api

import (
	"encoding/json"
	"testing"

	"github.com/cairn-dev/cairn/fsm"
)

// A record's JSON payloads show as JSON, not base64; other bytes stay
// base64, and the result is valid JSON.
func TestRecordBodyShowsJSONPayloads(t *testing.T) {
	r := &fsm.EventAccepted{At: 7, ID: "e1", Name: "a/b", JSON: []byte(`{"name":"a/b", "data":{"n":1}}`)}
	b := recordBody(r)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	ev, ok := m["JSON"].(map[string]any)
	if !ok || ev["name"] != "a/b" || m["At"] != float64(7) || m["ID"] != "e1" {
		t.Fatalf("body %s", b)
	}
	cf := &fsm.CallFinished{Body: []byte{0xff, 0x00}}
	if err := json.Unmarshal(recordBody(cf), &m); err != nil || m["Body"] != "/wA=" {
		t.Fatalf("non-JSON bytes: %v %v", m["Body"], err)
	}
}

package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// recordBody renders a record for GET /v1/log. Records keep JSON payloads
// (an event, a step's output, a function's config) as raw bytes, which
// encoding/json would print as base64; here a []byte holding valid JSON is
// shown as that JSON, so the log reads as what happened. Fields keep their
// Go names and order.
func recordBody(v any) json.RawMessage {
	var buf bytes.Buffer
	writeValue(&buf, reflect.ValueOf(v))
	return buf.Bytes()
}

var (
	marshalerType = reflect.TypeFor[json.Marshaler]()
	bytesType     = reflect.TypeFor[[]byte]()
)

func writeValue(buf *bytes.Buffer, v reflect.Value) {
	if !v.IsValid() {
		buf.WriteString("null")
		return
	}
	if v.Type().Implements(marshalerType) || v.Type() == bytesType {
		writeLeaf(buf, v)
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			buf.WriteString("null")
			return
		}
		writeValue(buf, v.Elem())
	case reflect.Struct:
		buf.WriteByte('{')
		first := true
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			writeLeaf(buf, reflect.ValueOf(name))
			buf.WriteByte(':')
			writeValue(buf, v.Field(i))
		}
		buf.WriteByte('}')
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			buf.WriteString("null")
			return
		}
		buf.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeValue(buf, v.Index(i))
		}
		buf.WriteByte(']')
	case reflect.Map:
		// Maps are few in records; encoding/json sorts their keys.
		m := make(map[string]json.RawMessage, v.Len())
		it := v.MapRange()
		for it.Next() {
			var b bytes.Buffer
			writeValue(&b, it.Value())
			m[fmt.Sprint(it.Key().Interface())] = b.Bytes()
		}
		writeLeaf(buf, reflect.ValueOf(m))
	default:
		writeLeaf(buf, v)
	}
}

// writeLeaf writes what encoding/json makes of v, except that bytes
// holding valid JSON are written as that JSON.
func writeLeaf(buf *bytes.Buffer, v reflect.Value) {
	if v.Type() == bytesType {
		if b := v.Bytes(); b == nil {
			buf.WriteString("null")
			return
		} else if json.Valid(b) {
			_ = json.Compact(buf, b)
			return
		}
	}
	b, err := json.Marshal(v.Interface())
	if err != nil {
		b, _ = json.Marshal(err.Error())
	}
	buf.Write(b)
}

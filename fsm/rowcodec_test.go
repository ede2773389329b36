package fsm

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The plain types have the rows' fields and tags but not their codecs, so
// msgpack encodes them by reflection: what rows were before the codecs.
type (
	plainRun     Run
	plainCall    Call
	plainHistory HistoryEntry
)

// The hand-written codecs must write the bytes reflection writes and read
// what it reads, for values with every field empty, set or anything between.
func TestRowCodecsMatchReflection(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		full := i%10 == 0 // every field set: a missed field shows up
		checkRow(t, rng, full, &Run{}, &plainRun{})
		checkRow(t, rng, full, &Call{}, &plainCall{})
		checkRow(t, rng, full, &HistoryEntry{}, &plainHistory{})
	}
}

func checkRow(t *testing.T, rng *rand.Rand, full bool, row, plain any) {
	t.Helper()
	fill(rng, reflect.ValueOf(plain).Elem(), full)
	reflect.ValueOf(row).Elem().Set(reflect.ValueOf(plain).Elem().Convert(reflect.TypeOf(row).Elem()))
	want, err := msgpack.Marshal(plain)
	if err != nil {
		t.Fatal(err)
	}
	got, err := msgpack.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%T encodes as\n%x\nreflection writes\n%x\nfor %+v", row, got, want, plain)
	}
	if full {
		var m map[string]any
		if err := msgpack.Unmarshal(got, &m); err != nil || len(m) != reflect.TypeOf(plain).Elem().NumField() {
			t.Fatalf("%T: %d keys written for %d fields (%v): is a field missing from its codec?", row, len(m), reflect.TypeOf(plain).Elem().NumField(), err)
		}
	}
	back := reflect.New(reflect.TypeOf(row).Elem())
	if err := msgpack.Unmarshal(want, back.Interface()); err != nil {
		t.Fatal(err)
	}
	plainBack := reflect.New(reflect.TypeOf(plain).Elem())
	if err := msgpack.Unmarshal(want, plainBack.Interface()); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Elem().Interface(), plainBack.Elem().Convert(reflect.TypeOf(row).Elem()).Interface()) {
		t.Fatalf("%T decodes as %+v, reflection reads %+v", row, back.Elem().Interface(), plainBack.Elem().Interface())
	}
}

// fill sets each field of v to a random value: empty, nil or set (always
// set with full), the fields of structs it holds too.
func fill(rng *rand.Rand, v reflect.Value, full bool) {
	for i := range v.NumField() {
		f := v.Field(i)
		pick := 2
		if !full {
			pick = rng.IntN(3) // 0 zero, 1 empty but not nil, 2 set
		}
		switch f.Kind() {
		case reflect.String:
			if pick == 2 {
				f.SetString(randString(rng))
			} else {
				f.SetString("")
			}
		case reflect.Bool:
			f.SetBool(pick == 2)
		case reflect.Int, reflect.Int64:
			n := []int64{0, 0, 1 + rng.Int64N(100), -rng.Int64N(1 << 40), rng.Int64()}[pick+rng.IntN(3)*min(pick, 1)]
			if full && n == 0 {
				n = 7
			}
			f.SetInt(n)
		case reflect.Uint32, reflect.Uint64:
			n := uint64(0)
			if pick == 2 {
				n = 1 + rng.Uint64N(1<<31)
			}
			f.SetUint(n)
		case reflect.Slice:
			switch {
			case pick == 0:
				f.Set(reflect.Zero(f.Type()))
			case pick == 1:
				f.Set(reflect.MakeSlice(f.Type(), 0, 0))
			default:
				n := 1 + rng.IntN(4)
				s := reflect.MakeSlice(f.Type(), n, n)
				for j := range n {
					switch e := s.Index(j); e.Kind() {
					case reflect.String:
						e.SetString(randString(rng))
					case reflect.Uint8:
						e.SetUint(uint64(rng.IntN(256)))
					case reflect.Int:
						e.SetInt(rng.Int64N(1000) - 10)
					case reflect.Struct:
						fill(rng, e, full)
					}
				}
				f.Set(s)
			}
		case reflect.Pointer:
			if pick == 0 {
				f.Set(reflect.Zero(f.Type()))
				break
			}
			p := reflect.New(f.Type().Elem())
			switch e := p.Elem(); e.Kind() {
			case reflect.Bool:
				e.SetBool(pick == 2)
			case reflect.Struct:
				fill(rng, e, full)
			default:
				panic("fill: no case for " + f.Type().String())
			}
			f.Set(p)
		default:
			panic("fill: no case for " + f.Type().String())
		}
	}
}

func randString(rng *rand.Rand) string {
	b := make([]byte, 1+rng.IntN(40))
	for i := range b {
		b[i] = byte('a' + rng.IntN(26))
	}
	if rng.IntN(20) == 0 {
		return string(bytes.Repeat(b, 10)) // past fixstr and str8 lengths
	}
	return string(b)
}

// A row written by a newer release may have keys this one does not know,
// short or long: they are skipped.
func TestRowCodecsSkipUnknownKeys(t *testing.T) {
	raw, err := msgpack.Marshal(map[string]any{
		"id": "r1", "zz": []any{1, "x"}, strings.Repeat("k", 40): map[string]any{"a": 1}, "calls": 3, "st": "running",
	})
	if err != nil {
		t.Fatal(err)
	}
	var r Run
	if err := msgpack.Unmarshal(raw, &r); err != nil || r.ID != "r1" || r.Calls != 3 || r.Status != "running" {
		t.Fatalf("decoded %+v, %v", r, err)
	}
}

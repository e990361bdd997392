package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// filler sets every field reachable from a value to a non-zero value, so
// that a field added to the API later is covered without anyone updating
// this test.
type filler struct{ n int }

func (f *filler) fill(t testing.TB, v reflect.Value, path string) {
	t.Helper()
	f.n++
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, f.n, time.UTC)))
		return
	case reflect.TypeFor[api.TaskState]():
		v.Set(reflect.ValueOf(api.TaskState(1 + f.n%int(api.TaskStateOrphaned))))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-int64(f.n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(f.n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(f.n) / 1000)
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", f.n))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		f.fill(t, v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			f.fill(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for i := range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			f.fill(t, k, path+"[key]")
			e := reflect.New(v.Type().Elem()).Elem()
			f.fill(t, e, fmt.Sprintf("%s[%d]", path, i))
			v.SetMapIndex(k, e)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				f.fill(t, v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		}
	default:
		t.Fatalf("%s: kind %s: teach this test about it", path, v.Kind())
	}
}

// apiValues are every stored object, filled.
func apiValues(t testing.TB) []any {
	vals := []any{new(api.Cluster), new(api.Node), new(api.Service), new(api.Task),
		new(api.Network), new(api.Secret), new(api.Config)}
	f := &filler{}
	for _, v := range vals {
		f.fill(t, reflect.ValueOf(v).Elem(), fmt.Sprintf("%T", v))
	}
	return vals
}

func roundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%T): %v", v, err)
	}
	got := reflect.New(reflect.TypeOf(v).Elem()).Interface()
	if err := Unmarshal(b, got); err != nil {
		t.Fatalf("Unmarshal(%T): %v", v, err)
	}
	return got
}

func TestRoundTripEveryAPIObject(t *testing.T) {
	for _, v := range apiValues(t) {
		got := roundTrip(t, v)
		if !reflect.DeepEqual(got, v) {
			t.Errorf("%T: round trip differs\n got %+v\nwant %+v", v, got, v)
		}
		// What JSON makes of both is the same, byte for byte.
		jw, _ := json.Marshal(v)
		jg, _ := json.Marshal(got)
		if string(jw) != string(jg) {
			t.Errorf("%T: JSON of the round trip differs", v)
		}
	}
}

func TestEncodingIsSmallerThanJSON(t *testing.T) {
	for _, v := range apiValues(t) {
		b, _ := Marshal(v)
		j, _ := json.Marshal(v)
		if len(b) >= len(j) {
			t.Errorf("%T: %d bytes, JSON %d", v, len(b), len(j))
		}
	}
}

type inner struct {
	A string `json:"A"`
	N int32  `json:"N,omitempty"`
}

type small struct {
	S      string            `json:"S"`
	I      int64             `json:"I"`
	U      uint16            `json:"U"`
	F      float64           `json:"F"`
	B      bool              `json:"B"`
	T      time.Time         `json:"T"`
	Bytes  []byte            `json:"Bytes"`
	List   []inner           `json:"List"`
	Ptrs   []*inner          `json:"Ptrs"`
	M      map[string]string `json:"M"`
	P      *inner            `json:"P"`
	State  api.TaskState     `json:"State"`
	Nested inner             `json:"Nested"`
	Hidden string            `json:"-"`
	inner
}

func TestRoundTripValues(t *testing.T) {
	zone := time.FixedZone("", -7*3600)
	cases := []small{
		{},
		{S: "x", I: math.MinInt64, U: math.MaxUint16, F: math.Inf(-1), B: true},
		{F: math.Copysign(0, -1)},
		{T: time.Date(2026, 12, 4, 19, 0, 0, 123456789, time.UTC)},
		{Bytes: []byte{}, List: []inner{}, Ptrs: []*inner{}, M: map[string]string{}},
		{Bytes: []byte{0, 1, 2}, List: []inner{{A: "a"}, {}}, Ptrs: []*inner{nil, {N: -3}}, M: map[string]string{"": "", "k": "v"}},
		{P: &inner{}, State: api.TaskStateRunning, Nested: inner{A: "n"}},
		{inner: inner{A: "embedded"}},
	}
	for i, c := range cases {
		got := roundTrip(t, &c).(*small)
		if !reflect.DeepEqual(*got, c) {
			t.Errorf("case %d: got %+v, want %+v", i, *got, c)
		}
	}
	// A time in another zone keeps its instant and offset, as in JSON.
	in := small{T: time.Date(2026, 12, 4, 12, 0, 0, 5, zone)}
	got := roundTrip(t, &in).(*small)
	if !got.T.Equal(in.T) || got.T.Format(time.RFC3339Nano) != in.T.Format(time.RFC3339Nano) {
		t.Errorf("time: got %v, want %v", got.T, in.T)
	}
	// Hidden is never written.
	got = roundTrip(t, &small{Hidden: "h"}).(*small)
	if got.Hidden != "" {
		t.Errorf("a field tagged - travelled: %q", got.Hidden)
	}
}

// Another version's struct: fields added, one removed, one renamed.
type smallV2 struct {
	S     string                      `json:"S"`
	Extra map[string][]inner          `json:"Extra"`
	List  []inner                     `json:"List"`
	More  *struct{ X, Y []float64 }   `json:"More"`
	Sub   struct{ Z map[string]bool } `json:"Sub"`
	Num   int64                       `json:"Num"`
	Ptrs  []*inner                    `json:"Ptrs"`
	When  time.Time                   `json:"When"`
}

func TestUnknownFieldsAreSkipped(t *testing.T) {
	v2 := smallV2{
		S:     "s",
		Extra: map[string][]inner{"a": {{A: "x"}}, "b": nil},
		List:  []inner{{A: "l"}},
		More:  &struct{ X, Y []float64 }{X: []float64{1, 2}},
		Sub:   struct{ Z map[string]bool }{Z: map[string]bool{"z": true}},
		Num:   -9,
		Ptrs:  []*inner{nil, {A: "p"}},
		When:  time.Unix(1, 2).UTC(),
	}
	b, err := Marshal(&v2)
	if err != nil {
		t.Fatal(err)
	}
	var v1 small
	if err := Unmarshal(b, &v1); err != nil {
		t.Fatal(err)
	}
	want := small{S: "s", List: []inner{{A: "l"}}, Ptrs: []*inner{nil, {A: "p"}}}
	if !reflect.DeepEqual(v1, want) {
		t.Errorf("got %+v, want %+v", v1, want)
	}
	// And back: the older version's fields that the newer lacks are
	// skipped too, and Unmarshal zeroes what it decodes into.
	b, _ = Marshal(&small{S: "t", I: 5, M: map[string]string{"k": "v"}, Nested: inner{A: "n"}})
	v2 = smallV2{Num: 1, Extra: map[string][]inner{"x": nil}}
	if err := Unmarshal(b, &v2); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(v2, smallV2{S: "t"}) {
		t.Errorf("got %+v", v2)
	}
}

func TestWrongTypesAreRefused(t *testing.T) {
	type withIface struct{ X any }
	type withChan struct{ C chan int }
	type withIntKeys struct{ M map[int]string }
	type deep struct{ W withIface }
	type withRaw struct{ R json.RawMessage }
	for _, v := range []any{&withIface{}, &withChan{}, &withIntKeys{}, &deep{}, &withRaw{}, small{}, (*small)(nil), new(int)} {
		if _, err := Marshal(v); err == nil {
			t.Errorf("Marshal(%T) succeeded", v)
		}
		if err := Unmarshal([]byte{0}, v); err == nil {
			t.Errorf("Unmarshal(%T) succeeded", v)
		}
	}
	if _, err := Marshal(&small{State: api.TaskState(99)}); err == nil || !strings.Contains(err.Error(), "invalid task state") {
		t.Errorf("a task state without a name: %v", err)
	}
	// A value too large for the field it lands in.
	type wide struct {
		N int64  `json:"N"`
		U uint64 `json:"U"`
	}
	type narrow struct {
		N int32  `json:"N"`
		U uint16 `json:"U,omitempty"`
	}
	for _, w := range []wide{{N: math.MaxInt32 + 1}, {N: math.MinInt32 - 1}, {U: 1 << 16}} {
		b, _ := Marshal(&w)
		if err := Unmarshal(b, &narrow{}); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "overflows") {
			t.Errorf("%+v into narrow: %v", w, err)
		}
	}
	// A field of another wire type.
	type asString struct {
		N string `json:"N"`
	}
	b, _ := Marshal(&asString{N: "x"})
	if err := Unmarshal(b, &narrow{}); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "narrow.N: wire type 2, want 0") {
		t.Errorf("string into int32: %v", err)
	}
}

func TestMalformedInputIsRefused(t *testing.T) {
	for _, v := range apiValues(t) {
		b, _ := Marshal(v)
		for i := range len(b) {
			got := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := Unmarshal(b[:i], got); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%T cut at %d of %d: %v", v, i, len(b), err)
			}
		}
		got := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := Unmarshal(append(b, 0), got); !errors.Is(err, ErrMalformed) {
			t.Errorf("%T with a byte after its end: %v", v, err)
		}
	}
	// Counts and lengths beyond the input allocate nothing.
	for _, b := range [][]byte{
		{4, 'L', 'i', 's', 't', wtList, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{1, 'M', wtMap, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{1, 'S', wtBytes, 0xff, 0xff, 0xff, 0xff, 0x0f},
		{0xff, 0xff, 0xff, 0xff, 0x0f},
		{1, 'Q', 9, 0},
	} {
		if err := Unmarshal(b, &small{}); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: %v", b, err)
		}
	}
	// Nesting beyond MaxDepth, in a field the decoder skips.
	var b []byte
	for range MaxDepth + 1 {
		b = append(b, 1, 'z', wtStruct)
	}
	for range MaxDepth + 1 {
		b = append(b, 0)
	}
	b = append(b, 0)
	if err := Unmarshal(b, &small{}); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "too deep") {
		t.Errorf("deep nesting: %v", err)
	}
}

type recursive struct {
	Name     string       `json:"Name"`
	Children []*recursive `json:"Children"`
	Next     *recursive   `json:"Next"`
}

func TestRecursiveTypes(t *testing.T) {
	v := &recursive{Name: "a", Children: []*recursive{{Name: "b"}, nil}, Next: &recursive{Next: &recursive{Name: "c"}}}
	got := roundTrip(t, v)
	if !reflect.DeepEqual(got, v) {
		t.Errorf("got %+v", got)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, v := range apiValues(f) {
		b, _ := Marshal(v)
		f.Add(b)
	}
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{new(api.Service), new(api.Task), new(api.Cluster), new(small), new(recursive)} {
			if err := Unmarshal(data, v); err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("%T: error not ErrMalformed: %v", v, err)
				}
				continue
			}
			// What decodes encodes, and decodes again to the same value.
			b, err := Marshal(v)
			if err != nil {
				t.Fatalf("%T: decoded but does not encode: %v", v, err)
			}
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := Unmarshal(b, again); err != nil {
				t.Fatalf("%T: re-encoding does not decode: %v", v, err)
			}
			// Compared as JSON: a time decoded with an offset gets a zone
			// of its own each time (not DeepEqual), and NaN is not equal
			// to itself; JSON refuses NaN and years past 9999, and must
			// then refuse both.
			j1, e1 := json.Marshal(v)
			j2, e2 := json.Marshal(again)
			if (e1 == nil) != (e2 == nil) || string(j1) != string(j2) {
				t.Fatalf("%T: round trip of a decoded value differs:\n%s (%v)\n%s (%v)", v, j1, e1, j2, e2)
			}
		}
	})
}

// Nil and empty slices and maps among a map's values or a list's elements
// come back as they went: a replica that decodes an entry must hold what
// its proposer holds (a nil []byte used to come back as []byte{}).
func TestNilAndEmptyAmongValues(t *testing.T) {
	type holder struct {
		Bytes map[string][]byte            `json:"Bytes"`
		Lists [][]string                   `json:"Lists"`
		Maps  map[string]map[string]string `json:"Maps"`
	}
	in := holder{
		Bytes: map[string][]byte{"nil": nil, "empty": {}, "some": {1}},
		Lists: [][]string{nil, {}, {"a"}},
		Maps:  map[string]map[string]string{"nil": nil, "empty": {}, "some": {"k": "v"}},
	}
	b, err := Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var got holder
	if err := Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("got %#v, want %#v", got, in)
	}
	if got.Bytes["nil"] != nil || got.Bytes["empty"] == nil || got.Lists[0] != nil || got.Lists[1] == nil || got.Maps["nil"] != nil || got.Maps["empty"] == nil {
		t.Fatalf("nil and empty told apart wrongly: %#v", got)
	}
}

type orderOuter struct {
	Name  string
	ByKey map[string]orderInner
	List  []map[string]string
	Ptr   *orderInner
	Bytes map[string][]byte
}

type orderInner struct {
	Labels map[string]string
	N      int
	F      float64
}

// Every map, nested ones included, is written in one order however Go
// iterates it (two stores with the same state write the same snapshot
// bytes), and the bytes still decode to the value.
func TestMapsEncodeInOneOrder(t *testing.T) {
	labels := func(n, seed int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%d-%d", seed, i)] = fmt.Sprintf("v%d", i)
		}
		return m
	}
	v := orderOuter{Name: "x", ByKey: map[string]orderInner{}, Ptr: &orderInner{Labels: labels(9, 1), N: -3},
		Bytes: map[string][]byte{"a": {1}, "b": {2, 3}, "": {}}}
	for i := range 8 {
		v.ByKey[fmt.Sprintf("inner-%d", i)] = orderInner{Labels: labels(i, i), N: i, F: float64(i) / 3}
		v.List = append(v.List, labels(i, 100+i))
	}
	var want []byte
	for i := range 20 {
		b, err := Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			want = b
		} else if !bytes.Equal(b, want) {
			t.Fatalf("encoding %d: other bytes", i)
		}
	}
	var got orderOuter
	if err := Unmarshal(want, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("decodes to\n%+v\nwant %+v", got, v)
	}
}

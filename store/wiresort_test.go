package store

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/apiary-io/apiary/internal/wire"
)

type sortOuter struct {
	Name  string
	ByKey map[string]sortInner
	List  []map[string]string
	Ptr   *sortInner
	Bytes map[string][]byte
}

type sortInner struct {
	Labels map[string]string
	N      int
	F      float64
}

// The sorter writes every map, nested ones included, in one order however
// Go iterates them, and the bytes still decode to the value.
func TestSortMapsIsCanonical(t *testing.T) {
	labels := func(n, seed int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%d-%d", seed, i)] = fmt.Sprintf("v%d", i)
		}
		return m
	}
	v := sortOuter{Name: "x", ByKey: map[string]sortInner{}, Ptr: &sortInner{Labels: labels(9, 1), N: -3},
		Bytes: map[string][]byte{"a": {1}, "b": {2, 3}, "": {}}}
	for i := range 8 {
		v.ByKey[fmt.Sprintf("inner-%d", i)] = sortInner{Labels: labels(i, i), N: i, F: float64(i) / 3}
		v.List = append(v.List, labels(i, 100+i))
	}
	var sorter mapSorter
	var want []byte
	for i := range 20 {
		b, err := wire.Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		if err := sorter.sortMaps(b); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			want = b
		} else if !bytes.Equal(b, want) {
			t.Fatalf("encoding %d sorts to other bytes", i)
		}
	}
	var got sortOuter
	if err := wire.Unmarshal(want, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("sorted encoding decodes to\n%+v\nwant %+v", got, v)
	}
	// What is sorted stays as it is; a cut encoding is refused.
	again := bytes.Clone(want)
	if err := sorter.sortMaps(again); err != nil || !bytes.Equal(again, want) {
		t.Fatalf("sorting a sorted encoding: %v, changed %v", err, !bytes.Equal(again, want))
	}
	for i := range len(want) {
		if err := sorter.sortMaps(bytes.Clone(want[:i])); err == nil {
			t.Fatalf("an encoding cut at %d of %d: sorted", i, len(want))
		}
	}
	if err := sorter.sortMaps(append(bytes.Clone(want), 0)); err == nil {
		t.Fatal("a byte after the encoding: sorted")
	}
}

package idmap

import (
	"fmt"
	"testing"
)

// TestShrinks: a map that held 100,000 IDs and keeps 10 moves to a Go map
// sized for them, with the 10 intact.
func TestShrinks(t *testing.T) {
	var s Map[int]
	for i := range 100_000 {
		s.Put(fmt.Sprint("t", i), i)
	}
	for i := 10; i < 100_000; i++ {
		s.Delete(fmt.Sprint("t", i))
	}
	if s.Len() != 10 || s.peak > 4*shrinkFrom {
		t.Fatalf("%d IDs, peak %d: the map of 100,000 was kept", s.Len(), s.peak)
	}
	for i := range 10 {
		if v, ok := s.Get(fmt.Sprint("t", i)); !ok || v != i {
			t.Fatalf("t%d lost", i)
		}
	}
	s.Delete("t0")
	s.Put("new", -1)
	n := 0
	s.All(func(string, int) bool { n++; return true })
	if n != 10 || s.Len() != 10 {
		t.Fatalf("after a shrink: %d IDs, %d visited", s.Len(), n)
	}
}

// Package idmap is a map by ID that gives its memory back as it empties.
// Go maps never release the space of deleted entries: a loop's view of a
// removed service of 100,000 tasks kept ~18 MB after they were gone. A Map
// moves to a fresh Go map once it holds less than a quarter of the most it
// held (amortised O(1) per deletion).
package idmap

// Map maps IDs to values. The zero Map is empty and ready to use.
type Map[V any] struct {
	m    map[string]V
	peak int
}

// shrinkFrom is the size below which a map is left alone.
const shrinkFrom = 1024

// Put sets the value of id.
func (s *Map[V]) Put(id string, v V) {
	if s.m == nil {
		s.m = map[string]V{}
	}
	s.m[id] = v
	s.peak = max(s.peak, len(s.m))
}

// Get returns the value of id.
func (s *Map[V]) Get(id string) (V, bool) {
	v, ok := s.m[id]
	return v, ok
}

// Delete removes id.
func (s *Map[V]) Delete(id string) {
	delete(s.m, id)
	if s.peak >= shrinkFrom && len(s.m) < s.peak/4 {
		m := make(map[string]V, len(s.m))
		for k, v := range s.m {
			m[k] = v
		}
		s.m, s.peak = m, len(m)
	}
}

// Len returns the number of IDs.
func (s *Map[V]) Len() int { return len(s.m) }

// All calls f for every ID and value, in no order, until f returns false.
// f must not change the map.
func (s *Map[V]) All(f func(id string, v V) bool) {
	for k, v := range s.m {
		if !f(k, v) {
			return
		}
	}
}

package dockerapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/filters"
)

// listFilters reads a list request's filters: only the keys in accepted,
// at most Config.MaxFilterValues values over all keys. Values are matched
// literally (prefixes for names and IDs, as swarmkit does), never as
// regular expressions.
func (s *Server) listFilters(r *http.Request, accepted ...string) (filters.Args, error) {
	f, err := filters.FromJSON(r.URL.Query().Get("filters"))
	if err != nil {
		return f, errInvalid(err)
	}
	n := 0
	for _, k := range f.Keys() {
		if !slices.Contains(accepted, k) {
			return f, errInvalid(fmt.Errorf("invalid filter '%s'", k))
		}
		n += len(f.Get(k))
	}
	if n > s.cfg.MaxFilterValues {
		return f, errInvalid(fmt.Errorf("too many filter values: %d, at most %d", n, s.cfg.MaxFilterValues))
	}
	return f, nil
}

// anyPrefix reports whether no values are given for key or one of them
// starts v.
func anyPrefix(f filters.Args, key, v string) bool {
	vals := f.Get(key)
	if len(vals) == 0 {
		return true
	}
	for _, p := range vals {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

// anyEqual reports whether no values are given for key or one equals v.
func anyEqual(f filters.Args, key, v string) bool {
	vals := f.Get(key)
	return len(vals) == 0 || slices.Contains(vals, v)
}

// allLabels reports whether labels have every "key" or "key=value" given
// for filter key.
func allLabels(f filters.Args, key string, labels map[string]string) bool {
	for _, l := range f.Get(key) {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}

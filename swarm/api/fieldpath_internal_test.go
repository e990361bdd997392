package api

import (
	"fmt"
	"testing"
	"unsafe"
)

// A path is joined once and given again; the paths kept stay bounded
// whatever the prefixes, and a path past the bound is still right.
func TestFieldPathKeepsBoundedPaths(t *testing.T) {
	a, b := fieldPath("update_config", "delay"), fieldPath("update_config", "delay")
	if a != "update_config.delay" || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatalf("%q and %q are not one path", a, b)
	}
	if got := fieldPath("", "name"); got != "name" {
		t.Fatalf("top-level field: %q", got)
	}
	for i := range 2 * maxFieldPaths {
		prefix := fmt.Sprintf("networks[%d]", i)
		if got := fieldPath(prefix, "target"); got != prefix+".target" {
			t.Fatalf("%q", got)
		}
	}
	fieldPaths.RLock()
	n := len(fieldPaths.m)
	fieldPaths.RUnlock()
	if n > maxFieldPaths {
		t.Fatalf("%d paths kept, at most %d", n, maxFieldPaths)
	}
}

// Package bytesize reads and prints byte counts as Docker's CLI does, in
// binary units (`docker run --memory 512m` is 512 MiB), through
// github.com/docker/go-units. It adds what that package leaves to its
// callers: surrounding spaces, refusing counts an int64 cannot hold, and
// negative counts in print.
package bytesize

import (
	"fmt"
	"math"
	"strings"

	units "github.com/docker/go-units"
)

// Example is a size to quote in errors, so that every reader of sizes
// asks for the same form.
const Example = "512M or 2GiB"

// maxExact is the largest count a size can convert to without overflow:
// go-units computes in float64, and the largest float64 below 2^63 is
// 2^63-1024.
const maxExact = math.MaxInt64 - 1023

// Parse reads a size with units.RAMInBytes: a non-negative number with an
// optional unit b, k, m, g, t or p (powers of 1024, case-insensitive),
// which may be followed by "b" or "ib" ("4g", "4GB" and "4GiB" are all
// 4<<30). A fraction of a byte is dropped ("1.5" is 1).
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	n, err := units.RAMInBytes(t)
	if err != nil {
		return 0, fmt.Errorf("%v: want a size such as %s", err, Example)
	}
	// RAMInBytes converts its float64 product to int64 unchecked, and Go
	// leaves an out-of-range conversion to the platform: amd64 gives
	// math.MinInt64 ("1e30g" was a negative size), arm64 saturates at
	// math.MaxInt64. Neither is a count a float64 below 2^63 truncates to.
	if n < 0 || n > maxExact {
		return 0, fmt.Errorf("%q is too large: at most %s", t, Format(maxExact))
	}
	return n, nil
}

// Format prints a count as units.BytesSize does, with a binary suffix and
// four significant digits ("512B", "1.5KiB", "2GiB", "1.001GiB"), and a
// minus sign before a negative count.
func Format(n int64) string {
	if n < 0 {
		return "-" + units.BytesSize(-float64(n))
	}
	return units.BytesSize(float64(n))
}

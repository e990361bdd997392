package bytesize_test

import (
	"math"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/internal/bytesize"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "512": 512, "512B": 512, "512b": 512, "64k": 64 << 10, "64KB": 64 << 10, "4m": 4 << 20,
		"4MiB": 4 << 20, "1.5g": 3 << 29, "4GB": 4 << 30, "4GiB": 4 << 30, "2t": 2 << 40, "1p": 1 << 50,
		" 1 GiB ": 1 << 30, "1.5": 1, "8191p": 8191 << 50, "9223372036854774784": math.MaxInt64 - 1023,
	} {
		if got, err := bytesize.Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for in, why := range map[string]string{
		"":                    "invalid size",
		"x":                   "invalid size",
		"GiB":                 "invalid size",
		"1q":                  "invalid suffix",
		"1kbb":                "invalid suffix",
		"1.2.3g":              "invalid syntax",
		"-1":                  "invalid size",
		"-1M":                 "invalid size",
		"NaN":                 "invalid size",
		"Inf":                 "invalid size",
		"1e400":               "out of range",
		"1e30g":               "too large",
		"8192p":               "too large",
		"9223372036854775807": "too large",
	} {
		got, err := bytesize.Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), why) {
			t.Errorf("Parse(%q): error %q does not say %q", in, err, why)
		}
		if why != "too large" && !strings.Contains(err.Error(), bytesize.Example) {
			t.Errorf("Parse(%q): error %q gives no example", in, err)
		}
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[int64]string{
		0: "0B", 1023: "1023B", 1024: "1KiB", 1536: "1.5KiB", 512 << 20: "512MiB", 2 << 30: "2GiB",
		1<<30 + 1<<20: "1.001GiB", 3 << 40: "3TiB", 1<<30 + 1<<28: "1.25GiB", -(2 << 30): "-2GiB",
		math.MaxInt64: "8EiB", math.MinInt64: "-8EiB",
	} {
		if got := bytesize.Format(in); got != want {
			t.Errorf("Format(%d) = %s, want %s", in, got, want)
		}
	}
}

// TestFormatParses: what Format prints, Parse reads back to the count
// within Format's four significant digits and the byte a dropped fraction
// loses.
func TestFormatParses(t *testing.T) {
	for _, n := range []int64{0, 1, 1023, 1024, 1220, 1536, 4095, 512 << 20, 1<<30 + 1<<20, 3 << 40, 5 << 50} {
		s := bytesize.Format(n)
		back, err := bytesize.Parse(s)
		if err != nil {
			t.Fatalf("Parse(Format(%d) = %q): %v", n, s, err)
		}
		if math.Abs(float64(back-n)) > 5e-4*float64(n)+1 {
			t.Errorf("Parse(Format(%d) = %q) = %d", n, s, back)
		}
	}
}

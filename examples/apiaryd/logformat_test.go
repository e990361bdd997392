package main

import (
	"log/slog"
	"strings"
	"testing"
)

// --log-format picks slog's text or JSON handler; another value is
// refused naming the flag.
func TestLogFormat(t *testing.T) {
	for _, c := range []struct {
		format string
		json   bool
	}{{"text", false}, {"", false}, {"json", true}} {
		o := nodeOptions{executor: "fake", logLevel: "info", logFormat: c.format}
		log, err := o.check()
		if err != nil {
			t.Fatalf("--log-format %q: %v", c.format, err)
		}
		if _, isJSON := log.Handler().(*slog.JSONHandler); isJSON != c.json {
			t.Errorf("--log-format %q: handler %T", c.format, log.Handler())
		}
	}
	o := nodeOptions{executor: "fake", logLevel: "info", logFormat: "xml"}
	if _, err := o.check(); err == nil || !strings.Contains(err.Error(), `--log-format: "xml" is not text or json`) {
		t.Errorf("--log-format xml: %v", err)
	}
}

package testutil_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/apiary-io/apiary/internal/testutil"
)

func TestDiscardLoggerIsDisabledAtEveryLevel(t *testing.T) {
	l := testutil.DiscardLogger()
	for _, lvl := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		if l.Enabled(context.Background(), lvl) {
			t.Errorf("enabled at %v; a discard logger should not even format records", lvl)
		}
	}
	l.Error("dropped", "k", "v") // must not panic or print
}

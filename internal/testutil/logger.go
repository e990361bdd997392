package testutil

import "log/slog"

// DiscardLogger returns a logger that drops every record: components under
// test log a lot, and test output should show only what the test reports.
func DiscardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

package raft

import (
	"context"
	"fmt"
	"log/slog"

	etcdraft "go.etcd.io/raft/v3"
)

// slogLogger routes etcd raft's logging into log/slog, so that the library
// logs through the embedding program's logger like everything else.
type slogLogger struct{ l *slog.Logger }

var _ etcdraft.Logger = slogLogger{}

func (s slogLogger) log(level slog.Level, msg string) {
	// The message is formatted only when the level is enabled: raft logs at
	// debug level on hot paths.
	s.l.Log(context.Background(), level, msg)
}

func (s slogLogger) enabled(level slog.Level) bool {
	return s.l.Enabled(context.Background(), level)
}

func (s slogLogger) Debug(v ...any) {
	if s.enabled(slog.LevelDebug) {
		s.log(slog.LevelDebug, fmt.Sprint(v...))
	}
}

func (s slogLogger) Debugf(format string, v ...any) {
	if s.enabled(slog.LevelDebug) {
		s.log(slog.LevelDebug, fmt.Sprintf(format, v...))
	}
}
func (s slogLogger) Info(v ...any)                 { s.log(slog.LevelInfo, fmt.Sprint(v...)) }
func (s slogLogger) Infof(format string, v ...any) { s.log(slog.LevelInfo, fmt.Sprintf(format, v...)) }
func (s slogLogger) Warning(v ...any)              { s.log(slog.LevelWarn, fmt.Sprint(v...)) }
func (s slogLogger) Warningf(format string, v ...any) {
	s.log(slog.LevelWarn, fmt.Sprintf(format, v...))
}
func (s slogLogger) Error(v ...any) { s.log(slog.LevelError, fmt.Sprint(v...)) }
func (s slogLogger) Errorf(format string, v ...any) {
	s.log(slog.LevelError, fmt.Sprintf(format, v...))
}

// Fatal and Panic mean a broken raft invariant. A library must not exit the
// program, so both panic after logging; the embedding program decides.
func (s slogLogger) Fatal(v ...any) { s.Panic(v...) }
func (s slogLogger) Fatalf(format string, v ...any) {
	s.Panicf(format, v...)
}

func (s slogLogger) Panic(v ...any) {
	msg := fmt.Sprint(v...)
	s.log(slog.LevelError, msg)
	panic(msg)
}

func (s slogLogger) Panicf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	s.log(slog.LevelError, msg)
	panic(msg)
}

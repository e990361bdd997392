package pki

import (
	"context"
	"log/slog"
	"sync/atomic"

	cflog "github.com/cloudflare/cfssl/log"
)

// cfssl logs through its own package-level logger (to the standard log by
// default). Importing pki routes it into slog instead, so an embedding
// program sees one log stream with one format.
var cfsslLogger atomic.Pointer[slog.Logger]

func init() { cflog.SetLogger(cfsslWriter{}) }

// SetCFSSLLogger sends cfssl's messages to l (nil: slog.Default() at the
// time of each message, the initial setting). cfssl's logger is global to
// the process, so this is too.
func SetCFSSLLogger(l *slog.Logger) { cfsslLogger.Store(l) }

// cfsslWriter implements cfssl's log.SyslogWriter. cfssl logs every CSR
// and signature at Info ("received CSR", "signature request received"):
// that is per-operation chatter for us, so it becomes Debug; warnings and
// errors keep their level.
type cfsslWriter struct{}

func (cfsslWriter) log(level slog.Level, msg string) {
	l := cfsslLogger.Load()
	if l == nil {
		l = slog.Default()
	}
	l.Log(context.Background(), level, msg, "component", "cfssl")
}

func (w cfsslWriter) Debug(m string)   { w.log(slog.LevelDebug, m) }
func (w cfsslWriter) Info(m string)    { w.log(slog.LevelDebug, m) }
func (w cfsslWriter) Warning(m string) { w.log(slog.LevelWarn, m) }
func (w cfsslWriter) Err(m string)     { w.log(slog.LevelError, m) }
func (w cfsslWriter) Crit(m string)    { w.log(slog.LevelError, m) }
func (w cfsslWriter) Emerg(m string)   { w.log(slog.LevelError, m) }

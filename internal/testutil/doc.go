// Package testutil holds the helpers the module's tests share: waiting for a
// condition with a deadline, and a logger that discards everything.
//
// It is an ordinary package (not a _test package) so that tests of several
// packages can import it; nothing outside tests should.
package testutil

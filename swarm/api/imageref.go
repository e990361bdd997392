package api

import (
	"regexp"
	"strings"
)

// Image references follow the grammar of Docker's distribution/reference:
// [host[:port]/]path-component[/path-component...][:tag][@digest], where
// path components are lower-case and the first component is a registry
// host only when it looks like one (has '.' or ':', or is localhost, or has
// upper case, which a path component cannot).
var (
	refHostComponent = regexp.MustCompile(`^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$`)
	refPort          = regexp.MustCompile(`^[0-9]+$`)
	refIPv6Host      = regexp.MustCompile(`^\[[0-9a-fA-F:.]+\]$`)
	refPathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	refTag           = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	refDigest        = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$`)
)

// maxImageNameLength is the reference grammar's limit on the name part.
const maxImageNameLength = 255

// validImageReference reports whether ref is a plausible image reference.
func validImageReference(ref string) bool {
	name, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest && !refDigest.MatchString(digest) {
		return false
	}
	// A tag is after the last ':' that follows the last '/', so that a
	// registry port ("host:5000/app") is not taken for one.
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		if !refTag.MatchString(name[i+1:]) {
			return false
		}
		name = name[:i]
	}
	if name == "" || len(name) > maxImageNameLength {
		return false
	}
	parts := strings.Split(name, "/")
	if len(parts) > 1 && looksLikeRegistry(parts[0]) {
		if !validRegistryHost(parts[0]) {
			return false
		}
		parts = parts[1:]
	}
	for _, c := range parts {
		if !refPathComponent.MatchString(c) {
			return false
		}
	}
	return true
}

func looksLikeRegistry(s string) bool {
	return strings.ContainsAny(s, ".:[") || s == "localhost" || strings.ToLower(s) != s
}

func validRegistryHost(s string) bool {
	host := s
	if i := strings.LastIndexByte(s, ':'); i >= 0 && i > strings.LastIndexByte(s, ']') {
		if !refPort.MatchString(s[i+1:]) {
			return false
		}
		host = s[:i]
	}
	if refIPv6Host.MatchString(host) {
		return true
	}
	for _, c := range strings.Split(host, ".") {
		if !refHostComponent.MatchString(c) {
			return false
		}
	}
	return true
}

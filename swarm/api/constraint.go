package api

import (
	"fmt"
	"strings"
)

// Constraint operators.
const (
	ConstraintEq = "=="
	ConstraintNe = "!="
)

// Constraint is one parsed placement constraint, e.g. node.labels.zone==a.
type Constraint struct {
	// Key is the attribute compared: node.id, node.hostname, node.role,
	// node.platform.os, node.platform.arch, node.labels.<K> or
	// engine.labels.<K>.
	Key      string
	Operator string
	Value    string
	// Expr is the expression as written.
	Expr string
}

// String returns the expression in canonical form.
func (c Constraint) String() string { return c.Key + c.Operator + c.Value }

var constraintKeys = map[string]bool{
	"node.id":            true,
	"node.hostname":      true,
	"node.role":          true,
	"node.platform.os":   true,
	"node.platform.arch": true,
}

// ParseConstraint parses "KEY==VALUE" or "KEY!=VALUE". Keys are matched
// case-insensitively except for label names, whose case is kept.
func ParseConstraint(expr string) (Constraint, error) {
	op := ""
	i := strings.Index(expr, ConstraintNe)
	j := strings.Index(expr, ConstraintEq)
	switch {
	case i >= 0 && (j < 0 || i < j):
		op = ConstraintNe
	case j >= 0:
		op, i = ConstraintEq, j
	default:
		return Constraint{}, fmt.Errorf("constraint %q: expected KEY==VALUE or KEY!=VALUE", expr)
	}
	key := strings.TrimSpace(expr[:i])
	value := strings.TrimSpace(expr[i+len(op):])
	if key == "" {
		return Constraint{}, fmt.Errorf("constraint %q: missing key before %s", expr, op)
	}
	if value == "" {
		return Constraint{}, fmt.Errorf("constraint %q: missing value after %s", expr, op)
	}
	if strings.Contains(value, "==") || strings.Contains(value, "!=") {
		return Constraint{}, fmt.Errorf("constraint %q: more than one operator", expr)
	}
	lower := asciiLower(key)
	switch {
	case constraintKeys[lower]:
		key = lower
	case strings.HasPrefix(lower, "node.labels."), strings.HasPrefix(lower, "engine.labels."):
		dot := strings.Index(lower, ".labels.") + len(".labels.")
		if dot >= len(key) {
			return Constraint{}, fmt.Errorf("constraint %q: label name missing after %s", expr, key[:dot])
		}
		key = lower[:dot] + key[dot:]
		if last := key[len(key)-1]; last == '!' || last == '=' {
			// "node.labels.a! ==x" would print as "node.labels.a!==x",
			// which reads as the label "a" and !=, and "a= ==x" as
			// "a===x": the expression could not be written back (found
			// by FuzzParseConstraint).
			return Constraint{}, fmt.Errorf("constraint %q: label name %q cannot end with %q", expr, key[dot:], string(last))
		}
	default:
		return Constraint{}, fmt.Errorf("constraint %q: unknown key %q (want node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>)", expr, key)
	}
	return Constraint{Key: key, Operator: op, Value: value, Expr: expr}, nil
}

// ParseConstraints parses every expression, stopping at the first bad one.
func ParseConstraints(exprs []string) ([]Constraint, error) {
	out := make([]Constraint, 0, len(exprs))
	for _, e := range exprs {
		c, err := ParseConstraint(e)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// asciiLower lower-cases ASCII letters only, keeping every byte offset.
// strings.ToLower also maps some non-ASCII letters to ASCII ones of another
// byte length (İ→i), so "engİne.labels.zone" passed as an engine label and
// the label name, cut at the lower-cased prefix's length, came out shifted
// (".zone").
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

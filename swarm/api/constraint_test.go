package api

import (
	"strings"
	"testing"
)

func TestParseConstraint(t *testing.T) {
	for _, tc := range []struct {
		expr          string
		key, op, want string // want: the value
	}{
		{"node.id==abc123", "node.id", ConstraintEq, "abc123"},
		{"node.hostname!=worker-1", "node.hostname", ConstraintNe, "worker-1"},
		{"node.role==manager", "node.role", ConstraintEq, "manager"},
		{"node.role!=worker", "node.role", ConstraintNe, "worker"},
		{"node.platform.os==linux", "node.platform.os", ConstraintEq, "linux"},
		{"node.platform.arch!=arm64", "node.platform.arch", ConstraintNe, "arm64"},
		{"node.labels.zone==a", "node.labels.zone", ConstraintEq, "a"},
		{"node.labels.zone!=b", "node.labels.zone", ConstraintNe, "b"},
		{"engine.labels.storage==ssd", "engine.labels.storage", ConstraintEq, "ssd"},
		{"engine.labels.storage!=hdd", "engine.labels.storage", ConstraintNe, "hdd"},
		// Keys match in any case; label names keep theirs; values are as written.
		{"NODE.Role==Manager", "node.role", ConstraintEq, "Manager"},
		{"Node.Platform.OS==linux", "node.platform.os", ConstraintEq, "linux"},
		{"NODE.LABELS.Zone==A", "node.labels.Zone", ConstraintEq, "A"},
		{"Engine.Labels.MyLabel!=x", "engine.labels.MyLabel", ConstraintNe, "x"},
		{"node.labels.a.b.c==1", "node.labels.a.b.c", ConstraintEq, "1"},
		// Spaces around the operator are trimmed.
		{"  node.role  ==  manager ", "node.role", ConstraintEq, "manager"},
		// A value may contain '=' or '!' alone.
		{"node.labels.k==a=b", "node.labels.k", ConstraintEq, "a=b"},
		{"node.labels.k!=x!", "node.labels.k", ConstraintNe, "x!"},
	} {
		c, err := ParseConstraint(tc.expr)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		if c.Key != tc.key || c.Operator != tc.op || c.Value != tc.want || c.Expr != tc.expr {
			t.Errorf("%q: got %+v", tc.expr, c)
		}
		if c.String() != tc.key+tc.op+tc.want {
			t.Errorf("%q: String() = %q", tc.expr, c.String())
		}
	}
}

func TestParseConstraintErrors(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"", `constraint "": expected KEY==VALUE or KEY!=VALUE`},
		{"node.role=manager", `constraint "node.role=manager": expected KEY==VALUE or KEY!=VALUE`},
		{"node.role", `constraint "node.role": expected KEY==VALUE or KEY!=VALUE`},
		{"node.role<>manager", `constraint "node.role<>manager": expected KEY==VALUE or KEY!=VALUE`},
		{"==manager", `constraint "==manager": missing key before ==`},
		{" !=manager", `constraint " !=manager": missing key before !=`},
		{"node.role==", `constraint "node.role==": missing value after ==`},
		{"node.role!=  ", `constraint "node.role!=  ": missing value after !=`},
		{"node.role==a==b", `constraint "node.role==a==b": more than one operator`},
		{"node.role!=a==b", `constraint "node.role!=a==b": more than one operator`},
		{"node.role==a!=b", `constraint "node.role==a!=b": more than one operator`},
		{"node.foo==x", `constraint "node.foo==x": unknown key "node.foo" (want node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>)`},
		{"labels.zone==a", `constraint "labels.zone==a": unknown key "labels.zone"`},
		{"node.labels==a", `constraint "node.labels==a": unknown key "node.labels"`},
		{"node.labels.==a", `constraint "node.labels.==a": label name missing after node.labels.`},
		{"ENGINE.LABELS.==a", `constraint "ENGINE.LABELS.==a": label name missing after ENGINE.LABELS.`},
		{"node.lABels.! ==0", `constraint "node.lABels.! ==0": label name "!" cannot end with "!"`},
		{"node.lABels.= ==0", `constraint "node.lABels.= ==0": label name "=" cannot end with "="`},
		{"node.labels.a= !=0", `constraint "node.labels.a= !=0": label name "a=" cannot end with "="`},
		// A non-ASCII letter that lower-cases to ASCII is not a key letter:
		// it used to pass as engine.labels with a shifted label name.
		{"engİne.labels.zone==a", `constraint "engİne.labels.zone==a": unknown key "engİne.labels.zone"`},
		{"node.İd==x", `constraint "node.İd==x": unknown key "node.İd"`},
	} {
		_, err := ParseConstraint(tc.expr)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %s", tc.expr, err, tc.want)
		}
	}
}

func TestParseConstraints(t *testing.T) {
	cs, err := ParseConstraints([]string{"node.role==worker", "node.labels.zone!=b"})
	if err != nil || len(cs) != 2 || cs[0].Key != "node.role" || cs[1].Operator != ConstraintNe {
		t.Fatalf("got %+v, %v", cs, err)
	}
	cs, err = ParseConstraints(nil)
	if err != nil || len(cs) != 0 {
		t.Fatalf("empty: %+v, %v", cs, err)
	}
	_, err = ParseConstraints([]string{"node.role==worker", "bad", "worse==x"})
	if err == nil || err.Error() != `constraint "bad": expected KEY==VALUE or KEY!=VALUE` {
		t.Fatalf("want the first bad expression's error, got %v", err)
	}
}

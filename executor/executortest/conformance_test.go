package executortest_test

import (
	"testing"

	"github.com/apiary-io/apiary/executor/executortest"
)

// TestConformance runs the suite with the example's harness, so the
// harness the documentation shows is one that passes.
func TestConformance(t *testing.T) { executortest.Run(t, harness) }

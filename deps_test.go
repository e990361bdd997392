package apiary_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The contracts stand apart from the implementations (design §1): the CLI
// and the worker link the contracts and the client side of the RPC layer,
// never the store, raft, the scheduler, the orchestrator, the CA or cfssl.
// `go list -deps` is the test.
func TestContractsApartFromImplementations(t *testing.T) {
	forbidden := []string{
		"github.com/apiary-io/apiary/store",
		"github.com/apiary-io/apiary/raft",
		"github.com/apiary-io/apiary/scheduler",
		"github.com/apiary-io/apiary/swarm/orchestrator",
		"github.com/apiary-io/apiary/swarm/placer",
		"github.com/apiary-io/apiary/swarm/allocator",
		"github.com/apiary-io/apiary/swarm/controlapi",
		"github.com/apiary-io/apiary/swarm/dispatcher",
		"github.com/apiary-io/apiary/pki",
		"github.com/cloudflare/cfssl",
		"go.etcd.io/raft",
		"go.etcd.io/bbolt",
	}
	for _, pkg := range []string{"./examples/apiaryctl", "./swarm/client", "./swarm/agent"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s links %s", pkg, dep)
				}
			}
		}
	}
}

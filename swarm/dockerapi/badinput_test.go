package dockerapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/apiary-io/apiary/swarm/dockerapi"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// Bad input to the writes on objects that exist (a service, a node, the
// swarm, a secret, a network): malformed JSON, unknown fields, a wrong or
// missing version index, oversized bodies, a wrong Content-Type, values
// out of range, invalid specs. Each gets Docker's error ({"message": ...}
// naming the problem, with Docker's status) and leaves every object as it
// was, byte for byte as inspect shows it. TestDockerAPIErrors has the
// refused creates; TestDockerAPIOverMutualTLS a worker's certificate.
func TestDockerAPIBadInputChangesNothing(t *testing.T) {
	c := swarmtest.Start(t, swarmtest.Options{Managers: 1, Workers: 1})
	a := serve(t, c, c.Members[0])
	ctx := ctxT(t)
	v := "/v" + dockerapi.APIVersion

	created, err := a.cli.ServiceCreate(ctx, swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "web"}, Mode: replicas(2),
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: "nginx:1.27"}}}, swarm.ServiceCreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.cli.SecretCreate(ctx, swarm.SecretSpec{Annotations: swarm.Annotations{Name: "pw"}, Data: []byte("s3cret")}); err != nil {
		t.Fatal(err)
	}
	svc, _, err := a.cli.ServiceInspectWithRaw(ctx, created.ID, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodeID := c.Members[1].Node.NodeID()
	node, _, err := a.cli.NodeInspectWithRaw(ctx, nodeID)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := a.cli.SwarmInspect(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// What must not change: the objects as inspect shows them (a node's
	// status moves with its heartbeats, so its spec and version).
	state := func() string {
		var b strings.Builder
		for _, p := range []string{"/services/" + svc.ID, "/secrets", "/configs", "/networks"} {
			code, body := a.raw("GET", v+p, "")
			fmt.Fprintf(&b, "%s %d %s\n", p, code, body)
		}
		n, _, err := a.cli.NodeInspectWithRaw(ctx, nodeID)
		nj, _ := json.Marshal([]any{n.Version, n.Spec})
		fmt.Fprintf(&b, "node %s %v\n", nj, err)
		s, err := a.cli.SwarmInspect(ctx)
		sj, _ := json.Marshal([]any{s.Version, s.Spec, s.JoinTokens})
		fmt.Fprintf(&b, "swarm %s %v\n", sj, err)
		return b.String()
	}
	before := state()

	spec := func(mutate func(*swarm.ServiceSpec)) string {
		s := svc.Spec
		c := *s.TaskTemplate.ContainerSpec
		s.TaskTemplate.ContainerSpec = &c
		mutate(&s)
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	good := spec(func(s *swarm.ServiceSpec) { s.Mode = replicas(5) })
	sv := svc.Version.Index
	upd := fmt.Sprintf("%s/services/%s/update?version=", v, svc.ID)
	nupd := fmt.Sprintf("%s/nodes/%s/update?version=", v, nodeID)
	nspec := func(role, avail string) string {
		return fmt.Sprintf(`{"Role": %q, "Availability": %q}`, role, avail)
	}
	big := strings.Repeat("x", 2<<20)

	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		// Service update.
		{"malformed JSON", "POST", upd + fmt.Sprint(sv), `{"Name": "web",`, 400, "invalid JSON"},
		{"unknown field", "POST", upd + fmt.Sprint(sv), `{"Name": "web", "Replicas": 5}`, 400, `unknown field "Replicas"`},
		{"trailing data", "POST", upd + fmt.Sprint(sv), good + `{}`, 400, "data after the object"},
		{"empty body", "POST", upd + fmt.Sprint(sv), "", 400, "request body is empty"},
		{"wrong type", "POST", upd + fmt.Sprint(sv), `{"Name": "web", "Mode": {"Replicated": {"Replicas": -1}}}`, 400, "invalid JSON"},
		{"wrong version", "POST", upd + fmt.Sprint(sv-1), good, 409, "update out of sequence"},
		{"newer version", "POST", upd + fmt.Sprint(sv+100), good, 409, "update out of sequence"},
		{"no version", "POST", upd, good, 400, "invalid service version"},
		{"version not a number", "POST", upd + "latest", good, 400, "invalid service version 'latest'"},
		{"oversized body", "POST", upd + fmt.Sprint(sv), spec(func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Env = []string{"X=" + big} }), 413, "larger than"},
		{"invalid image", "POST", upd + fmt.Sprint(sv), spec(func(s *swarm.ServiceSpec) { s.TaskTemplate.ContainerSpec.Image = "Not An Image" }), 400, "image"},
		{"unclean process image", "POST", upd + fmt.Sprint(sv), spec(func(s *swarm.ServiceSpec) {
			s.TaskTemplate.ContainerSpec.Image = "process.apiary.invalid/usr/../web"
		}), 400, "a process image is process.apiary.invalid/PATH[:TAG]"},
		{"renamed", "POST", upd + fmt.Sprint(sv), spec(func(s *swarm.ServiceSpec) { s.Name = "other" }), 501, "renaming services is not supported"},
		{"rollback without a previous spec", "POST", upd + fmt.Sprint(sv) + "&rollback=previous", good, 400, "does not have a previous spec"},
		{"rollback at a wrong version", "POST", upd + fmt.Sprint(sv-1) + "&rollback=previous", good, 409, "update out of sequence"},
		{"unknown rollback", "POST", upd + fmt.Sprint(sv) + "&rollback=yesterday", good, 400, "unrecognized rollback option yesterday"},
		{"unknown service", "POST", fmt.Sprintf("%s/services/nope/update?version=%d", v, sv), good, 404, "nope"},
		{"insertDefaults not a bool", "GET", v + "/services/" + svc.ID + "?insertDefaults=maybe", "", 400, "invalid value for insertDefaults"},
		{"status not a bool", "GET", v + "/services?status=maybe", "", 400, "invalid value for status"},
		// Node update.
		{"node malformed JSON", "POST", nupd + fmt.Sprint(node.Version.Index), `{"Role": `, 400, "invalid JSON"},
		{"node unknown field", "POST", nupd + fmt.Sprint(node.Version.Index), `{"Role": "worker", "Availability": "active", "Drain": true}`, 400, `unknown field "Drain"`},
		{"node wrong version", "POST", nupd + fmt.Sprint(node.Version.Index-1), nspec("worker", "drain"), 409, "update out of sequence"},
		{"node availability", "POST", nupd + fmt.Sprint(node.Version.Index), nspec("worker", "asleep"), 400, "availability"},
		{"node role", "POST", nupd + fmt.Sprint(node.Version.Index), nspec("king", "active"), 400, "role"},
		{"node oversized", "POST", nupd + fmt.Sprint(node.Version.Index), `{"Labels": {"x": "` + big + `"}}`, 413, "larger than"},
		// Swarm update.
		{"swarm unknown field", "POST", fmt.Sprintf("%s/swarm/update?version=%d", v, sw.Version.Index), `{"Bogus": 1}`, 400, `unknown field "Bogus"`},
		{"swarm wrong version", "POST", fmt.Sprintf("%s/swarm/update?version=%d", v, sw.Version.Index-1), `{"Labels": {"a": "b"}}`, 409, "update out of sequence"},
		{"swarm bad rotate flag", "POST", fmt.Sprintf("%s/swarm/update?version=%d&rotateWorkerToken=perhaps", v, sw.Version.Index), `{}`, 400, "invalid value for rotateWorkerToken"},
		// Secrets and networks.
		{"secret name taken", "POST", v + "/secrets/create", `{"Name": "pw", "Data": "eA=="}`, 409, "pw"},
		{"secret data not base64", "POST", v + "/secrets/create", `{"Name": "pw2", "Data": "%%%"}`, 400, "invalid JSON"},
		{"network unknown field", "POST", v + "/networks/create", `{"Name": "back", "Driver": "overlay", "Bogus": true}`, 400, `unknown field "Bogus"`},
		{"service name taken", "POST", v + "/services/create", good, 409, "web"},
	} {
		code, msg := a.raw(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, code, msg, tc.code, tc.msg)
		}
	}

	// A body that is not JSON by its Content-Type.
	req, err := http.NewRequest("POST", a.url+upd+fmt.Sprint(sv), strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), `{"message":"unsupported Content-Type header (text/plain)`) {
		t.Errorf("text/plain body: %d %s", resp.StatusCode, body)
	}

	if after := state(); after != before {
		t.Errorf("bad input changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// The good update at the right version still applies.
	if code, msg := a.raw("POST", upd+fmt.Sprint(sv), good); code != 200 {
		t.Errorf("the good update: %d %q", code, msg)
	}
	if s, _, err := a.cli.ServiceInspectWithRaw(ctx, svc.ID, swarm.ServiceInspectOptions{}); err != nil || *s.Spec.Mode.Replicated.Replicas != 5 {
		t.Errorf("after the good update: %+v, %v", s.Spec.Mode, err)
	}
}

package controlapi_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

const secretData = "s3cr3t-value-never-shown"

func secretSpec(name, data string, labels map[string]string) api.SecretSpec {
	return api.SecretSpec{Annotations: api.Annotations{Name: name, Labels: labels}, Data: api.SecretBytes(data)}
}

func mustCreateSecret(t *testing.T, srv *controlapi.Server, name string) *api.Secret {
	t.Helper()
	sec, err := srv.CreateSecret(ctx, secretSpec(name, secretData, nil))
	if err != nil {
		t.Fatalf("create secret %s: %v", name, err)
	}
	return sec
}

func withSecrets(s api.ServiceSpec, refs ...api.SecretReference) api.ServiceSpec {
	s.TaskTemplate.Secrets = append(s.TaskTemplate.Secrets, refs...)
	return s
}

// allData is everything a refused write must leave as it was.
func allData(t *testing.T, s *store.MemoryStore) (secs []*api.Secret, cfgs []*api.Config, svcs []*api.Service) {
	t.Helper()
	var err1, err2, err3 error
	s.View(func(tx store.ReadTx) {
		secs, err1 = tx.FindSecrets(store.All)
		cfgs, err2 = tx.FindConfigs(store.All)
		svcs, err3 = tx.FindServices(store.All)
	})
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	return secs, cfgs, svcs
}

// A secret is stored with its data, which the API never returns: not
// from create, get or list. A config's data comes back from get only.
func TestSecretsAndConfigsCRUD(t *testing.T) {
	srv, s := newServer(t)
	sec, err := srv.CreateSecret(ctx, secretSpec("db.password", secretData, map[string]string{"env": "prod"}))
	if err != nil {
		t.Fatal(err)
	}
	if sec.Spec.Data != nil || sec.Spec.Name != "db.password" || sec.Meta.Version == 0 || len(sec.ID) != api.IDLength {
		t.Fatalf("created %+v", sec)
	}
	s.View(func(tx store.ReadTx) {
		if got := tx.GetSecret(sec.ID); got == nil || string(got.Spec.Data) != secretData {
			t.Fatalf("stored %+v", got)
		}
	})
	other := mustCreateSecret(t, srv, "tls")
	for _, ref := range []string{sec.ID, "db.password", sec.ID[:8]} {
		got, err := srv.GetSecret(ctx, ref)
		if err != nil || got.ID != sec.ID || got.Spec.Data != nil || got.Spec.Labels["env"] != "prod" {
			t.Errorf("get %q: %+v %v", ref, got, err)
		}
	}
	if _, err := srv.GetSecret(ctx, "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("get missing: %v", err)
	}
	list, err := srv.ListSecrets(ctx, control.ObjectFilter{})
	if err != nil || len(list) != 2 || list[0].ID != sec.ID || list[1].ID != other.ID {
		t.Fatalf("list: %v %v", list, err)
	}
	for _, x := range list {
		if x.Spec.Data != nil {
			t.Errorf("list returned %s's data", x.Spec.Name)
		}
	}
	if l, _ := srv.ListSecrets(ctx, control.ObjectFilter{Labels: []string{"env=prod"}}); len(l) != 1 || l[0].ID != sec.ID {
		t.Errorf("list by label: %v", l)
	}
	if l, _ := srv.ListSecrets(ctx, control.ObjectFilter{Names: []string{"tl"}}); len(l) != 1 || l[0].ID != other.ID {
		t.Errorf("list by name: %v", l)
	}
	// The stored data was not touched by what the API handed out.
	s.View(func(tx store.ReadTx) {
		if got := tx.GetSecret(sec.ID); string(got.Spec.Data) != secretData {
			t.Fatalf("stored data now %q", got.Spec.Data)
		}
	})
	if _, err := srv.CreateSecret(ctx, secretSpec("tls", "x", nil)); !errors.Is(err, api.ErrNameConflict) {
		t.Errorf("duplicate name: %v", err)
	}

	cfg, err := srv.CreateConfig(ctx, api.ConfigSpec{Annotations: api.Annotations{Name: "nginx.conf"}, Data: []byte("worker_processes 1;")})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := srv.GetConfig(ctx, "nginx.conf"); err != nil || string(got.Spec.Data) != "worker_processes 1;" {
		t.Errorf("get config: %+v %v", got, err)
	}
	if l, err := srv.ListConfigs(ctx, control.ObjectFilter{}); err != nil || len(l) != 1 || l[0].ID != cfg.ID || l[0].Spec.Data != nil {
		t.Errorf("list configs: %+v %v", l, err)
	}
	for _, rm := range []func() error{
		func() error { return srv.RemoveSecret(ctx, "db.password") },
		func() error { return srv.RemoveSecret(ctx, other.ID) },
		func() error { return srv.RemoveConfig(ctx, cfg.ID[:10]) },
	} {
		if err := rm(); err != nil {
			t.Fatal(err)
		}
	}
	if secs, cfgs, _ := allData(t, s); len(secs)+len(cfgs) != 0 {
		t.Fatalf("left %v %v", secs, cfgs)
	}
	if err := srv.RemoveSecret(ctx, "db.password"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("remove twice: %v", err)
	}
}

// Over-size data, a bad name or an empty secret are refused naming the
// field, and nothing is written.
func TestSecretsRefusedChangeNothing(t *testing.T) {
	srv, s := newServer(t)
	mustCreateSecret(t, srv, "keep")
	before1, before2, before3 := allData(t, s)
	big := string(bytes.Repeat([]byte("x"), api.MaxSecretSize+1))
	for _, tc := range []struct {
		create func() error
		words  []string
	}{
		{func() error { _, err := srv.CreateSecret(ctx, secretSpec("big", big, nil)); return err },
			[]string{`secret "big"`, "data", "at most 512000 bytes", "got 512001"}},
		{func() error {
			_, err := srv.CreateConfig(ctx, api.ConfigSpec{Annotations: api.Annotations{Name: "big"}, Data: []byte(big)})
			return err
		}, []string{`config "big"`, "data", "at most 512000 bytes"}},
		{func() error { _, err := srv.CreateSecret(ctx, secretSpec("bad name", "x", nil)); return err }, []string{"name", "bad name"}},
		{func() error { _, err := srv.CreateSecret(ctx, secretSpec("empty", "", nil)); return err }, []string{"data", "must not be empty"}},
	} {
		err := tc.create()
		invalidNaming(t, err, tc.words...)
		if err != nil && strings.Contains(err.Error(), "xxxxxxxx") {
			t.Error("the error carries the data")
		}
	}
	if a, b, c := allData(t, s); !reflect.DeepEqual(a, before1) || !reflect.DeepEqual(b, before2) || !reflect.DeepEqual(c, before3) {
		t.Fatal("a refused create changed the store")
	}
	// Exactly the limit is fine.
	if _, err := srv.CreateSecret(ctx, secretSpec("max", big[:api.MaxSecretSize], nil)); err != nil {
		t.Fatal(err)
	}
}

// Services name secrets and configs by name, ID or prefix; the stored
// template holds the ID and the name, and a file target named after them
// when none is given. An unknown one is refused naming the field and it;
// one in use cannot be removed, naming the services; a rollback to a
// template whose secret is gone is refused.
func TestServicesReferenceSecrets(t *testing.T) {
	srv, s := newServer(t)
	db := mustCreateSecret(t, srv, "db")
	tls := mustCreateSecret(t, srv, "tls")
	cfg, err := srv.CreateConfig(ctx, api.ConfigSpec{Annotations: api.Annotations{Name: "app.conf"}, Data: []byte("x=1")})
	if err != nil {
		t.Fatal(err)
	}
	sp := withSecrets(spec("web", 1),
		api.SecretReference{SecretName: "db"},
		api.SecretReference{SecretName: tls.ID[:9], File: &api.FileTarget{Name: "certs/tls.key", UID: "1000", Mode: 0o400}})
	sp.TaskTemplate.Configs = []api.ConfigReference{{ConfigName: "app.conf"}}
	web := mustCreate(t, srv, sp)
	want := []api.SecretReference{
		{SecretID: db.ID, SecretName: "db", File: &api.FileTarget{Name: "db"}},
		{SecretID: tls.ID, SecretName: "tls", File: &api.FileTarget{Name: "certs/tls.key", UID: "1000", Mode: 0o400}},
	}
	if !reflect.DeepEqual(web.Spec.TaskTemplate.Secrets, want) {
		t.Fatalf("stored secrets %+v", web.Spec.TaskTemplate.Secrets)
	}
	if c := web.Spec.TaskTemplate.Configs; len(c) != 1 || c[0].ConfigID != cfg.ID || c[0].File.Name != "app.conf" {
		t.Fatalf("stored configs %+v", c)
	}
	mustCreate(t, srv, withSecrets(spec("api", 1), api.SecretReference{SecretName: "db"}))

	before1, before2, before3 := allData(t, s)
	_, err = srv.CreateService(ctx, withSecrets(spec("bad", 1), api.SecretReference{SecretName: "db"}, api.SecretReference{SecretName: "nope"}))
	invalidNaming(t, err, `service "bad"`, "task_template.secrets[1]", `secret "nope" not found`)
	_, err = srv.CreateService(ctx, withSecrets(spec("dup", 1), api.SecretReference{SecretName: "db"}, api.SecretReference{SecretName: "tls", File: &api.FileTarget{Name: "db"}}))
	invalidNaming(t, err, "task_template.secrets[1].file.name", `target "db"`)
	err = srv.RemoveSecret(ctx, "db")
	if !errors.Is(err, controlapi.ErrInUse) || !strings.Contains(err.Error(), `secret "db" is used by service(s) "api", "web"`) {
		t.Errorf("remove in use: %v", err)
	}
	err = srv.RemoveConfig(ctx, "app.conf")
	if !errors.Is(err, controlapi.ErrInUse) || !strings.Contains(err.Error(), `config "app.conf" is used by service(s) "web"`) {
		t.Errorf("remove config in use: %v", err)
	}
	if a, b, c := allData(t, s); !reflect.DeepEqual(a, before1) || !reflect.DeepEqual(b, before2) || !reflect.DeepEqual(c, before3) {
		t.Fatal("a refused write changed the store")
	}

	// web drops tls: its previous spec, which a rollback would bring
	// back, still holds it, and the refusal says so; once web moves on
	// again, tls can go.
	cur, _ := srv.GetService(ctx, "web")
	next := cur.Spec.Copy()
	next.TaskTemplate.Secrets = next.TaskTemplate.Secrets[:1]
	if _, err := srv.UpdateService(ctx, "web", cur.Meta.Version, next); err != nil {
		t.Fatal(err)
	}
	before1, before2, before3 = allData(t, s)
	err = srv.RemoveSecret(ctx, "tls")
	if !errors.Is(err, controlapi.ErrInUse) || !strings.Contains(err.Error(), `secret "tls" is used by service(s) "web"`) ||
		!strings.Contains(err.Error(), `"web" only in the previous spec`) {
		t.Errorf("remove held by a previous spec: %v", err)
	}
	if a, b, c := allData(t, s); !reflect.DeepEqual(a, before1) || !reflect.DeepEqual(b, before2) || !reflect.DeepEqual(c, before3) {
		t.Fatal("a refused removal changed the store")
	}
	cur, _ = srv.GetService(ctx, "web")
	next = cur.Spec.Copy()
	next.TaskTemplate.ForceUpdate++
	if _, err := srv.UpdateService(ctx, "web", cur.Meta.Version, next); err != nil {
		t.Fatal(err)
	}
	if err := srv.RemoveSecret(ctx, "tls"); err != nil {
		t.Fatal(err)
	}
	// A new secret under the old name is not taken for the removed one
	// by a spec that names the old one's ID.
	mustCreateSecret(t, srv, "tls")
	cur, _ = srv.GetService(ctx, "web")
	stale := cur.Spec.Copy()
	stale.TaskTemplate.Secrets = append(stale.TaskTemplate.Secrets, api.SecretReference{SecretID: tls.ID, SecretName: "tls"})
	_, err = srv.UpdateService(ctx, "web", cur.Meta.Version, stale)
	invalidNaming(t, err, "task_template.secrets[1]", tls.ID, "not found")
}

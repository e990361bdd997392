package controlapi_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/apiary-io/apiary/store"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/controlapi"
)

func secretIDs(refs []api.SecretReference) []string {
	var out []string
	for _, r := range refs {
		out = append(out, r.SecretID)
	}
	return out
}

// An update makes a new version (new ID, the name, Version+1) and moves
// every service using the secret to it, the old spec kept for rollback;
// the name finds the newest, name@N an older one, a listing shows one row
// a name, and the versions list all kept. A rollback returns to the old
// version; removal is refused while any version is used.
func TestUpdateSecretMovesServices(t *testing.T) {
	srv, s := newServer(t)
	v1, err := srv.CreateSecret(ctx, secretSpec("db", "v1-data", map[string]string{"team": "a"}))
	if err != nil {
		t.Fatal(err)
	}
	other := mustCreateSecret(t, srv, "other")
	web := mustCreate(t, srv, withSecrets(spec("web", 1), api.SecretReference{SecretName: "db"}, api.SecretReference{SecretName: "other"}))
	mustCreate(t, srv, withSecrets(spec("api", 1), api.SecretReference{SecretName: "db", File: &api.FileTarget{Name: "pw"}}))
	mustCreate(t, srv, withSecrets(spec("unrelated", 1), api.SecretReference{SecretName: "other"}))

	up, err := srv.UpdateSecret(ctx, "db", api.SecretSpec{Data: api.SecretBytes("v2-data")})
	if err != nil {
		t.Fatal(err)
	}
	v2 := up.Secret
	if v2.ID == v1.ID || v2.Version != 2 || v2.Spec.Name != "db" || v2.Spec.Data != nil || v2.Superseded || v2.Spec.Labels["team"] != "a" {
		t.Fatalf("new version %+v", v2)
	}
	if !slices.Equal(up.Services, []string{"api", "web"}) {
		t.Fatalf("moved %v, want api and web", up.Services)
	}
	s.View(func(tx store.ReadTx) {
		if old := tx.GetSecret(v1.ID); old == nil || !old.Superseded || string(old.Spec.Data) != "v1-data" {
			t.Errorf("old version %+v", old)
		}
		if cur := tx.GetSecret(v2.ID); cur == nil || string(cur.Spec.Data) != "v2-data" {
			t.Errorf("new version %+v", cur)
		}
	})
	w, _ := srv.GetService(ctx, "web")
	if got := secretIDs(w.Spec.TaskTemplate.Secrets); !slices.Equal(got, []string{v2.ID, other.ID}) {
		t.Errorf("web's spec references %v", got)
	}
	if got := secretIDs(w.PreviousSpec.TaskTemplate.Secrets); !slices.Equal(got, []string{v1.ID, other.ID}) {
		t.Errorf("web's previous spec references %v", got)
	}
	if w.SpecVersion != web.SpecVersion+1 || w.UpdateStatus != nil {
		t.Errorf("web spec version %d (was %d), update status %+v", w.SpecVersion, web.SpecVersion, w.UpdateStatus)
	}
	if a, _ := srv.GetService(ctx, "api"); a.Spec.TaskTemplate.Secrets[0].File.Name != "pw" || a.Spec.TaskTemplate.Secrets[0].SecretID != v2.ID {
		t.Errorf("api's reference %+v", a.Spec.TaskTemplate.Secrets[0])
	}
	if u, _ := srv.GetService(ctx, "unrelated"); u.SpecVersion != 1 || u.PreviousSpec != nil {
		t.Errorf("a service not using db was changed: %+v", u)
	}

	// Lookups.
	for ref, want := range map[string]string{"db": v2.ID, "db@2": v2.ID, "db@1": v1.ID, v1.ID: v1.ID} {
		got, err := srv.GetSecret(ctx, ref)
		if err != nil || got.ID != want || got.Spec.Data != nil {
			t.Errorf("get %q: %+v %v, want %s", ref, got, err, want)
		}
	}
	if _, err := srv.GetSecret(ctx, "db@3"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("get db@3: %v", err)
	}
	list, err := srv.ListSecrets(ctx, control.ObjectFilter{})
	if err != nil || len(list) != 2 || list[0].ID != v2.ID || list[1].ID != other.ID {
		t.Errorf("list: %v", err)
	}
	vs, err := srv.SecretVersions(ctx, "db@1")
	if err != nil || len(vs) != 2 || vs[0].ID != v2.ID || vs[1].ID != v1.ID || vs[0].Spec.Data != nil || vs[1].Spec.Data != nil {
		t.Errorf("versions: %v", err)
	}

	// Refused, changing nothing, the data in no error.
	b1, b2, b3 := allData(t, s)
	big := strings.Repeat("x", api.MaxSecretSize+1)
	for _, tc := range []struct {
		ref   string
		spec  api.SecretSpec
		check func(error)
	}{
		{"db", api.SecretSpec{Data: api.SecretBytes(big)}, func(err error) { invalidNaming(t, err, "data", "500 KiB") }},
		{"db", api.SecretSpec{}, func(err error) { invalidNaming(t, err, "data", "must not be empty") }},
		{"db", secretSpec("renamed", "x", nil), func(err error) { invalidNaming(t, err, "name", "renamed") }},
		{"nope", secretSpec("", "x", nil), func(err error) {
			if !errors.Is(err, api.ErrNotFound) {
				t.Errorf("update of an unknown secret: %v", err)
			}
		}},
	} {
		_, err := srv.UpdateSecret(ctx, tc.ref, tc.spec)
		tc.check(err)
		if err != nil && strings.Contains(err.Error(), "xxxxxxxx") {
			t.Error("the error carries the data")
		}
	}
	if a, b, c := allData(t, s); !reflect.DeepEqual(a, b1) || !reflect.DeepEqual(b, b2) || !reflect.DeepEqual(c, b3) {
		t.Fatal("a refused update changed the store")
	}

	// Rollback returns web to version 1, which is still there.
	if _, err := srv.RollbackService(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	w, _ = srv.GetService(ctx, "web")
	if got := secretIDs(w.Spec.TaskTemplate.Secrets); !slices.Equal(got, []string{v1.ID, other.ID}) {
		t.Errorf("web rolled back references %v", got)
	}

	// Removal: of the secret (any version used) or of version 1 (web's
	// spec, api's previous spec), refused naming the services.
	err = srv.RemoveSecret(ctx, "db")
	if !errors.Is(err, controlapi.ErrInUse) || !strings.Contains(err.Error(), `secret "db" is used by service(s) "api", "web"`) {
		t.Errorf("remove db: %v", err)
	}
	err = srv.RemoveSecret(ctx, "db@1")
	if !errors.Is(err, controlapi.ErrInUse) || !strings.Contains(err.Error(), `is used by service(s) "api", "web"`) ||
		!strings.Contains(err.Error(), `("api" only in the previous spec`) {
		t.Errorf("remove db@1: %v", err)
	}
	if a, b, c := allData(t, s); !reflect.DeepEqual(a, b1) || len(b) != len(b2) || len(c) != len(b3) {
		t.Fatal("a refused removal changed the secrets")
	}

	// The next update moves web (at version 1) and api (at 2) alike.
	up, err = srv.UpdateSecret(ctx, v1.ID, api.SecretSpec{Data: api.SecretBytes("v3-data"), Annotations: api.Annotations{Labels: map[string]string{}}})
	if err != nil {
		t.Fatal(err)
	}
	if up.Secret.Version != 3 || len(up.Secret.Spec.Labels) != 0 || !slices.Equal(up.Services, []string{"api", "web"}) {
		t.Fatalf("third version %+v moved %v", up.Secret, up.Services)
	}
}

// At most MaxSecretVersions versions are kept: with every one held by a
// task that has not ended, one more is refused saying so, with nothing
// changed; once the tasks end, the update collects the free ones first.
func TestSecretVersionBound(t *testing.T) {
	srv, s := newServer(t)
	cur := mustCreateSecret(t, srv, "k")
	var tasks []string
	for i := 1; i < api.MaxSecretVersions; i++ {
		id := fmt.Sprintf("task%d", i)
		tasks = append(tasks, id)
		mustUpdate(t, s, func(tx store.Tx) error {
			return tx.CreateTask(&api.Task{ID: id, ServiceID: "gone", Slot: uint64(i), DesiredState: api.TaskStateRunning,
				Status: api.TaskStatus{State: api.TaskStateRunning},
				Spec:   api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"x"}}, Secrets: []api.SecretReference{{SecretID: cur.ID, SecretName: "k"}}}})
		})
		up, err := srv.UpdateSecret(ctx, "k", api.SecretSpec{Data: api.SecretBytes(fmt.Sprint("data", i))})
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		cur = up.Secret
	}
	vs, _ := srv.SecretVersions(ctx, "k")
	if len(vs) != api.MaxSecretVersions {
		t.Fatalf("%d versions kept, want %d", len(vs), api.MaxSecretVersions)
	}
	// A service using the newest version holds none of the older ones:
	// the refusal does not name it.
	mustCreate(t, srv, withSecrets(spec("late", 1), api.SecretReference{SecretName: "k"}))
	b1, _, _ := allData(t, s)
	_, err := srv.UpdateSecret(ctx, "k", api.SecretSpec{Data: api.SecretBytes("one too many")})
	if !errors.Is(err, controlapi.ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("%d versions are kept", api.MaxSecretVersions)) ||
		!strings.Contains(err.Error(), "tasks that have not ended") || strings.Contains(err.Error(), "late") {
		t.Fatalf("update at the bound: %v", err)
	}
	if a, _, _ := allData(t, s); !reflect.DeepEqual(a, b1) {
		t.Fatal("a refused update changed the secrets")
	}
	mustUpdate(t, s, func(tx store.Tx) error {
		for _, id := range tasks {
			tk := tx.GetTask(id)
			tk.Status.State = api.TaskStateShutdown
			if err := tx.UpdateTask(tk); err != nil {
				return err
			}
		}
		return nil
	})
	up, err := srv.UpdateSecret(ctx, "k", api.SecretSpec{Data: api.SecretBytes("next")})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(up.Services, []string{"late"}) {
		t.Errorf("moved %v, want late", up.Services)
	}
	vs, _ = srv.SecretVersions(ctx, "k")
	if len(vs) != 2 || vs[0].ID != up.Secret.ID || vs[1].ID != cur.ID || up.Secret.Version != uint64(api.MaxSecretVersions+1) {
		t.Fatalf("after the tasks ended: %d versions kept, newest %d", len(vs), up.Secret.Version)
	}
}

// Configs version as secrets do; a config's data comes back by version.
// An update that moves more services than one write holds moves them all.
func TestUpdateConfigMovesManyServices(t *testing.T) {
	srv, _ := newServer(t)
	if _, err := srv.CreateConfig(ctx, api.ConfigSpec{Annotations: api.Annotations{Name: "app.conf"}, Data: []byte("a=1")}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 40 {
		sp := spec(fmt.Sprintf("svc%02d", i), 1)
		sp.TaskTemplate.Configs = []api.ConfigReference{{ConfigName: "app.conf"}}
		mustCreate(t, srv, sp)
		want = append(want, sp.Name)
	}
	up, err := srv.UpdateConfig(ctx, "app.conf", api.ConfigSpec{Data: []byte("a=2")})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(up.Services, want) || string(up.Config.Spec.Data) != "a=2" || up.Config.Version != 2 {
		t.Fatalf("moved %v, config %+v", up.Services, up.Config)
	}
	for _, name := range want {
		svc, _ := srv.GetService(ctx, name)
		if svc.Spec.TaskTemplate.Configs[0].ConfigID != up.Config.ID {
			t.Errorf("%s still references %s", name, svc.Spec.TaskTemplate.Configs[0].ConfigID)
		}
	}
	old, err := srv.GetConfig(ctx, "app.conf@1")
	if err != nil || string(old.Spec.Data) != "a=1" || !old.Superseded {
		t.Fatalf("app.conf@1: %+v %v", old, err)
	}
	list, _ := srv.ListConfigs(ctx, control.ObjectFilter{})
	if len(list) != 1 || list[0].ID != up.Config.ID || list[0].Spec.Data != nil {
		t.Fatalf("list: %d configs", len(list))
	}
}

package store

import (
	"errors"
	"slices"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// Secrets and configs are tables like networks: unique names, found by
// name and ID prefix, and the services and tasks that reference one are
// found through an index (what a removal checks), on every replica.
func TestSecretsAndConfigs(t *testing.T) {
	forModes(t, func(t *testing.T, s *MemoryStore) {
		mustUpdate(t, s, func(tx Tx) error {
			return errors.Join(
				tx.CreateSecret(&api.Secret{ID: "sec1", Spec: api.SecretSpec{Annotations: api.Annotations{Name: "db"}, Data: api.SecretBytes("pw")}}),
				tx.CreateSecret(&api.Secret{ID: "sec2", Spec: api.SecretSpec{Annotations: api.Annotations{Name: "tls"}, Data: api.SecretBytes("k")}}),
				tx.CreateConfig(&api.Config{ID: "cfg1", Spec: api.ConfigSpec{Annotations: api.Annotations{Name: "db"}, Data: []byte("c")}}),
			)
		})
		err := s.Update(func(tx Tx) error {
			return tx.CreateSecret(&api.Secret{ID: "sec3", Spec: api.SecretSpec{Annotations: api.Annotations{Name: "db"}}})
		})
		if !errors.Is(err, ErrNameConflict) {
			t.Fatalf("second secret named db: %v", err)
		}
		tmpl := api.TaskSpec{
			Process: &api.ProcessSpec{Command: []string{"true"}},
			Secrets: []api.SecretReference{{SecretID: "sec1", SecretName: "db"}},
			Configs: []api.ConfigReference{{ConfigID: "cfg1", ConfigName: "db"}},
		}
		mustUpdate(t, s, func(tx Tx) error {
			svc := &api.Service{ID: "svc", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "web"}, TaskTemplate: tmpl}}
			return errors.Join(tx.CreateService(svc),
				tx.CreateTask(&api.Task{ID: "t1", ServiceID: "svc", Slot: 1, Spec: tmpl}))
		})
		s.View(func(tx ReadTx) {
			if sec := tx.GetSecret("sec1"); sec == nil || string(sec.Spec.Data) != "pw" {
				t.Errorf("get secret: %+v", sec)
			}
			if c := tx.GetConfig("cfg1"); c == nil || string(c.Spec.Data) != "c" {
				t.Errorf("get config: %+v", c)
			}
			for _, tc := range []struct {
				name string
				find func() ([]string, error)
				want []string
			}{
				{"secret by name", func() ([]string, error) { return ids(tx.FindSecrets(ByName("db"))) }, []string{"sec1"}},
				{"secrets by prefix", func() ([]string, error) { return ids(tx.FindSecrets(ByIDPrefix("sec"))) }, []string{"sec1", "sec2"}},
				{"configs by name", func() ([]string, error) { return ids(tx.FindConfigs(ByName("db"))) }, []string{"cfg1"}},
				{"services by secret", func() ([]string, error) { return ids(tx.FindServices(ByReferencedSecret("sec1"))) }, []string{"svc"}},
				{"tasks by secret", func() ([]string, error) { return ids(tx.FindTasks(ByReferencedSecret("sec1"))) }, []string{"t1"}},
				{"services by unused secret", func() ([]string, error) { return ids(tx.FindServices(ByReferencedSecret("sec2"))) }, nil},
				{"services by config", func() ([]string, error) { return ids(tx.FindServices(ByReferencedConfig("cfg1"))) }, []string{"svc"}},
				{"tasks by config", func() ([]string, error) { return ids(tx.FindTasks(ByReferencedConfig("cfg1"))) }, []string{"t1"}},
			} {
				if got, err := tc.find(); err != nil || !slices.Equal(got, tc.want) {
					t.Errorf("%s: got %v %v, want %v", tc.name, got, err, tc.want)
				}
			}
			if tx.Count(api.KindSecret) != 2 || tx.Count(api.KindConfig) != 1 || tx.Count("volume") != 0 {
				t.Errorf("counts: %d secrets, %d configs", tx.Count(api.KindSecret), tx.Count(api.KindConfig))
			}
			if _, err := tx.FindSecrets(ByServiceID("svc")); !errors.Is(err, ErrInvalidFind) {
				t.Errorf("secrets by service: %v", err)
			}
			if _, err := tx.FindNodes(ByReferencedSecret("sec1")); !errors.Is(err, ErrInvalidFind) {
				t.Errorf("nodes by secret: %v", err)
			}
		})
		// The service drops the secret: the index follows.
		mustUpdate(t, s, func(tx Tx) error {
			svc := tx.GetService("svc")
			svc.Spec.TaskTemplate.Secrets = nil
			if err := errors.Join(tx.UpdateService(svc), tx.DeleteTask("t1"), tx.DeleteConfig("cfg1")); err != nil {
				return err
			}
			if n := tx.Count(api.KindConfig); n != 0 {
				t.Errorf("a transaction counts %d configs after deleting the only one", n)
			}
			return nil
		})
		s.View(func(tx ReadTx) {
			if got, _ := ids(tx.FindServices(ByReferencedSecret("sec1"))); len(got) != 0 {
				t.Errorf("services by dropped secret: %v", got)
			}
			if tx.GetConfig("cfg1") != nil {
				t.Error("config not deleted")
			}
		})
	})
}

// Versions of a secret share its name: the newest holds it in the name
// index, a superseded one gives it up (so the next can take it) and is
// found with the others by ByVersionsOf; a service's previous spec counts
// as a reference (a rollback brings it back).
func TestSecretVersions(t *testing.T) {
	forModes(t, func(t *testing.T, s *MemoryStore) {
		v1 := &api.Secret{ID: "v1", Version: 1, Spec: api.SecretSpec{Annotations: api.Annotations{Name: "db"}, Data: api.SecretBytes("a")}}
		mustUpdate(t, s, func(tx Tx) error { return tx.CreateSecret(v1) })
		err := s.Update(func(tx Tx) error {
			return tx.CreateSecret(&api.Secret{ID: "v2", Version: 2, Spec: api.SecretSpec{Annotations: api.Annotations{Name: "db"}, Data: api.SecretBytes("b")}})
		})
		if !errors.Is(err, ErrNameConflict) {
			t.Fatalf("second version while the first holds the name: %v", err)
		}
		mustUpdate(t, s, func(tx Tx) error {
			old := tx.GetSecret("v1")
			old.Superseded = true
			return errors.Join(tx.UpdateSecret(old),
				tx.CreateSecret(&api.Secret{ID: "v2", Version: 2, Spec: api.SecretSpec{Annotations: api.Annotations{Name: "db"}, Data: api.SecretBytes("b")}}),
				tx.CreateConfig(&api.Config{ID: "c1", Superseded: true, Spec: api.ConfigSpec{Annotations: api.Annotations{Name: "db"}, Data: []byte("c")}}))
		})
		tmpl := func(id string) api.TaskSpec {
			return api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"true"}}, Secrets: []api.SecretReference{{SecretID: id, SecretName: "db"}},
				Configs: []api.ConfigReference{{ConfigID: "c1", ConfigName: "db"}}}
		}
		mustUpdate(t, s, func(tx Tx) error {
			prev := api.ServiceSpec{Annotations: api.Annotations{Name: "web"}, TaskTemplate: tmpl("v1")}
			return tx.CreateService(&api.Service{ID: "svc", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "web"}, TaskTemplate: tmpl("v2")}, PreviousSpec: &prev})
		})
		s.View(func(tx ReadTx) {
			for _, tc := range []struct {
				name string
				find func() ([]string, error)
				want []string
			}{
				{"secret by name", func() ([]string, error) { return ids(tx.FindSecrets(ByName("db"))) }, []string{"v2"}},
				{"versions", func() ([]string, error) { return ids(tx.FindSecrets(ByVersionsOf("db"))) }, []string{"v1", "v2"}},
				{"config by name", func() ([]string, error) { return ids(tx.FindConfigs(ByName("db"))) }, nil},
				{"config versions", func() ([]string, error) { return ids(tx.FindConfigs(ByVersionsOf("db"))) }, []string{"c1"}},
				{"service by previous spec's secret", func() ([]string, error) { return ids(tx.FindServices(ByReferencedSecret("v1"))) }, []string{"svc"}},
				{"service by spec's secret", func() ([]string, error) { return ids(tx.FindServices(ByReferencedSecret("v2"))) }, []string{"svc"}},
			} {
				if got, err := tc.find(); err != nil || !slices.Equal(got, tc.want) {
					t.Errorf("%s: got %v %v, want %v", tc.name, got, err, tc.want)
				}
			}
			if _, err := tx.FindServices(ByVersionsOf("db")); !errors.Is(err, ErrInvalidFind) {
				t.Errorf("services by versions: %v", err)
			}
		})
		// The rollout moves on: the previous spec no longer holds v1.
		mustUpdate(t, s, func(tx Tx) error {
			svc := tx.GetService("svc")
			svc.PreviousSpec = nil
			return tx.UpdateService(svc)
		})
		s.View(func(tx ReadTx) {
			if got, _ := ids(tx.FindServices(ByReferencedSecret("v1"))); len(got) != 0 {
				t.Errorf("services by a secret no spec references: %v", got)
			}
		})
	})
}

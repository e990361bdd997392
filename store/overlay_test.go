package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/apiary-io/apiary/swarm/api"
)

// A transaction's own writes answer its reads and its name checks the
// same way whether they are among its first few (searched in turn) or
// past them (in maps), and across the move from one to the other: the
// same sequence of renames, deletes and re-creations is run after 0 to 7
// unrelated writes.
func TestOverlayFewAndSpilledAgree(t *testing.T) {
	named := func(id, name string) *api.Service {
		return &api.Service{ID: id, Spec: api.ServiceSpec{Annotations: api.Annotations{Name: name}}}
	}
	for pad := 0; pad <= 7; pad++ {
		t.Run(fmt.Sprintf("after %d writes", pad), func(t *testing.T) {
			s := NewMemoryStore(nil)
			defer s.Close()
			if err := s.Update(func(tx Tx) error { return tx.CreateService(named("old", "taken")) }); err != nil {
				t.Fatal(err)
			}
			err := s.Update(func(tx Tx) error {
				for i := range pad {
					if err := tx.CreateNode(&api.Node{ID: fmt.Sprintf("n%d", i), Spec: api.NodeSpec{Annotations: api.Annotations{Name: fmt.Sprintf("node-%d", i)}}}); err != nil {
						return err
					}
				}
				steps := []struct {
					what string
					do   func() error
					want error
				}{
					{"create a as 'a'", func() error { return tx.CreateService(named("a", "a")) }, nil},
					{"create b as 'a'", func() error { return tx.CreateService(named("b", "a")) }, ErrNameConflict},
					{"create b as 'taken'", func() error { return tx.CreateService(named("b", "taken")) }, ErrNameConflict},
					{"rename a to 'x'", func() error {
						a := tx.GetService("a")
						a.Spec.Name = "x"
						return tx.UpdateService(a)
					}, nil},
					{"create b as 'a' (freed)", func() error { return tx.CreateService(named("b", "a")) }, nil},
					{"create c as 'x'", func() error { return tx.CreateService(named("c", "x")) }, ErrNameConflict},
					{"delete old", func() error { return tx.DeleteService("old") }, nil},
					{"create c as 'taken' (freed)", func() error { return tx.CreateService(named("c", "taken")) }, nil},
					{"delete a", func() error { return tx.DeleteService("a") }, nil},
					{"create d as 'x' (freed)", func() error { return tx.CreateService(named("d", "x")) }, nil},
					{"create a again", func() error { return tx.CreateService(named("a", "y")) }, nil},
					{"create a twice", func() error { return tx.CreateService(named("a", "z")) }, ErrExist},
				}
				for _, st := range steps {
					if err := st.do(); !errors.Is(err, st.want) || (st.want == nil && err != nil) {
						return fmt.Errorf("%s: %v, want %v", st.what, err, st.want)
					}
				}
				for id, want := range map[string]string{"a": "y", "b": "a", "c": "taken", "d": "x", "old": ""} {
					got := tx.GetService(id)
					if (got == nil) != (want == "") || (got != nil && got.Spec.Name != want) {
						return fmt.Errorf("in the transaction, service %s = %+v, want name %q", id, got, want)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			s.View(func(tx ReadTx) {
				all, _ := tx.FindServices(All)
				for _, svc := range all {
					names = append(names, svc.ID+"="+svc.Spec.Name)
				}
			})
			if fmt.Sprint(names) != "[a=y b=a c=taken d=x]" {
				t.Fatalf("stored %v", names)
			}
		})
	}
}

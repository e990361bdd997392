package store

import (
	"errors"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/apiary-io/apiary/swarm/api"
)

// fixture creates a small cluster: a cluster object, three nodes, two
// networks, two services and their tasks.
func fixture(t testing.TB, s *MemoryStore) {
	t.Helper()
	mustUpdate(t, s, func(tx Tx) error {
		objs := []api.Object{
			&api.Cluster{ID: "c1", Spec: api.DefaultClusterSpec()},
			&api.Node{ID: "n1", Spec: api.NodeSpec{Annotations: api.Annotations{Name: "alpha"}, Role: api.NodeRoleManager}},
			&api.Node{ID: "n2", Spec: api.NodeSpec{Annotations: api.Annotations{Name: "beta"}, Role: api.NodeRoleWorker}},
			&api.Node{ID: "n3", Spec: api.NodeSpec{Role: api.NodeRoleWorker}},
			&api.Network{ID: "net1", Spec: api.NetworkSpec{Annotations: api.Annotations{Name: "front"}}},
			&api.Network{ID: "net2", Spec: api.NetworkSpec{Annotations: api.Annotations{Name: "back"}}},
			&api.Service{ID: "svcA", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "web"},
				TaskTemplate: api.TaskSpec{Networks: []api.NetworkAttachmentConfig{{Target: "net1"}}}}},
			&api.Service{ID: "svcB", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "db"}},
				Endpoint: &api.Endpoint{VirtualIPs: []api.EndpointVirtualIP{{NetworkID: "net2"}}}},
			&api.Task{ID: "t1", Name: "web.1", ServiceID: "svcA", Slot: 1, NodeID: "n1",
				DesiredState: api.TaskStateRunning, Status: api.TaskStatus{State: api.TaskStateRunning},
				Networks: []api.NetworkAttachment{{NetworkID: "net1"}}},
			&api.Task{ID: "t2", Name: "web.1", ServiceID: "svcA", Slot: 1, NodeID: "n2",
				DesiredState: api.TaskStateShutdown, Status: api.TaskStatus{State: api.TaskStateShutdown}},
			&api.Task{ID: "t3", Name: "web.2", ServiceID: "svcA", Slot: 2, NodeID: "n2",
				DesiredState: api.TaskStateRunning, Status: api.TaskStatus{State: api.TaskStatePending},
				Spec: api.TaskSpec{Networks: []api.NetworkAttachmentConfig{{Target: "net1"}, {Target: "net1"}}}},
			&api.Task{ID: "t4", Name: "db.n1", ServiceID: "svcB", NodeID: "n1",
				DesiredState: api.TaskStateRunning, Status: api.TaskStatus{State: api.TaskStateRunning}},
			&api.Task{ID: "t5", ServiceID: "svcB", DesiredState: api.TaskStateRunning},
		}
		for _, o := range objs {
			if err := createObject(tx, o); err != nil {
				return err
			}
		}
		return nil
	})
}

func ids[T api.Object](objs []T, err error) ([]string, error) {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetID())
	}
	sort.Strings(out)
	return out, err
}

func TestFind(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	fixture(t, s)
	tests := []struct {
		name string
		find func(tx ReadTx) ([]string, error)
		want []string
	}{
		{"all clusters", func(tx ReadTx) ([]string, error) { return ids(tx.FindClusters(All)) }, []string{"c1"}},
		{"cluster by name", func(tx ReadTx) ([]string, error) { return ids(tx.FindClusters(ByName(api.DefaultClusterName))) }, []string{"c1"}},
		{"all nodes", func(tx ReadTx) ([]string, error) { return ids(tx.FindNodes(All)) }, []string{"n1", "n2", "n3"}},
		{"node by name", func(tx ReadTx) ([]string, error) { return ids(tx.FindNodes(ByName("beta"))) }, []string{"n2"}},
		{"node by name is exact", func(tx ReadTx) ([]string, error) { return ids(tx.FindNodes(ByName("bet"))) }, nil},
		{"node by empty name", func(tx ReadTx) ([]string, error) { return ids(tx.FindNodes(ByName(""))) }, nil},
		{"node by ID prefix", func(tx ReadTx) ([]string, error) { return ids(tx.FindNodes(ByIDPrefix("n"))) }, []string{"n1", "n2", "n3"}},
		{"node by full ID as prefix", func(tx ReadTx) ([]string, error) { return ids(tx.FindNodes(ByIDPrefix("n2"))) }, []string{"n2"}},
		{"workers", func(tx ReadTx) ([]string, error) { return ids(tx.FindNodes(ByRole(api.NodeRoleWorker))) }, []string{"n2", "n3"}},
		{"managers", func(tx ReadTx) ([]string, error) { return ids(tx.FindNodes(ByRole(api.NodeRoleManager))) }, []string{"n1"}},
		{"service by name", func(tx ReadTx) ([]string, error) { return ids(tx.FindServices(ByName("db"))) }, []string{"svcB"}},
		{"services by prefix", func(tx ReadTx) ([]string, error) { return ids(tx.FindServices(ByIDPrefix("svc"))) }, []string{"svcA", "svcB"}},
		{"service by template network", func(tx ReadTx) ([]string, error) { return ids(tx.FindServices(ByReferencedNetwork("net1"))) }, []string{"svcA"}},
		{"service by VIP network", func(tx ReadTx) ([]string, error) { return ids(tx.FindServices(ByReferencedNetwork("net2"))) }, []string{"svcB"}},
		{"network by name", func(tx ReadTx) ([]string, error) { return ids(tx.FindNetworks(ByName("front"))) }, []string{"net1"}},
		{"all networks", func(tx ReadTx) ([]string, error) { return ids(tx.FindNetworks(All)) }, []string{"net1", "net2"}},
		{"tasks by service", func(tx ReadTx) ([]string, error) { return ids(tx.FindTasks(ByServiceID("svcA"))) }, []string{"t1", "t2", "t3"}},
		{"tasks by service is exact", func(tx ReadTx) ([]string, error) { return ids(tx.FindTasks(ByServiceID("svc"))) }, nil},
		{"tasks by node", func(tx ReadTx) ([]string, error) { return ids(tx.FindTasks(ByNodeID("n2"))) }, []string{"t2", "t3"}},
		{"tasks by slot", func(tx ReadTx) ([]string, error) { return ids(tx.FindTasks(BySlot("svcA", 1))) }, []string{"t1", "t2"}},
		{"tasks by slot 0", func(tx ReadTx) ([]string, error) { return ids(tx.FindTasks(BySlot("svcB", 0))) }, []string{"t4", "t5"}},
		{"tasks by desired state", func(tx ReadTx) ([]string, error) {
			return ids(tx.FindTasks(ByDesiredState(api.TaskStateRunning)))
		}, []string{"t1", "t3", "t4", "t5"}},
		{"tasks by observed state", func(tx ReadTx) ([]string, error) { return ids(tx.FindTasks(ByTaskState(api.TaskStateNew))) }, []string{"t5"}},
		{"tasks by name (not unique)", func(tx ReadTx) ([]string, error) { return ids(tx.FindTasks(ByName("web.1"))) }, []string{"t1", "t2"}},
		{"tasks by network", func(tx ReadTx) ([]string, error) { return ids(tx.FindTasks(ByReferencedNetwork("net1"))) }, []string{"t1", "t3"}},
		{"tasks by ID prefix", func(tx ReadTx) ([]string, error) { return ids(tx.FindTasks(ByIDPrefix("t"))) }, []string{"t1", "t2", "t3", "t4", "t5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var err error
			s.View(func(tx ReadTx) { got, err = tt.find(tx) })
			if err != nil {
				t.Fatalf("find: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGet(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	fixture(t, s)
	s.View(func(tx ReadTx) {
		for _, k := range []struct {
			kind api.Kind
			id   string
		}{{api.KindCluster, "c1"}, {api.KindNode, "n1"}, {api.KindService, "svcA"}, {api.KindTask, "t1"}, {api.KindNetwork, "net1"}} {
			if o := getObject(tx, k.kind, k.id); o == nil || o.GetID() != k.id || o.Kind() != k.kind {
				t.Errorf("get %s %s: got %v", k.kind, k.id, o)
			}
			if o := getObject(tx, k.kind, "missing"); o != nil {
				t.Errorf("get %s missing: got %v", k.kind, o)
			}
		}
		// A kind's Get never finds another kind's object.
		if tx.GetNode("t1") != nil {
			t.Error("GetNode found a task")
		}
	})
}

func TestInvalidFind(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	tests := []struct {
		name string
		find func(tx ReadTx) error
	}{
		{"nodes by service", func(tx ReadTx) error { _, err := tx.FindNodes(ByServiceID("x")); return err }},
		{"nodes by slot", func(tx ReadTx) error { _, err := tx.FindNodes(BySlot("x", 1)); return err }},
		{"services by node", func(tx ReadTx) error { _, err := tx.FindServices(ByNodeID("x")); return err }},
		{"services by role", func(tx ReadTx) error { _, err := tx.FindServices(ByRole(api.NodeRoleWorker)); return err }},
		{"tasks by role", func(tx ReadTx) error { _, err := tx.FindTasks(ByRole(api.NodeRoleWorker)); return err }},
		{"clusters by desired state", func(tx ReadTx) error {
			_, err := tx.FindClusters(ByDesiredState(api.TaskStateRunning))
			return err
		}},
		{"networks by network", func(tx ReadTx) error { _, err := tx.FindNetworks(ByReferencedNetwork("x")); return err }},
		{"nodes by task state", func(tx ReadTx) error { _, err := tx.FindNodes(ByTaskState(api.TaskStateNew)); return err }},
		{"nil By", func(tx ReadTx) error { _, err := tx.FindTasks(nil); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			s.View(func(tx ReadTx) { err = tt.find(tx) })
			if !errors.Is(err, ErrInvalidFind) {
				t.Errorf("got %v, want ErrInvalidFind", err)
			}
		})
	}
}

func TestNameUniqueness(t *testing.T) {
	tests := []struct {
		name string
		a, b api.Object // created in this order; same name
		want error      // creating b
	}{
		{"clusters", &api.Cluster{ID: "a", Spec: api.ClusterSpec{Annotations: api.Annotations{Name: "x"}}},
			&api.Cluster{ID: "b", Spec: api.ClusterSpec{Annotations: api.Annotations{Name: "x"}}}, ErrNameConflict},
		{"nodes", node("a", "x"), node("b", "x"), ErrNameConflict},
		{"nodes without names", node("a", ""), node("b", ""), nil},
		{"services", &api.Service{ID: "a", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "x"}}},
			&api.Service{ID: "b", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "x"}}}, ErrNameConflict},
		{"networks", &api.Network{ID: "a", Spec: api.NetworkSpec{Annotations: api.Annotations{Name: "x"}}},
			&api.Network{ID: "b", Spec: api.NetworkSpec{Annotations: api.Annotations{Name: "x"}}}, ErrNameConflict},
		{"tasks may share names", &api.Task{ID: "a", Name: "x"}, &api.Task{ID: "b", Name: "x"}, nil},
		{"names are per kind", node("a", "x"), &api.Service{ID: "b", Spec: api.ServiceSpec{Annotations: api.Annotations{Name: "x"}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forModes(t, func(t *testing.T, s *MemoryStore) {
				mustUpdate(t, s, func(tx Tx) error { return createObject(tx, tt.a) })
				// Across transactions.
				err := s.Update(func(tx Tx) error { return createObject(tx, tt.b) })
				if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
					t.Fatalf("create second: got %v, want %v", err, tt.want)
				}
				if tt.want == nil {
					return
				}
				// Within one transaction.
				err = s.Update(func(tx Tx) error {
					if err := deleteObject(tx, tt.a.Kind(), tt.a.GetID()); err != nil {
						return err
					}
					if err := createObject(tx, tt.b); err != nil {
						return err
					}
					c := tt.a.CopyObject()
					return createObject(tx, c)
				})
				if !errors.Is(err, ErrNameConflict) {
					t.Fatalf("swap names in one transaction: got %v, want ErrNameConflict", err)
				}
				// Renaming onto a taken name.
				c := tt.b.CopyObject()
				setName(c, "y")
				mustUpdate(t, s, func(tx Tx) error { return createObject(tx, c) })
				err = s.Update(func(tx Tx) error {
					cur := getObject(tx, c.Kind(), c.GetID())
					setName(cur, "x")
					return updateObject(tx, cur)
				})
				if !errors.Is(err, ErrNameConflict) {
					t.Fatalf("rename onto a taken name: got %v, want ErrNameConflict", err)
				}
				// Freeing a name and taking it in one transaction works.
				mustUpdate(t, s, func(tx Tx) error {
					if err := deleteObject(tx, tt.a.Kind(), tt.a.GetID()); err != nil {
						return err
					}
					cur := getObject(tx, c.Kind(), c.GetID())
					setName(cur, "x")
					return updateObject(tx, cur)
				})
			})
		})
	}
}

func setName(o api.Object, name string) {
	switch v := o.(type) {
	case *api.Cluster:
		v.Spec.Name = name
	case *api.Node:
		v.Spec.Name = name
	case *api.Service:
		v.Spec.Name = name
	case *api.Network:
		v.Spec.Name = name
	case *api.Task:
		v.Name = name
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name string
		fn   func(tx Tx) error
		want error
	}{
		{"create existing", func(tx Tx) error { return tx.CreateNode(node("n1", "other")) }, ErrExist},
		{"update missing", func(tx Tx) error { return tx.UpdateNode(node("zz", "")) }, ErrNotFound},
		{"delete missing", func(tx Tx) error { return tx.DeleteTask("zz") }, ErrNotFound},
		{"delete twice", func(tx Tx) error {
			if err := tx.DeleteNode("n1"); err != nil {
				return err
			}
			return tx.DeleteNode("n1")
		}, ErrNotFound},
		{"update stale version", func(tx Tx) error {
			n := tx.GetNode("n1")
			n.Meta.Version--
			return tx.UpdateNode(n)
		}, ErrConflict},
		{"update future version", func(tx Tx) error {
			n := tx.GetNode("n1")
			n.Meta.Version++
			return tx.UpdateNode(n)
		}, ErrConflict},
		{"update another kind's ID", func(tx Tx) error { return tx.UpdateService(&api.Service{ID: "n1"}) }, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forModes(t, func(t *testing.T, s *MemoryStore) {
				mustUpdate(t, s, func(tx Tx) error { return tx.CreateNode(node("n1", "one")) })
				before := allObjects(t, s)
				index := s.Index()
				err := s.Update(tt.fn)
				if !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
				if s.Index() != index || !reflect.DeepEqual(allObjects(t, s), before) {
					t.Errorf("a failed transaction changed the store")
				}
			})
		})
	}
	s := NewMemoryStore(nil)
	defer s.Close()
	for name, fn := range map[string]func(tx Tx) error{
		"empty ID":   func(tx Tx) error { return tx.CreateNode(&api.Node{}) },
		"nil node":   func(tx Tx) error { return tx.CreateNode(nil) },
		"nil update": func(tx Tx) error { return tx.UpdateTask(nil) },
	} {
		if err := s.Update(fn); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// The conflict error names what conflicted.
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateNode(node("n1", "")) })
	err := s.Update(func(tx Tx) error { return tx.UpdateNode(node("n1", "")) })
	if want := "update node n1: " + ErrConflict.Error(); err == nil || err.Error() != want {
		t.Errorf("conflict error %q, want %q", err, want)
	}
}

func TestVersionsAndTimes(t *testing.T) {
	forModes(t, func(t *testing.T, s *MemoryStore) {
		start := time.Now().UTC()
		mustUpdate(t, s, func(tx Tx) error {
			if err := tx.CreateNode(node("a", "")); err != nil {
				return err
			}
			return tx.CreateNode(node("b", ""))
		})
		if s.Index() != 1 {
			t.Fatalf("index %d after the first commit, want 1", s.Index())
		}
		a := getNode(s, "a")
		if a.Meta.Version != 1 || getNode(s, "b").Meta.Version != 1 {
			t.Fatalf("versions %d, %d, want 1", a.Meta.Version, getNode(s, "b").Meta.Version)
		}
		if a.Meta.CreatedAt.Before(start) || !a.Meta.UpdatedAt.Equal(a.Meta.CreatedAt) || a.Meta.CreatedAt.Location() != time.UTC {
			t.Fatalf("create times: %+v (start %v)", a.Meta, start)
		}

		// Two updates of one object in one transaction, each from what the
		// transaction reads back, then a commit: one new version.
		mustUpdate(t, s, func(tx Tx) error {
			for i := 0; i < 2; i++ {
				n := tx.GetNode("a")
				if n.Meta.Version != 1 {
					t.Errorf("inside the transaction: version %d, want 1", n.Meta.Version)
				}
				n.Spec.Labels = map[string]string{"i": string(rune('0' + i))}
				n.Meta.CreatedAt = time.Time{} // callers cannot rewrite it
				if err := tx.UpdateNode(n); err != nil {
					return err
				}
			}
			return nil
		})
		a2 := getNode(s, "a")
		if a2.Meta.Version != 2 || s.Index() != 2 || a2.Spec.Labels["i"] != "1" {
			t.Fatalf("after update: version %d index %d labels %v", a2.Meta.Version, s.Index(), a2.Spec.Labels)
		}
		if !a2.Meta.CreatedAt.Equal(a.Meta.CreatedAt) || a2.Meta.UpdatedAt.Before(a.Meta.UpdatedAt) {
			t.Fatalf("update times: before %+v after %+v", a.Meta, a2.Meta)
		}
		if getNode(s, "b").Meta.Version != 1 {
			t.Fatalf("an untouched object changed version")
		}

		// The old version is refused now.
		if err := s.Update(func(tx Tx) error { return tx.UpdateNode(a) }); !errors.Is(err, ErrConflict) {
			t.Fatalf("update from version 1: %v", err)
		}
		// Create, update and delete of one object inside one transaction.
		mustUpdate(t, s, func(tx Tx) error {
			if err := tx.CreateNode(node("c", "")); err != nil {
				return err
			}
			c := tx.GetNode("c")
			if c.Meta.Version != 0 {
				t.Errorf("uncommitted object has version %d", c.Meta.Version)
			}
			if err := tx.UpdateNode(c); err != nil {
				return err
			}
			return tx.DeleteNode("c")
		})
		if getNode(s, "c") != nil || s.Index() != 3 {
			t.Fatalf("create+delete left %v, index %d", getNode(s, "c"), s.Index())
		}
		// A transaction that writes nothing commits nothing.
		mustUpdate(t, s, func(tx Tx) error { tx.GetNode("a"); return nil })
		if s.Index() != 3 {
			t.Fatalf("read-only transaction moved the index to %d", s.Index())
		}
	})
}

func TestRollback(t *testing.T) {
	forModes(t, func(t *testing.T, s *MemoryStore) {
		fixture(t, s)
		before := allObjects(t, s)
		index := s.Index()
		boom := errors.New("boom")
		err := s.Update(func(tx Tx) error {
			if err := tx.CreateNode(node("new", "new")); err != nil {
				return err
			}
			n := tx.GetNode("n1")
			n.Spec.Name = "renamed"
			if err := tx.UpdateNode(n); err != nil {
				return err
			}
			if err := tx.DeleteTask("t1"); err != nil {
				return err
			}
			// Own writes are visible inside, invisible outside.
			if tx.GetNode("new") == nil || tx.GetTask("t1") != nil {
				t.Error("transaction does not see its own writes")
			}
			if got, _ := tx.FindNodes(ByName("renamed")); len(got) != 1 {
				t.Error("index does not see the transaction's rename")
			}
			if got, _ := ids(tx.FindTasks(ByServiceID("svcA"))); !slices.Equal(got, []string{"t2", "t3"}) {
				t.Errorf("index after a delete: %v", got)
			}
			// Writes after a Find reach the indexes of the next Find.
			if err := tx.CreateTask(&api.Task{ID: "t9", ServiceID: "svcA"}); err != nil {
				return err
			}
			if err := tx.DeleteTask("t2"); err != nil {
				return err
			}
			if got, _ := ids(tx.FindTasks(ByServiceID("svcA"))); !slices.Equal(got, []string{"t3", "t9"}) {
				t.Errorf("index after more writes: %v", got)
			}
			if got, _ := ids(tx.FindNodes(ByName("alpha"))); len(got) != 0 {
				t.Errorf("old name still indexed: %v", got)
			}
			s.View(func(r ReadTx) {
				if r.GetNode("new") != nil || r.GetTask("t1") == nil {
					t.Error("uncommitted writes visible to a reader")
				}
			})
			return boom
		})
		if err != boom {
			t.Fatalf("got %v, want fn's error as is", err)
		}
		if s.Index() != index || !reflect.DeepEqual(allObjects(t, s), before) {
			t.Fatal("rolled-back transaction changed the store")
		}
	})
}

func TestReturnedObjectsAreCopies(t *testing.T) {
	s := NewMemoryStore(nil)
	defer s.Close()
	n := node("n1", "one")
	n.Spec.Labels = map[string]string{"k": "v"}
	mustUpdate(t, s, func(tx Tx) error {
		if err := tx.CreateNode(n); err != nil {
			return err
		}
		// Changing what was passed in or read inside the transaction
		// changes nothing stored.
		n.Spec.Labels["k"] = "caller"
		tx.GetNode("n1").Spec.Labels["k"] = "reader"
		return nil
	})
	if n.Meta.Version != 0 {
		t.Error("Create changed the caller's object")
	}
	w := s.Watch()
	defer w.Close()
	mustUpdate(t, s, func(tx Tx) error {
		m := tx.GetNode("n1")
		m.Spec.Role = api.NodeRoleManager
		return tx.UpdateNode(m)
	})
	ev := nextEvent(t, w, time.Now().Add(10*time.Second))
	ev.Object.(*api.Node).Spec.Labels["k"] = "event"
	ev.Old.(*api.Node).Spec.Labels["k"] = "old"

	s.View(func(tx ReadTx) {
		g := tx.GetNode("n1")
		g.Spec.Labels["k"] = "get"
		fs, _ := tx.FindNodes(All)
		fs[0].Spec.Labels["k"] = "find"
		fs, _ = tx.FindNodes(ByRole(api.NodeRoleManager))
		fs[0].Spec.Name = "find2"
	})
	got := getNode(s, "n1")
	if got.Spec.Labels["k"] != "v" || got.Spec.Name != "one" {
		t.Fatalf("stored object changed through a copy: %+v", got.Spec)
	}
}

func TestActionAndEventNames(t *testing.T) {
	for a, want := range map[Action]string{ActionCreate: "create", ActionUpdate: "update", ActionDelete: "delete",
		ActionCommit: "commit", ActionRestore: "restore", Action(0): "unknown"} {
		if a.String() != want {
			t.Errorf("%d: %q, want %q", int(a), a.String(), want)
		}
	}
	if k := (Event{Action: ActionCommit}).Kind(); k != "" {
		t.Errorf("commit event kind %q", k)
	}
	if k := (Event{Action: ActionCreate, Object: &api.Task{}}).Kind(); k != api.KindTask {
		t.Errorf("task event kind %q", k)
	}
}

// ViewShared hands out the stored objects themselves; View copies.
func TestViewSharedDoesNotCopy(t *testing.T) {
	s := NewMemoryStore(nil)
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateNode(node("n", "n")) })
	var a, b, c *api.Node
	s.ViewShared(func(tx ReadTx) { a = tx.GetNode("n") })
	s.ViewShared(func(tx ReadTx) { ns, _ := tx.FindNodes(All); b = ns[0] })
	s.View(func(tx ReadTx) { c = tx.GetNode("n") })
	if a != b {
		t.Fatal("ViewShared copied the stored object")
	}
	if c == a {
		t.Fatal("View handed out the stored object")
	}
}

package dns

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Table is the in-memory Records: a map of services set and deleted whole,
// for tests and for callers whose endpoint tables arrive as full services.
// It is safe for concurrent use; a change is seen by the next lookup.
//
// A name that is both a service's name and another service's alias denotes
// the service of that name; an alias several services share denotes the one
// whose name sorts first (Docker answers such an alias with every service's
// addresses; we keep one service per name, which SRV needs).
type Table struct {
	mu       sync.RWMutex
	services map[string]*Service
	// aliases maps an alias to the services claiming it, sorted.
	aliases map[string][]string
	// tasks maps a task name to its service's name and the task.
	tasks map[string]ownedTask
	// addrs maps an address to the names it has (PTR).
	addrs map[netip.Addr]map[string]struct{}
}

type ownedTask struct {
	service string
	task    Task
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{
		services: make(map[string]*Service),
		aliases:  make(map[string][]string),
		tasks:    make(map[string]ownedTask),
		addrs:    make(map[netip.Addr]map[string]struct{}),
	}
}

// Set adds s, or replaces the service of the same name (its aliases, VIPs,
// ports and tasks all at once). Names are case-insensitive. It fails,
// changing nothing, on an invalid field or on a task name that belongs to
// another service. The table keeps a copy: s may be reused after.
func (t *Table) Set(s Service) error {
	c, err := normalized(s)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, task := range c.Tasks {
		if owner, ok := t.tasks[task.Name]; ok && owner.service != c.Name {
			return fmt.Errorf("dns: service %q: tasks[%d].name: task %q belongs to service %q", c.Name, i, task.Name, owner.service)
		}
	}
	t.remove(c.Name)
	t.services[c.Name] = c
	for _, a := range c.Aliases {
		owners := append(t.aliases[a], c.Name)
		slices.Sort(owners)
		t.aliases[a] = owners
	}
	for _, vip := range c.VIPs {
		t.addName(vip, c.Name)
	}
	for _, task := range c.Tasks {
		t.tasks[task.Name] = ownedTask{service: c.Name, task: task}
		t.addName(task.Addr, task.Name)
	}
	return nil
}

// Delete removes the service named name and reports whether it was there.
func (t *Table) Delete(name string) bool {
	name = strings.ToLower(name)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.remove(name)
}

// remove drops the service named name from every index.
func (t *Table) remove(name string) bool {
	old, ok := t.services[name]
	if !ok {
		return false
	}
	delete(t.services, name)
	for _, a := range old.Aliases {
		owners := slices.DeleteFunc(t.aliases[a], func(o string) bool { return o == name })
		if len(owners) == 0 {
			delete(t.aliases, a)
		} else {
			t.aliases[a] = owners
		}
	}
	for _, vip := range old.VIPs {
		t.dropName(vip, old.Name)
	}
	for _, task := range old.Tasks {
		delete(t.tasks, task.Name)
		t.dropName(task.Addr, task.Name)
	}
	return true
}

func (t *Table) addName(addr netip.Addr, name string) {
	set := t.addrs[addr]
	if set == nil {
		set = make(map[string]struct{})
		t.addrs[addr] = set
	}
	set[name] = struct{}{}
}

func (t *Table) dropName(addr netip.Addr, name string) {
	set := t.addrs[addr]
	delete(set, name)
	if len(set) == 0 {
		delete(t.addrs, addr)
	}
}

// Service implements Records.
func (t *Table) Service(name string) (Service, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s, ok := t.services[name]
	if !ok {
		owners := t.aliases[name]
		if len(owners) == 0 {
			return Service{}, false
		}
		s = t.services[owners[0]]
	}
	return *s, true
}

// Task implements Records.
func (t *Table) Task(name string) (Task, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	owned, ok := t.tasks[name]
	return owned.task, ok
}

// Names implements Records; the names come sorted.
func (t *Table) Names(addr netip.Addr) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.Sorted(maps.Keys(t.addrs[addr.Unmap()]))
}

// normalized checks s and returns a deep copy with lower-cased names and
// IPv4-mapped addresses unmapped, so lookups compare like with like.
func normalized(s Service) (*Service, error) {
	name := strings.ToLower(s.Name)
	fail := func(field, format string, args ...any) error {
		return fmt.Errorf("dns: service %q: %s: %s", s.Name, field, fmt.Sprintf(format, args...))
	}
	if err := checkName(name); err != nil {
		return nil, fail("name", "%v", err)
	}
	c := &Service{Name: name}
	for i, a := range s.Aliases {
		a = strings.ToLower(a)
		if err := checkName(a); err != nil {
			return nil, fail(fmt.Sprintf("aliases[%d]", i), "%v", err)
		}
		if !slices.Contains(c.Aliases, a) && a != name {
			c.Aliases = append(c.Aliases, a)
		}
	}
	for i, vip := range s.VIPs {
		if !vip.IsValid() {
			return nil, fail(fmt.Sprintf("vips[%d]", i), "not a valid address")
		}
		c.VIPs = append(c.VIPs, vip.Unmap())
	}
	for i, p := range s.Ports {
		p.Name = strings.ToLower(p.Name)
		field := fmt.Sprintf("ports[%d]", i)
		switch {
		case p.Protocol != "tcp" && p.Protocol != "udp":
			return nil, fail(field+".protocol", `must be "tcp" or "udp", got %q`, p.Protocol)
		case p.Target == 0:
			return nil, fail(field+".target", "must not be 0")
		}
		if p.Name != "" {
			if err := checkLabel(p.Name); err != nil {
				return nil, fail(field+".name", "%v", err)
			}
		}
		c.Ports = append(c.Ports, p)
	}
	seen := make(map[string]bool, len(s.Tasks))
	for i, task := range s.Tasks {
		task.Name = strings.ToLower(task.Name)
		field := fmt.Sprintf("tasks[%d]", i)
		if err := checkName(task.Name); err != nil {
			return nil, fail(field+".name", "%v", err)
		}
		if seen[task.Name] {
			return nil, fail(field+".name", "task %q listed twice", task.Name)
		}
		seen[task.Name] = true
		if !task.Addr.IsValid() {
			return nil, fail(field+".addr", "not a valid address")
		}
		task.Addr = task.Addr.Unmap()
		task.HostPorts = maps.Clone(task.HostPorts)
		c.Tasks = append(c.Tasks, task)
	}
	return c, nil
}

package store

import (
	"fmt"

	"github.com/apiary-io/apiary/swarm/api"
)

// By selects objects in a Find. Not every By applies to every kind: a Find
// with one that does not returns ErrInvalidFind.
type By interface{ isBy() }

type byAll struct{}
type byName string
type byIDPrefix string
type byServiceID string
type byNodeID string
type bySlot struct {
	serviceID string
	slot      uint64
}
type byDesiredState api.TaskState
type byRole api.NodeRole
type byTaskState api.TaskState
type byReferencedNetwork string
type byPublishedPort string
type byAddress string
type byReferencedSecret string
type byReferencedConfig string
type byVersionsOf string

func (byAll) isBy()               {}
func (byName) isBy()              {}
func (byIDPrefix) isBy()          {}
func (byServiceID) isBy()         {}
func (byNodeID) isBy()            {}
func (bySlot) isBy()              {}
func (byDesiredState) isBy()      {}
func (byRole) isBy()              {}
func (byTaskState) isBy()         {}
func (byReferencedNetwork) isBy() {}
func (byPublishedPort) isBy()     {}
func (byAddress) isBy()           {}
func (byReferencedSecret) isBy()  {}
func (byReferencedConfig) isBy()  {}
func (byVersionsOf) isBy()        {}

// All selects every object of the kind.
var All By = byAll{}

// ByName selects objects by name: Spec.Annotations.Name for clusters, nodes,
// services, networks, secrets and configs, where a name is unique among the objects of the
// kind (objects with an empty name are never found by name); Task.Name for
// tasks, which is not unique (every task of a slot has the same one). A
// node's name is its spec name only, not its hostname.
func ByName(name string) By { return byName(name) }

// ByIDPrefix selects objects whose ID starts with p.
func ByIDPrefix(p string) By { return byIDPrefix(p) }

// ByServiceID selects the tasks of a service.
func ByServiceID(id string) By { return byServiceID(id) }

// ByNodeID selects the tasks on a node.
func ByNodeID(id string) By { return byNodeID(id) }

// BySlot selects the tasks of one slot of a replicated service.
func BySlot(serviceID string, slot uint64) By { return bySlot{serviceID, slot} }

// ByDesiredState selects tasks by desired state.
func ByDesiredState(s api.TaskState) By { return byDesiredState(s) }

// ByRole selects nodes by role.
func ByRole(r api.NodeRole) By { return byRole(r) }

// ByTaskState selects tasks by observed state (Status.State).
func ByTaskState(s api.TaskState) By { return byTaskState(s) }

// ByAddress selects the services and tasks that hold an address on a
// network (see AddrKey; api.HostNetworkID for host VIPs): a service's VIP
// or host VIP, a task's address while the task is not terminal.
func ByAddress(networkID, addr string) By { return byAddress(AddrKey(networkID, addr)) }

// ByReferencedNetwork selects the services and tasks that use a network: a
// service whose task template or virtual IPs name it, a task whose spec or
// attachments do.
func ByReferencedNetwork(networkID string) By { return byReferencedNetwork(networkID) }

// ByReferencedSecret selects the services and tasks whose template
// references a secret by ID: a service's spec or its previous spec (what
// a rollback brings back), a task's spec.
func ByReferencedSecret(secretID string) By { return byReferencedSecret(secretID) }

// ByReferencedConfig selects the services and tasks whose template
// references a config by ID, as ByReferencedSecret.
func ByReferencedConfig(configID string) By { return byReferencedConfig(configID) }

// ByVersionsOf selects every version kept of the secret or config named
// name, the newest and the superseded ones (ByName finds the newest
// only). Secrets and configs only.
func ByVersionsOf(name string) By { return byVersionsOf(name) }

// ByPublishedPort selects the services that hold an ingress port (their
// allocated endpoint publishes it) or, not yet allocated, ask for it by
// number. Services only.
func ByPublishedPort(protocol string, port uint32) By {
	return byPublishedPort(PortKey(protocol, port))
}

// query maps a By to the selector that answers it for a kind.
func query(ki *kindInfo, by By) (selector, error) {
	idx := func(name string, k ikey) (selector, error) {
		if i := ki.index(name); i > 0 {
			return selector{index: i, key: k}, nil
		}
		return selector{}, fmt.Errorf("find %s by %s: %w", ki.kind, byString(by), ErrInvalidFind)
	}
	switch v := by.(type) {
	case byAll:
		return selector{all: true}, nil
	case byName:
		return idx(indexName, ikey{s: string(v)})
	case byIDPrefix:
		return selector{prefix: string(v)}, nil
	case byServiceID:
		return idx(indexService, ikey{s: string(v)})
	case byNodeID:
		return idx(indexNode, ikey{s: string(v)})
	case bySlot:
		return idx(indexSlot, ikey{s: v.serviceID, n: v.slot})
	case byDesiredState:
		return idx(indexDesired, ikey{n: uint64(v)})
	case byTaskState:
		return idx(indexState, ikey{n: uint64(v)})
	case byRole:
		return idx(indexRole, ikey{s: string(v)})
	case byReferencedNetwork:
		return idx(indexNetwork, ikey{s: string(v)})
	case byPublishedPort:
		return idx(indexPort, ikey{s: string(v)})
	case byAddress:
		return idx(indexAddr, ikey{s: string(v)})
	case byReferencedSecret:
		return idx(indexSecret, ikey{s: string(v)})
	case byReferencedConfig:
		return idx(indexConfig, ikey{s: string(v)})
	case byVersionsOf:
		return idx(indexVersions, ikey{s: string(v)})
	case nil:
		return selector{}, fmt.Errorf("find %s: nil By: %w", ki.kind, ErrInvalidFind)
	}
	return selector{}, fmt.Errorf("find %s by %s: %w", ki.kind, byString(by), ErrInvalidFind)
}

// byString names a selector for error messages.
func byString(by By) string {
	switch v := by.(type) {
	case byAll:
		return "all"
	case byName:
		return fmt.Sprintf("name %q", string(v))
	case byIDPrefix:
		return fmt.Sprintf("ID prefix %q", string(v))
	case byServiceID:
		return "service ID " + string(v)
	case byNodeID:
		return "node ID " + string(v)
	case bySlot:
		return fmt.Sprintf("slot %s.%d", v.serviceID, v.slot)
	case byDesiredState:
		return "desired state " + api.TaskState(v).String()
	case byTaskState:
		return "state " + api.TaskState(v).String()
	case byRole:
		return "role " + string(v)
	case byReferencedNetwork:
		return "network " + string(v)
	case byPublishedPort:
		return "published port " + string(v)
	case byAddress:
		return "address " + string(v)
	case byReferencedSecret:
		return "secret " + string(v)
	case byReferencedConfig:
		return "config " + string(v)
	case byVersionsOf:
		return fmt.Sprintf("versions of %q", string(v))
	}
	return fmt.Sprintf("%T", by)
}

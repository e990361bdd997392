package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
)

// The filter keys of each list command, as docker's.
var (
	serviceFilterKeys = []string{"id", "label", "mode", "name"}
	taskFilterKeys    = []string{"desired-state", "id", "name", "node"}
	nodeFilterKeys    = []string{"id", "label", "membership", "name", "node.label", "role"}
)

// Default columns of each listing (fields of its records).
var (
	serviceCols = []string{"ID", "Name", "Mode", "Replicas", "Image", "Ports"}
	taskCols    = []string{"ID", "Name", "Image", "Node", "DesiredState", "CurrentState", "Error", "Ports"}
	nodeCols    = []string{"ID", "Hostname", "Status", "Availability", "ManagerStatus", "EngineVersion"}
)

func (c *cli) serviceLs() *cobra.Command {
	var l listFlags
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List services",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listObjects(c, l, serviceFilterKeys, serviceCols, func(ctx context.Context, cl *client.Client) ([]*api.Service, error) {
				return cl.ListServices(ctx)
			}, keepService, func(s *api.Service) string { return s.ID })
		},
	}
	l.register(cmd.Flags(), strings.Join(serviceFilterKeys, ", "), "service")
	return cmd
}

// keepService is service ls's filters (and stack services').
func keepService(f filterSet, s *api.Service) (record, bool) {
	return serviceRecord(s), f.match("id", true, s.ID) && f.match("name", true, s.Spec.Name) &&
		f.match("mode", false, s.Spec.Mode.ModeName()) && f.matchLabels("label", s.Spec.Labels)
}

// listObjects is a list command's run: the filters and format checked
// before anything is read, the objects listed, those the filters keep
// (keep) printed as --format and -q say.
func listObjects[T any](c *cli, l listFlags, keys, cols []string, list func(context.Context, *client.Client) ([]T, error),
	keep func(filterSet, T) (record, bool), id func(T) string) error {
	f, err := parseFilters(l.filters, keys...)
	if err != nil {
		return err
	}
	if _, err := parseFormat(l.format); err != nil {
		return err
	}
	cl, ctx, cancel, err := c.session()
	if err != nil {
		return err
	}
	defer cancel()
	all, err := list(ctx, cl)
	if err != nil {
		return err
	}
	kept, ids, recs := []T{}, []string{}, []record{}
	for _, o := range all {
		if r, ok := keep(f, o); ok {
			kept, ids, recs = append(kept, o), append(ids, id(o)), append(recs, r)
		}
	}
	return c.printList(l.format, l.quiet, kept, ids, recs, cols)
}

// serviceRecord is a service's fields as docker's service ls names them.
func serviceRecord(s *api.Service) record {
	reps := ""
	if st := s.ServiceStatus; st != nil {
		reps = fmt.Sprintf("%d/%d", st.RunningTasks, st.DesiredTasks)
		if j := s.Spec.Mode.ReplicatedJob; j != nil {
			reps = fmt.Sprintf("%d/%d (%d/%d completed)", st.RunningTasks, st.DesiredTasks, st.CompletedTasks, j.TotalCompletions)
		}
	}
	if p := s.Spec.TaskTemplate.Placement; p != nil && p.MaxReplicas > 0 && s.Spec.Mode.Replicated != nil {
		reps += fmt.Sprintf(" (max %d per node)", p.MaxReplicas)
	}
	return record{"ID": short(s.ID), "Name": s.Spec.Name, "Mode": s.Spec.Mode.ModeName(), "Replicas": reps,
		"Image": runs(s.Spec.TaskTemplate), "Ports": ports(s)}
}

func (c *cli) servicePs() *cobra.Command {
	var l listFlags
	cmd := &cobra.Command{
		Use:   "ps SERVICE...",
		Short: "List the tasks of services (ERROR says why a pending task is not placed)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.listTasks(l, args, func(ref string) control.TaskFilter { return control.TaskFilter{Service: ref} })
		},
	}
	l.register(cmd.Flags(), strings.Join(taskFilterKeys, ", "), "task")
	return cmd
}

func (c *cli) nodePs() *cobra.Command {
	var l listFlags
	cmd := &cobra.Command{
		Use:   "ps [NODE...]",
		Short: "List the tasks on nodes (this node by default)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"self"}
			}
			return c.listTasks(l, args, func(ref string) control.TaskFilter { return control.TaskFilter{Node: ref} })
		},
	}
	l.register(cmd.Flags(), strings.Join(taskFilterKeys, ", "), "task")
	return cmd
}

// listTasks lists the tasks of each reference (a service's, or a node's:
// "self" is the node whose socket apiaryctl dialled), filtered.
func (c *cli) listTasks(l listFlags, refs []string, by func(string) control.TaskFilter) error {
	var hosts map[string]string
	return listObjects(c, l, taskFilterKeys, taskCols, func(ctx context.Context, cl *client.Client) ([]*api.Task, error) {
		hosts = hostnames(ctx, cl)
		var tasks []*api.Task
		for _, ref := range refs {
			if ref == "self" {
				id, err := selfID(ctx, cl)
				if err != nil {
					return nil, err
				}
				ref = id
			}
			ts, err := cl.ListTasks(ctx, by(ref))
			if err != nil {
				return nil, err
			}
			tasks = append(tasks, ts...)
		}
		return tasks, nil
	}, func(f filterSet, t *api.Task) (record, bool) {
		return taskRecord(t, hosts), f.match("id", true, t.ID) && f.match("name", true, t.Name) &&
			f.match("node", true, t.NodeID, hosts[t.NodeID]) && f.match("desired-state", false, desiredFilterNames(t.DesiredState)...)
	}, func(t *api.Task) string { return t.ID })
}

// desiredFilterNames are the desired-state filter values a task matches:
// docker's running, shutdown and accepted (a task waiting to start).
func desiredFilterNames(s api.TaskState) []string {
	switch {
	case s == api.TaskStateRunning:
		return []string{"running"}
	case s < api.TaskStateRunning:
		return []string{"accepted"}
	}
	return []string{"shutdown", strings.ToLower(s.String())}
}

// taskRecord is a task's fields as docker's service ps names them. Error
// is the task's error, or why a pending task is placed nowhere (the
// scheduler's "no suitable node (...)"), quoted as docker quotes it.
func taskRecord(t *api.Task, hosts map[string]string) record {
	errText := t.Status.Err
	if errText == "" && t.Status.State == api.TaskStatePending && t.DesiredState <= api.TaskStateRunning && strings.HasPrefix(t.Status.Message, "no suitable node") {
		errText = t.Status.Message
	}
	if errText != "" {
		errText = fmt.Sprintf("%q", errText)
	}
	var ps []string
	for _, p := range t.Status.PortStatus {
		ps = append(ps, fmt.Sprintf("*:%d->%d/%s", p.PublishedPort, p.TargetPort, p.Protocol))
	}
	return record{"ID": short(t.ID), "Name": t.Name, "Image": runs(t.Spec), "Node": hosts[t.NodeID],
		"DesiredState": titled(t.DesiredState.String()),
		"CurrentState": fmt.Sprintf("%s %s ago", titled(t.Status.State.String()), ago(t.Status.Timestamp)),
		"Error":        errText, "Ports": strings.Join(ps, ",")}
}

// selfID is the ID of the node whose control socket apiaryctl dialled.
func selfID(ctx context.Context, cl *client.Client) (string, error) {
	st, err := cl.NodeStatus(ctx)
	if err != nil {
		return "", fmt.Errorf("self: %w", err)
	}
	return st.NodeID, nil
}

func (c *cli) nodeLs() *cobra.Command {
	var l listFlags
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List nodes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var self string
			return listObjects(c, l, nodeFilterKeys, nodeCols, func(ctx context.Context, cl *client.Client) ([]*api.Node, error) {
				self, _ = selfID(ctx, cl) // {{.Self}}, when known
				return cl.ListNodes(ctx)
			}, func(f filterSet, n *api.Node) (record, bool) {
				var engine map[string]string
				if n.Description != nil {
					engine = n.Description.Engine.Labels
				}
				role := string(n.Spec.Role)
				if role == "" {
					role = string(api.NodeRoleWorker)
				}
				return nodeRecord(n, self), f.match("id", true, n.ID) && f.match("name", true, hostname(n)) && f.match("role", false, role) &&
					f.match("membership", false, "accepted") && f.matchLabels("label", engine) && f.matchLabels("node.label", n.Spec.Labels)
			}, func(n *api.Node) string { return n.ID })
		},
	}
	l.register(cmd.Flags(), strings.Join(nodeFilterKeys, ", "), "node")
	return cmd
}

// nodeRecord is a node's fields as docker's node ls names them ({{.Self}}
// is "true" for the node apiaryctl talks to).
func nodeRecord(n *api.Node, self string) record {
	ms := ""
	if n.ManagerStatus != nil {
		ms = titled(string(n.ManagerStatus.Reachability))
		if n.ManagerStatus.Leader {
			ms = "Leader"
		}
	}
	engine := ""
	if n.Description != nil {
		engine = n.Description.Engine.EngineVersion
	}
	isSelf := "false"
	if n.ID == self {
		isSelf = "true"
	}
	return record{"ID": short(n.ID), "Hostname": hostname(n), "Status": titled(string(n.Status.State)),
		"Availability": titled(string(n.Spec.Availability)), "ManagerStatus": ms, "EngineVersion": engine,
		"Self": isSelf, "TLSStatus": "Ready"}
}

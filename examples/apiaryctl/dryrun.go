package main

import (
	"fmt"
	"io"

	"github.com/apiary-io/apiary/swarm/api/control"
)

// printPlan prints a dry run as Nomad's job plan does: a summary, then a
// line per slot, "+" created, "~" replaced, "-" removed, with the node the
// scheduler would choose or why it could not.
func printPlan(out io.Writer, p *control.ServicePlan) error {
	verb := "create"
	if p.ServiceID != "" {
		verb = "update"
	}
	fmt.Fprintf(out, "%s service %q (%s): %d to create, %d to replace, %d to remove, %d unchanged\n",
		verb, p.Name, p.Mode, len(p.Create), len(p.Replace), len(p.Remove), p.Unchanged)
	where := func(t control.PlannedTask) string {
		if t.NodeID == "" {
			return "not placed: " + t.Reason
		}
		if t.NodeHostname != "" {
			return "on " + t.NodeHostname
		}
		return "on " + short(t.NodeID)
	}
	w := table(out, "", "TASK", "FROM", "PLACEMENT")
	for _, t := range p.Create {
		fmt.Fprintf(w, "+\t%s\t\t%s\n", t.Name, where(t))
	}
	for _, t := range p.Replace {
		fmt.Fprintf(w, "~\t%s\t%s\t%s\n", t.Name, short(t.OldNodeID), where(t))
	}
	for _, t := range p.Remove {
		fmt.Fprintf(w, "-\t%s\t%s\t\n", t.Name, short(t.OldNodeID))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if p.Unplaced > 0 {
		fmt.Fprintf(out, "scheduler: %d task(s) would fit on no node\n", p.Unplaced)
	}
	if p.UpdateState != "" {
		fmt.Fprintf(out, "rollout: would end %s\n", p.UpdateState)
	}
	if p.Truncated {
		fmt.Fprintln(out, "note: the simulation stopped at its bound; what follows it is not shown")
	}
	fmt.Fprintln(out, "dry run: nothing was changed")
	return nil
}

// Command apiaryctl drives an Apiary cluster the way the docker CLI drives
// a swarm, through a node's local control socket:
//
//	apiaryctl --socket /var/lib/apiary/control.sock service create --name web --replicas 3 -- ./web
//	apiaryctl service ls
//	apiaryctl service scale web=5
//
// Every listing and inspect takes --format json, printing the objects of
// swarm/api with Docker's field names. Errors print one line saying what
// was wrong and exit non-zero; nothing is half-applied.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

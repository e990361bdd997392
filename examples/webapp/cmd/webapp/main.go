// Command webapp is the example HTTP service: see package webapp.
package main

import (
	"os"

	"github.com/apiary-io/apiary/examples/webapp"
)

func main() { os.Exit(webapp.Main(os.Args[1:], os.Stdout, os.Stderr)) }

package swarm

import (
	"github.com/apiary-io/apiary/swarm/api/control"
	"github.com/apiary-io/apiary/swarm/client"
)

// Client drives a cluster: services, tasks and nodes (package client).
type Client = client.Client

// NewClient returns a client of a control API: a manager in this process
// (Manager.Client is shorter).
func NewClient(c control.API) *Client { return client.New(c) }

// The control API's messages, under the names the embedding API has used.
type (
	TaskFilter  = control.TaskFilter
	LogsRequest = control.LogsRequest
)

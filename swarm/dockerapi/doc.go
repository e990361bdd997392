// Package dockerapi serves the Docker Engine API's swarm subset, so that
// the stock docker CLI and the tools that speak that API (Portainer,
// Traefik's swarm provider, Prometheus' dockerswarm discovery) drive an
// Apiary cluster unchanged (issue 17). Docker's types appear in this
// package only; every call maps onto the control API (swarm/api/control)
// of the node serving it, through its Backend (the node's control socket,
// as apiaryctl reaches it): on a worker every manager-only call answers
// 503 with Docker's "This node is not a swarm manager" message.
//
// Served, under /v1.24/ to /v<APIVersion>/ (or unversioned): /_ping (GET,
// HEAD, with the Api-Version, Ostype and Swarm headers), /version, /info
// (its Swarm section), /swarm (inspect, update, init and join answering
// 503 "already part of a swarm", leave, update turning autolock on or off
// and rotating the unlock key, unlockkey, and unlock on a locked manager's
// server, Config.Unlock), /nodes, /services (with
// status=true, insertDefaults, version, rollback=previous, logs), /tasks
// (with desired-state and _up-to-date, logs), /networks, /secrets,
// /configs, /events (cluster objects), /distribution/{image}/json (404: no
// registry is queried) and /containers/json (an empty list). Errors are
// {"message": ...} with Docker's status codes.
//
// A service keeps the Docker ServiceSpec its client sent in its spec
// (api.ServiceSpec.Extensions["docker"], servicespec.go), so the CLI's
// read-modify-write loses nothing; a service changed another way shows
// our fields and keeps the client's others.
//
// Bounds on what a client sends (Config, DefaultConfig): a request body
// of at most 1 MiB (413 beyond), JSON without unknown fields or trailing
// data; at most 100 filter values per list request, matched literally
// (never as regular expressions); a log tail of at most 10,000 lines per
// task; at most 64 /events streams at once, each polling every second.
package dockerapi

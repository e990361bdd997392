// Package docker is the executor that runs each task as a container of a
// Docker Engine, through the Engine API (github.com/docker/docker/client).
// Docker's types stay in this package (Config.Client is the one in its
// API): through it, callers see executor.Executor, executor.Controller and
// the swarm/api object model only.
//
// # Containers
//
// A task with a Spec.Container gets one container, named
// apiary.<service>.<slot or node ID>.<task ID> and created with these
// labels:
//
//	io.apiary.cluster       Config.ClusterID
//	io.apiary.service.id    the task's service ID
//	io.apiary.service.name  the task's service name
//	io.apiary.task.id       the task ID
//	io.apiary.task.slot     the task's slot (replicated services)
//	io.apiary.node.id       the node the task was assigned to
//	io.apiary.task          the task as the executor took it, in JSON
//
// The labels are how the executor finds its containers again: the engine
// keeps containers running when the agent goes away, so a restarted agent's
// new Executor looks a task's container up by io.apiary.task.id (the same
// task ID always maps to the same container: Controller adopts it, running
// or exited), and ListTasks lists the node's tasks from the labels of the
// containers, so the agent can adopt those still assigned and remove the
// others. Config.ClusterID and Config.NodeID scope that search: set NodeID
// whenever several agents share one engine (tests), or each would list the
// other's containers as its own.
//
// ContainerSpec.Command replaces the image's ENTRYPOINT and Args its CMD, as
// in a Docker service. The environment is the image's, then the spec's Env,
// then APIARY_TASK_ID, APIARY_TASK_NAME, APIARY_TASK_SLOT,
// APIARY_SERVICE_ID, APIARY_SERVICE_NAME and APIARY_NODE_ID, which the spec
// cannot override (as for the process executor). On the host data path the
// agent adds APIARY_HOST, APIARY_DNS, APIARY_PORT_<target> and PORT to the
// spec's Env, and Config.HostNetwork runs the container in the host's
// network (NetworkMode host) so it listens where they say. Mounts map to bind, volume
// and tmpfs mounts; a volume mount without a Source is an anonymous volume,
// removed with the container. Resources.Limits set the container's NanoCPUs
// and Memory, with MemorySwap equal to Memory so the limit is not doubled
// by swap; the engine's OOM killer then ends a task that outgrows it and
// Wait reports OOMKilled. The stop grace period becomes the container's
// StopTimeout, rounded up to whole seconds (the engine's unit).
//
// # Restart policy "no"
//
// Every container is created with Docker's restart policy "no". Restarting
// is the orchestrator's job: a task runs once, and a task that exits is
// replaced by a new task (with its own ID and container) under the
// service's restart policy, delay and attempt limits, possibly on another
// node. Were the engine to restart the container too, the two would fight:
// the cluster would see a FAILED task that is in fact running again, and
// the replacement would run beside it.
//
// # Images and registries
//
// Prepare uses the image when the engine has it (ImageInspect) and pulls it
// otherwise, within Config.PullTimeout and without registry credentials.
// Without a reachable registry a missing image cannot be had: Prepare fails
// with an error such as
//
//	task 7f3a…: image "app:1" not present on this node and pull failed: …
//
// and the agent reports the task REJECTED with that error.
// On an engine without a registry, load or build images on every node that
// may run the service (docker load, docker build) before creating it.
//
// # Exits and events
//
// Once a container started, a monitor waits on it (ContainerWait,
// condition not-running), then inspects it for the exit code and
// OOMKilled; that status is kept, so every Wait returns the same. A
// container that dies outside the executor's control (docker kill, the
// OOM killer, the process crashing) ends that wait at once, so Wait
// returns promptly and the agent reports the task FAILED. The executor also
// subscribes to the engine's die and oom events for its containers: it logs
// them, wakes a monitor whose wait broke (the engine restarted) to wait
// again at once rather than after its back-off, and catches OOM kills the
// engine's inspect does not show: containerd may report a container's exit
// before its OOM, and the engine then records OOMKilled false, so the exit
// of a memory-limited container killed by a SIGKILL the executor did not
// send waits up to a second for its oom event. An OOM kill in the first
// moments of a container can still go unreported (exit code 137,
// OOMKilled false): the runtime starts watching the container's memory
// cgroup for OOMs only once it runs (containerd issue 8180; seen here with
// containers killed within ~100 ms of their start, under load).
//
// An exit code above 128 is reported as a kill by signal (137: SIGKILL),
// the shell's convention, which the engine follows.
//
// By default the task's program is the container's PID 1, which the kernel
// spares any signal it installed no handler for: a program without a
// SIGTERM handler, or that gets SIGTERM before it installed one, stops only
// at the SIGKILL after its grace period. Config.Init runs docker-init as
// PID 1 to forward signals (and reap zombies), as docker run --init does.
//
// Shutdown is ContainerStop with the task's grace period: the spec's
// StopSignal, else the image's stop signal (SIGTERM by default), then SIGKILL once the period ran out. When
// the caller's ctx ends first, Shutdown returns ctx.Err() and the engine
// goes on with the stop it was asked for. Terminate is ContainerKill with
// SIGKILL. Remove stops a running container like Shutdown, then removes it
// with its anonymous volumes; its logs go with it, so Logs of a removed task
// fail with executor.ErrRemoved.
//
// # Health checks
//
// A task's HealthCheck is handed to the engine as the container's
// healthcheck, and Health (executor.HealthChecker) reads back the engine's
// verdict: "starting", "healthy" or "unhealthy" ("" for a container without
// a health check). ["CMD", ...], ["CMD-SHELL", ...], ["NONE"] and an empty
// test (the image's own HEALTHCHECK, with the spec's timings) map directly.
// The engine runs checks inside the container, so the agent-run forms
// ["HTTP", url] and ["TCP", addr] cannot be mapped: Prepare refuses them
// with an error saying so. Use ["CMD", ...] with a program the image holds
// (curl, wget, or the service's own binary) instead.
//
// # Logs
//
// Logs reads the engine's log of the container (stdout and stderr,
// demultiplexed) with Tail, Since and Follow passed to the engine, so the
// container's log driver must be one the engine can read back (json-file,
// local or journald; json-file is the engine's default).
package docker

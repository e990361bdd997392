package stack

import (
	"strings"

	"github.com/compose-spec/compose-go/v2/tree"
)

// supported lists the compose attributes a stack maps (tree paths, "*"
// any key, "[]" any list item); everything else in a file is reported as
// a Warning by the loader. A free-form map (environment, labels) is
// listed with its ".*" too.
var supported = []string{
	"name", "version",
	"services", "services.*",
	"services.*.image", "services.*.command", "services.*.command.[]", "services.*.entrypoint", "services.*.entrypoint.[]",
	"services.*.environment", "services.*.environment.*", "services.*.env_file", "services.*.env_file.[]",
	"services.*.env_file.[].path", "services.*.env_file.[].required", "services.*.env_file.[].format",
	"services.*.labels", "services.*.labels.*", "services.*.user", "services.*.working_dir",
	"services.*.stop_grace_period", "services.*.restart",
	"services.*.healthcheck", "services.*.healthcheck.test", "services.*.healthcheck.test.[]", "services.*.healthcheck.interval",
	"services.*.healthcheck.timeout", "services.*.healthcheck.retries", "services.*.healthcheck.start_period", "services.*.healthcheck.disable",
	"services.*.ports", "services.*.ports.[]", "services.*.ports.[].target", "services.*.ports.[].published",
	"services.*.ports.[].protocol", "services.*.ports.[].mode", "services.*.ports.[].name",
	"services.*.networks", "services.*.networks.*", "services.*.networks.*.aliases", "services.*.networks.*.aliases.[]",
	"services.*.secrets", "services.*.secrets.[]", "services.*.secrets.[].source", "services.*.secrets.[].target",
	"services.*.secrets.[].uid", "services.*.secrets.[].gid", "services.*.secrets.[].mode",
	"services.*.configs", "services.*.configs.[]", "services.*.configs.[].source", "services.*.configs.[].target",
	"services.*.configs.[].uid", "services.*.configs.[].gid", "services.*.configs.[].mode",
	"services.*.volumes", "services.*.volumes.[]", "services.*.volumes.[].type", "services.*.volumes.[].source",
	"services.*.volumes.[].target", "services.*.volumes.[].read_only",
	"services.*.deploy", "services.*.deploy.mode", "services.*.deploy.replicas", "services.*.deploy.labels", "services.*.deploy.labels.*",
	"services.*.deploy.endpoint_mode",
	"services.*.deploy.update_config", "services.*.deploy.rollback_config",
	"services.*.deploy.restart_policy", "services.*.deploy.restart_policy.condition", "services.*.deploy.restart_policy.delay",
	"services.*.deploy.restart_policy.max_attempts", "services.*.deploy.restart_policy.window",
	"services.*.deploy.placement", "services.*.deploy.placement.constraints", "services.*.deploy.placement.constraints.[]",
	"services.*.deploy.placement.preferences", "services.*.deploy.placement.preferences.[]",
	"services.*.deploy.placement.preferences.[].spread", "services.*.deploy.placement.max_replicas_per_node",
	"services.*.deploy.resources", "services.*.deploy.resources.limits", "services.*.deploy.resources.limits.cpus",
	"services.*.deploy.resources.limits.memory", "services.*.deploy.resources.reservations",
	"services.*.deploy.resources.reservations.cpus", "services.*.deploy.resources.reservations.memory",
	"services.*.deploy.resources.reservations.generic_resources", "services.*.deploy.resources.reservations.generic_resources.[]",
	"services.*.deploy.resources.reservations.generic_resources.[].discrete_resource_spec",
	"services.*.deploy.resources.reservations.generic_resources.[].discrete_resource_spec.kind",
	"services.*.deploy.resources.reservations.generic_resources.[].discrete_resource_spec.value",
	"networks", "networks.*", "networks.*.name", "networks.*.driver", "networks.*.external", "networks.*.internal",
	"networks.*.attachable", "networks.*.labels", "networks.*.labels.*", "networks.*.ipam", "networks.*.ipam.config",
	"networks.*.ipam.config.[]", "networks.*.ipam.config.[].subnet", "networks.*.ipam.config.[].gateway",
	"volumes", "volumes.*", "volumes.*.name", "volumes.*.external",
}

// updateConfigFields are the fields of update_config and rollback_config.
var updateConfigFields = []string{"parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order"}

// objectFields are the fields of a top-level secret or config.
var objectFields = []string{"name", "file", "environment", "content", "external", "labels", "labels.*"}

func supportedAttributes() []tree.Path {
	paths := make([]tree.Path, 0, len(supported)+32)
	for _, p := range supported {
		paths = append(paths, tree.Path(p))
	}
	for _, f := range updateConfigFields {
		paths = append(paths, tree.Path("services.*.deploy.update_config."+f), tree.Path("services.*.deploy.rollback_config."+f))
	}
	for _, kind := range []string{"secrets", "configs"} {
		paths = append(paths, tree.Path(kind), tree.Path(kind+".*"))
		for _, f := range objectFields {
			paths = append(paths, tree.Path(strings.Join([]string{kind, "*", f}, ".")))
		}
	}
	return paths
}

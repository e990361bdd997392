package scheduler

// Default weights. The primary scores are weighted so far above NodeLoad
// that the order is lexicographic for any realistic task count (NodeLoad
// would need a million tasks on a node to outweigh one task of a service).
const (
	WeightPrimary   int64 = 1 << 20
	WeightSecondary int64 = 1
)

// ServiceSpread prefers nodes with fewer tasks of the task's service (score
// minus that count), for services with the spread strategy. It scores 0 for
// binpack services.
type ServiceSpread struct{}

// Name implements Plugin.
func (ServiceSpread) Name() string { return PluginServiceSpread }

// Score implements ScorePlugin.
func (ServiceSpread) Score(t *TaskInfo, n *NodeInfo) int64 {
	if t.Strategy == StrategyBinpack || t.ServiceID == "" {
		return 0
	}
	return -int64(n.ServiceTasks(t.ServiceID))
}

// Binpack prefers the most allocated nodes, for services with the binpack
// strategy: the score is the node's larger fraction of CPU or memory
// reserved, in thousandths. It scores 0 for spread services.
type Binpack struct{}

// Name implements Plugin.
func (Binpack) Name() string { return PluginBinpack }

// Score implements ScorePlugin.
func (Binpack) Score(t *TaskInfo, n *NodeInfo) int64 {
	if t.Strategy != StrategyBinpack {
		return 0
	}
	var s int64
	if n.CapacityCPU > 0 {
		s = max(s, n.ReservedCPU*1000/n.CapacityCPU)
	}
	if n.CapacityMemory > 0 {
		s = max(s, n.ReservedMemory*1000/n.CapacityMemory)
	}
	return s
}

// NodeLoad prefers nodes with fewer tasks overall for spread services, and
// nodes with more tasks for binpack services.
type NodeLoad struct{}

// Name implements Plugin.
func (NodeLoad) Name() string { return PluginNodeLoad }

// Score implements ScorePlugin.
func (NodeLoad) Score(t *TaskInfo, n *NodeInfo) int64 {
	if t.Strategy == StrategyBinpack {
		return int64(n.Tasks)
	}
	return -int64(n.Tasks)
}

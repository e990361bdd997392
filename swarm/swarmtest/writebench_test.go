package swarmtest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/apiary-io/apiary/pki"
	"github.com/apiary-io/apiary/swarm"
	"github.com/apiary-io/apiary/swarm/api"
	"github.com/apiary-io/apiary/swarm/swarmtest"
)

// BenchmarkControlAPIWrite measures what a user's write costs: N clients
// at once call the control API through the real Go client, each waiting for
// its answer before the next call, against a real cluster (every write
// committed through raft with fsync on a quorum before it is answered).
//
//	managers=3|1        the cluster's managers (on loopback, mutual TLS)
//	store=empty|100k    nothing else, or 1,000 services with 100,000
//	                    running tasks on 4 workers
//	via=socket|tls      the leader's control socket, or its TCP port with
//	                    a manager's certificate
//	op=create           CreateService of a 0-replica service (kept: the
//	                    vias share a cluster, which holds at most
//	                    api.MaxHostVIPs = 65,534 services, so -benchtime
//	                    above about 10,000x fails for want of host VIPs)
//	op=update           UpdateService of the client's own service (a label)
//	op=mix              create, update, scale, remove in turn
//	clients=1|16|64
//
// It reports writes/s, the p50 and p99 latency of one write, the raft
// entries the leader applied per write (the write's own and whatever the
// loops that react to it add, counted until the log is quiet again), and
// the machine's 1-minute load average at the end. Under procs=separate it
// also reports the CPU time (user and system) per write of the leader, of
// each other manager on average, of the clients and of all together
// (leader-, follower-, client- and total-cpu-us/write), the part of the
// managers' that their garbage collections took (leader- and
// follower-gc-us/write, from the daemons' GODEBUG=gctrace=1 lines:
// writebench_gc_test.go), and the most memory the leader's process has
// held (leader-maxrss-MB).
//
//	go test -run '^$' -bench 'ControlAPIWrite/managers=3/store=empty/via=socket' -benchtime 4000x ./swarm/swarmtest/
//
// The names above run the whole cluster in this test process: one Go
// runtime schedules every manager's raft and apply loops, every
// transport, the workers and the clients, which no deployment does. Under
// procs=separate (on Linux) each manager and each worker is an apiaryd
// process of its own, built once from ./examples/apiaryd, as etcd's
// members are in bench/etcd; the clients stay in this process and reach
// the leader the same two ways (writebench_procs_test.go):
//
//	go test -run '^$' -bench 'ControlAPIWrite/procs=separate/managers=3/store=empty/via=socket/op=create' -benchtime 4000x ./swarm/swarmtest/
//	go test -run '^$' -bench 'ControlAPIWrite/procs=separate/managers=3/store=100k/via=socket/op=(create|update)$' -benchtime 4000x -timeout 2h -v ./swarm/swarmtest/
//
// (-v shows how long the cluster took to fill, which populate logs.)
//
// APIARY_WRITEBENCH_PROFILE=DIR writes a CPU profile of each
// sub-benchmark's writes to DIR (profileWrites), and a file DIR/writing
// while they run: of this process, that is of the clients alone under
// procs=separate, where
// APIARY_WRITEBENCH_DEBUG=1 gives each daemon Go's profiler at port 6060
// of its loopback address (apiaryd --debug-addr; -v logs where), and
// APIARY_WRITEBENCH_DAEMON_ENV="GOGC=400 ..." adds to the daemons'
// environment alone, and APIARY_WRITEBENCH_BIN=PATH runs an apiaryd built
// already instead of building one.
func BenchmarkControlAPIWrite(b *testing.B) {
	shapes(b, startInProcess)
	if separateProcs != nil {
		b.Run("procs=separate", separateProcs)
	}
}

// separateProcs runs the sub-benchmarks with every member in a process of
// its own, where the platform allows it (writebench_procs_test.go).
var separateProcs func(b *testing.B)

// writeCluster is what the writes need of a running cluster.
type writeCluster struct {
	// leader is the leading manager: its DataDir and Addr.
	leader *swarmtest.Member
	// socket opens a new connection to the leader's control socket.
	socket func() *swarm.Client
	// applied is the leader's raft applied index.
	applied func() uint64
	// cpu reads the CPU time each role has used so far, where the roles
	// are processes of their own (procs=separate); nil otherwise.
	cpu func() roleCPU
}

// roleCPU is the CPU time (user and system) the processes of each role
// have used: the leader, every other manager, every worker, and this
// process, which under procs=separate runs the clients alone.
type roleCPU struct {
	leader, followers, workers, clients time.Duration
	nFollowers                          int
	// leaderGC and followersGC are the CPU the managers' garbage
	// collections took, part of leader and followers (from the
	// daemons' GODEBUG=gctrace=1 lines); 0 if unknown.
	leaderGC, followersGC time.Duration
	// leaderPeakRSS is the most memory the leader's process has held
	// at once since it started (Linux's VmHWM), in bytes; 0 if unknown.
	leaderPeakRSS int64
}

// reportCPU reports the CPU each role spent per write between two
// readings: how much of the machine a write costs, beside what etcd's
// members and clients spend (bench/etcd prints the same figures).
func reportCPU(b *testing.B, from, to roleCPU, writes int) {
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(writes) }
	b.ReportMetric(per(to.leader-from.leader), "leader-cpu-us/write")
	if to.nFollowers > 0 {
		b.ReportMetric(per(to.followers-from.followers)/float64(to.nFollowers), "follower-cpu-us/write")
	}
	if to.leaderGC > 0 {
		b.ReportMetric(per(to.leaderGC-from.leaderGC), "leader-gc-us/write")
		if to.nFollowers > 0 {
			b.ReportMetric(per(to.followersGC-from.followersGC)/float64(to.nFollowers), "follower-gc-us/write")
		}
	}
	b.ReportMetric(per(to.clients-from.clients), "client-cpu-us/write")
	total := to.leader - from.leader + to.followers - from.followers + to.workers - from.workers + to.clients - from.clients
	b.ReportMetric(per(total), "total-cpu-us/write")
	if to.leaderPeakRSS > 0 {
		b.ReportMetric(float64(to.leaderPeakRSS)/(1<<20), "leader-maxrss-MB")
	}
}

// shapes runs the sub-benchmarks on each cluster shape,
// managers=3|1/store=empty|100k, each on a cluster start makes.
func shapes(b *testing.B, start func(b *testing.B, managers, workers int) writeCluster) {
	for _, managers := range []int{3, 1} {
		b.Run(fmt.Sprintf("managers=%d", managers), func(b *testing.B) {
			for _, full := range []bool{false, true} {
				name := "store=empty"
				if full {
					name = "store=100k"
				}
				b.Run(name, func(b *testing.B) { benchShape(b, start, managers, full) })
			}
		})
	}
}

// startInProcess starts the cluster in this process.
func startInProcess(b *testing.B, managers, workers int) writeCluster {
	c := swarmtest.Start(b, swarmtest.Options{Managers: managers, Workers: workers, Timeout: 10 * time.Minute})
	leader := c.Leader()
	return writeCluster{
		leader:  leader,
		socket:  func() *swarm.Client { return c.Client(leader) },
		applied: func() uint64 { return leader.Node.Manager().Raft().AppliedIndex() },
	}
}

// benchShape starts a cluster of the shape, fills it for store=100k and
// measures the writes through each way of reaching its leader.
func benchShape(b *testing.B, start func(b *testing.B, managers, workers int) writeCluster, managers int, full bool) {
	workers := 0
	if full {
		workers = 4
	}
	c := start(b, managers, workers)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	if full {
		populate(b, ctx, c.socket(), 1000, 100)
	}
	dials := map[string]func() *swarm.Client{
		"socket": c.socket,
		"tls": func() *swarm.Client {
			// The leader's own certificate, read from its data dir.
			ident := identityOf(b, c.leader)
			creds := credentials.NewTLS(ident.ClientTLSConfig(pki.RoleManager))
			cl, closeFn, err := swarm.DialClient(c.leader.Addr, grpc.WithTransportCredentials(creds))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { closeFn() })
			return cl
		},
	}
	for _, via := range []string{"socket", "tls"} {
		b.Run("via="+via, func(b *testing.B) {
			// One connection per client, as separate programs have.
			var clients []*swarm.Client
			for range 64 {
				clients = append(clients, dials[via]())
			}
			for _, op := range []string{"create", "update", "mix"} {
				b.Run("op="+op, func(b *testing.B) {
					for _, n := range []int{1, 16, 64} {
						b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
							runWrites(b, ctx, clients[:n], op, c)
						})
					}
				})
			}
		})
	}
}

// populate creates services×replicas running tasks, on the workers, and
// waits for them.
func populate(b *testing.B, ctx context.Context, cl *swarm.Client, services, replicas int) {
	b.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, services)
	ids := make([]string, services)
	sem := make(chan struct{}, 16)
	for i := range services {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			spec := benchSpec(fmt.Sprintf("bulk-%d", i), int64(replicas))
			// On the workers, as a large production cluster runs them:
			// managers that also run tasks compete with raft for CPU
			// and memory (Docker's guidance is to drain them).
			spec.TaskTemplate.Placement = &api.Placement{Constraints: []string{"node.role==worker"}}
			svc, err := cl.CreateService(ctx, spec)
			if err != nil {
				errs <- err
				return
			}
			ids[i] = svc.ID
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	created := time.Since(start)
	for _, id := range ids {
		if err := cl.WaitConverged(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d services, %d tasks running in %v (the services created in %v)", services, services*replicas, time.Since(start).Round(time.Second), created.Round(time.Second))
}

var benchSeq atomic.Int64

func benchSpec(name string, replicas int64) api.ServiceSpec {
	return api.ServiceSpec{
		Annotations:  api.Annotations{Name: name},
		Mode:         api.ServiceMode{Replicated: &api.ReplicatedService{Replicas: replicas}},
		TaskTemplate: api.TaskSpec{Process: &api.ProcessSpec{Command: []string{"app"}}},
	}
}

// ownService is the service a client of op=update updates.
type ownService struct {
	id      string
	version uint64
	spec    api.ServiceSpec
}

// runWrites spreads b.N writes over the clients and reports the figures.
// It reads the cluster's applied index, and its processes' CPU where it
// can (c.cpu), around the writes.
func runWrites(b *testing.B, ctx context.Context, clients []*swarm.Client, op string, c writeCluster) {
	applied, cpu := c.applied, c.cpu
	owns := make([]ownService, len(clients))
	if op == "update" {
		for i, cl := range clients {
			spec := benchSpec(fmt.Sprintf("own-%d-%d", benchSeq.Add(1), i), 0)
			svc, err := cl.CreateService(ctx, spec)
			if err != nil {
				b.Fatal(err)
			}
			owns[i] = ownService{svc.ID, svc.Meta.Version, spec}
		}
	}
	quiet(applied)
	for i, cl := range clients {
		if owns[i].id == "" {
			continue
		}
		// The version as it is once the loops are done with the service.
		svc, err := cl.GetService(ctx, owns[i].id)
		if err != nil {
			b.Fatal(err)
		}
		owns[i].version = svc.Meta.Version
	}
	var next atomic.Int64
	lat := make([][]time.Duration, len(clients))
	var failed atomic.Value
	var wg sync.WaitGroup
	stopProfile := profileWrites(b)
	b.ResetTimer()
	from := applied()
	var cpu0 roleCPU
	if cpu != nil {
		cpu0 = cpu()
	}
	start := time.Now()
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine *api.Service
			step := 0
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				err := write(ctx, cl, op, &owns[i], &mine, &step, i)
				lat[i] = append(lat[i], time.Since(t0))
				if err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var cpu1 roleCPU
	if cpu != nil {
		cpu1 = cpu()
	}
	b.StopTimer()
	stopProfile()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	entries := quiet(applied) - from
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / 1e6 }
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "writes/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(entries)/float64(len(all)), "entries/write")
	b.ReportMetric(0, "ns/op")
	if cpu != nil {
		reportCPU(b, cpu0, cpu1, len(all))
	}
	// The machine may be shared: a figure means little without the
	// load it was measured under (Linux's 1-minute load average, this
	// benchmark's own processes included).
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		var load1 float64
		if _, err := fmt.Sscan(string(load), &load1); err == nil {
			b.ReportMetric(load1, "load-1m")
		}
	}
}

// profileWrites writes a CPU profile of the writes alone (not of the
// cluster's start or of populate, which dominate a whole run's
// -cpuprofile) when APIARY_WRITEBENCH_PROFILE names a directory: one file
// per sub-benchmark, named after it.
func profileWrites(b *testing.B) (stop func()) {
	dir := os.Getenv("APIARY_WRITEBENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, strings.NewReplacer("/", "_", "=", "-").Replace(b.Name())+".prof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	// While the writes run, a file "writing" is there, so that a script
	// can take the daemons' profiles (APIARY_WRITEBENCH_DEBUG) of the
	// writes alone, not of the cluster's start or the 100k store's fill.
	marker := filepath.Join(dir, "writing")
	if err := os.WriteFile(marker, []byte(b.Name()+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return func() {
		os.Remove(marker)
		pprof.StopCPUProfile()
		f.Close()
	}
}

// write does one write of op for client i.
func write(ctx context.Context, cl *swarm.Client, op string, o *ownService, mine **api.Service, step *int, i int) error {
	switch op {
	case "create":
		_, err := cl.CreateService(ctx, benchSpec(fmt.Sprintf("c-%d", benchSeq.Add(1)), 0))
		return err
	case "update":
		o.spec.Labels = map[string]string{"n": fmt.Sprint(benchSeq.Add(1))}
		svc, err := cl.UpdateService(ctx, o.id, o.version, o.spec)
		if err != nil {
			return err
		}
		o.version = svc.Meta.Version
		return nil
	}
	// mix: create, update, scale, remove.
	var err error
	switch *step % 4 {
	case 0:
		*mine, err = cl.CreateService(ctx, benchSpec(fmt.Sprintf("m-%d-%d", i, benchSeq.Add(1)), 0))
	case 1:
		spec := (*mine).Spec
		spec.Labels = map[string]string{"n": "1"}
		*mine, err = cl.UpdateService(ctx, (*mine).ID, (*mine).Meta.Version, spec)
	case 2:
		*mine, err = cl.ScaleService(ctx, (*mine).ID, 0)
	case 3:
		err = cl.RemoveService(ctx, (*mine).ID)
	}
	*step++
	return err
}

// quiet waits until the log has not moved for 300 ms (at most 10 s) and
// returns its applied index: the entries the loops add in reaction to the
// writes are counted with them.
func quiet(applied func() uint64) uint64 {
	last, since := applied(), time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cur := applied(); cur != last {
			last, since = cur, time.Now()
		} else if time.Since(since) >= 300*time.Millisecond {
			break
		}
	}
	return last
}

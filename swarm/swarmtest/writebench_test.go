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
//	op=create           CreateService of a 0-replica service
//	op=update           UpdateService of the client's own service (a label)
//	op=mix              create, update, scale, remove in turn
//	clients=1|16|64
//
// It reports writes/s, the p50 and p99 latency of one write, and the raft
// entries the leader applied per write (the write's own and whatever the
// loops that react to it add), counted until the log is quiet again.
//
//	go test -run '^$' -bench 'ControlAPIWrite/managers=3/store=empty/via=socket' -benchtime 4000x ./swarm/swarmtest/
//
// APIARY_WRITEBENCH_PROFILE=DIR writes a CPU profile of each
// sub-benchmark's writes to DIR (profileWrites).
func BenchmarkControlAPIWrite(b *testing.B) {
	for _, managers := range []int{3, 1} {
		b.Run(fmt.Sprintf("managers=%d", managers), func(b *testing.B) {
			for _, full := range []bool{false, true} {
				name := "store=empty"
				if full {
					name = "store=100k"
				}
				b.Run(name, func(b *testing.B) { benchWrites(b, managers, full) })
			}
		})
	}
}

func benchWrites(b *testing.B, managers int, full bool) {
	workers := 0
	if full {
		workers = 4
	}
	c := swarmtest.Start(b, swarmtest.Options{Managers: managers, Workers: workers, Timeout: 10 * time.Minute})
	leader := c.Leader()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	if full {
		populate(b, ctx, c.Client(leader), 1000, 100)
	}
	dials := map[string]func() *swarm.Client{
		"socket": func() *swarm.Client { return c.Client(leader) },
		"tls": func() *swarm.Client {
			ident := identityOf(b, leader)
			creds := credentials.NewTLS(ident.ClientTLSConfig(pki.RoleManager))
			cl, closeFn, err := swarm.DialClient(leader.Addr, grpc.WithTransportCredentials(creds))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { closeFn() })
			return cl
		},
	}
	raftOf := func() uint64 { return leader.Node.Manager().Raft().AppliedIndex() }
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
							runWrites(b, ctx, clients[:n], op, raftOf)
						})
					}
				})
			}
		})
	}
}

// populate creates services×replicas running tasks and waits for them.
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
			svc, err := cl.CreateService(ctx, benchSpec(fmt.Sprintf("bulk-%d", i), int64(replicas)))
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
	for _, id := range ids {
		if err := cl.WaitConverged(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d services, %d tasks running in %v", services, services*replicas, time.Since(start).Round(time.Second))
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
func runWrites(b *testing.B, ctx context.Context, clients []*swarm.Client, op string, applied func() uint64) {
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
	return func() {
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

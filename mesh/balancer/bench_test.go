package balancer

import (
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The balancer's cost, side by side with a direct loopback connection in
// the same run (docs/benchmarks.md, "Userspace balancer (issue 15)"):
//
//	go test -run '^$' -bench TCPBulk -benchtime 5x -count 3 ./mesh/balancer/
//	go test -run '^$' -bench HTTPKeepAlive -benchtime 100000x -count 3 ./mesh/balancer/

// bulkBytes is what one operation of BenchmarkTCPBulk sends.
const bulkBytes = 1 << 30

// ioBuf is the read and write size of the benchmarks' clients and servers,
// what a program moving bulk data would use.
const ioBuf = 256 << 10

// startSink accepts connections, reads each to EOF, answers with the
// number of bytes read (8 bytes, big endian) and closes.
func startSink(b *testing.B) netip.AddrPort {
	tb := startBackendWith(b, "sink", "127.0.0.1:0", func(c net.Conn) {
		buf := make([]byte, ioBuf)
		var n uint64
		for {
			k, err := c.Read(buf)
			n += uint64(k)
			if err != nil {
				break
			}
		}
		c.Write(binary.BigEndian.AppendUint64(nil, n))
	})
	return tb.backend().Addr
}

// via returns the address a benchmark's client uses to reach backend:
// backend itself (direct) or a balancer's frontend forwarding to it.
func via(b *testing.B, path string, backend netip.AddrPort) netip.AddrPort {
	if path == "direct" {
		return backend
	}
	p := newProxy(b, Config{})
	fe := freeFrontend(b, TCP)
	addService(b, p, fe, Options{}, Backend{Addr: backend, Healthy: true})
	return fe.Addr
}

// BenchmarkTCPBulk sends 1 GiB over one connection per operation.
func BenchmarkTCPBulk(b *testing.B) {
	sink := startSink(b)
	for _, path := range []string{"direct", "balancer"} {
		b.Run(path, func(b *testing.B) {
			addr := via(b, path, sink)
			buf := make([]byte, ioBuf)
			b.SetBytes(bulkBytes)
			b.ResetTimer()
			cpu := processCPU()
			for range b.N {
				c, err := net.Dial("tcp", addr.String())
				if err != nil {
					b.Fatal(err)
				}
				for sent := 0; sent < bulkBytes; sent += len(buf) {
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				c.(*net.TCPConn).CloseWrite()
				var got [8]byte
				if _, err := io.ReadFull(c, got[:]); err != nil {
					b.Fatal(err)
				}
				if n := binary.BigEndian.Uint64(got[:]); n != bulkBytes {
					b.Fatalf("sink read %d bytes, want %d", n, bulkBytes)
				}
				c.Close()
			}
			reportCPU(b, cpu)
		})
	}
}

// httpClients is the number of concurrent keep-alive connections of
// BenchmarkHTTPKeepAlive, each used by one client goroutine.
const httpClients = 64

// BenchmarkHTTPKeepAlive sends small HTTP requests (GET, a 13-byte
// answer) from 64 goroutines, each over a keep-alive connection of its own.
func BenchmarkHTTPKeepAlive(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Hello, world!")
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	server := netip.MustParseAddrPort(ln.Addr().String())

	for _, path := range []string{"direct", "balancer"} {
		b.Run(path, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: httpClients, MaxConnsPerHost: httpClients, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			url := "http://" + via(b, path, server).String() + "/"
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			var failed atomic.Value
			b.ResetTimer()
			cpu := processCPU()
			for range httpClients {
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						resp, err := client.Get(url)
						if err == nil {
							_, err = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
						if err != nil {
							failed.Store(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			reportCPU(b, cpu)
			if err := failed.Load(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// reportCPU reports the CPU time per operation since start: on a machine
// where every party (client, balancer, server) competes for the same cores,
// the ratio of two paths' CPU times is the ratio of their throughputs at
// saturation, whatever the neighbours do to the wall time.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}

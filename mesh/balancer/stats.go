package balancer

import "net/netip"

// ServiceStats are a service's counters since it was added. For UDP a
// "connection" is a flow: the datagrams of one client address.
type ServiceStats struct {
	Frontend Frontend
	// Active connections (or flows) open now, draining ones included.
	Active int64
	// Total connections (or flows) forwarded to a backend.
	Total int64
	// Refused connections (or flows) over the service's MaxConnections.
	Refused int64
	// Failed connections: no healthy backend, or every connect failed.
	Failed int64
	// BytesIn went from clients to backends, BytesOut back. TCP counters
	// advance after each message and every copyChunk bytes of a stream,
	// so a long transfer shows progress.
	BytesIn, BytesOut int64
	// Backends, current ones in the order given, then those that left and
	// still have open connections.
	Backends []BackendStats
}

// BackendStats are one backend's counters within a service.
type BackendStats struct {
	Addr    netip.AddrPort
	NodeID  string
	Healthy bool
	// Draining is true for a backend removed or no longer healthy that
	// still has open connections.
	Draining bool
	// Active and Total connections (or flows) to this backend.
	Active, Total int64
	// ConnectFailures counts TCP connects that failed or timed out (each
	// was retried on another backend when there was one).
	ConnectFailures   int64
	BytesIn, BytesOut int64
}

package balancer

import (
	"fmt"
	"slices"
	"sync"
)

// Recorder is the in-memory Balancer: it opens no socket and records the
// desired state, with the same validation and errors as Proxy, so the code
// that drives a balancer (endpoint tables to services and backends) is
// tested by reading back what it asked for.
type Recorder struct {
	mu       sync.Mutex
	closed   bool
	services map[Frontend]*RecordedService
	bindErrs map[Frontend]error
}

// RecordedService is one service as the Recorder holds it.
type RecordedService struct {
	Service  Service
	Backends []Backend
}

var _ Balancer = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{services: map[Frontend]*RecordedService{}, bindErrs: map[Frontend]error{}}
}

// FailBind makes adding a service at fe fail with a *BindError wrapping
// err, as Proxy does when the port is taken; a nil err undoes it.
func (r *Recorder) FailBind(fe Frontend, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.bindErrs, fe)
		return
	}
	r.bindErrs[fe] = err
}

// UpsertService implements Balancer.
func (r *Recorder) UpsertService(svc Service) error {
	if err := svc.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if s := r.services[svc.Frontend]; s != nil {
		s.Service = svc
		return nil
	}
	if len(r.services) >= MaxServices {
		return fmt.Errorf("balancer: service %s: %d services already, the most one balancer holds", svc.Frontend, MaxServices)
	}
	if err := r.bindErrs[svc.Frontend]; err != nil {
		return &BindError{Frontend: svc.Frontend, Err: err}
	}
	r.services[svc.Frontend] = &RecordedService{Service: svc}
	return nil
}

// SetBackends implements Balancer.
func (r *Recorder) SetBackends(fe Frontend, backends []Backend) error {
	if err := ValidateBackends(fe, backends); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	s := r.services[fe]
	if s == nil {
		return fmt.Errorf("%w %s", ErrUnknownService, fe)
	}
	s.Backends = slices.Clone(backends)
	return nil
}

// RemoveService implements Balancer.
func (r *Recorder) RemoveService(fe Frontend) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.services[fe] == nil {
		return fmt.Errorf("%w %s", ErrUnknownService, fe)
	}
	delete(r.services, fe)
	return nil
}

// Stats implements Balancer: every counter is zero.
func (r *Recorder) Stats() []ServiceStats {
	var out []ServiceStats
	for _, s := range r.Services() {
		st := ServiceStats{Frontend: s.Service.Frontend}
		for _, b := range s.Backends {
			st.Backends = append(st.Backends, BackendStats{Addr: b.Addr, NodeID: b.NodeID, Healthy: b.Healthy})
		}
		out = append(out, st)
	}
	return out
}

// Close implements Balancer.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	r.closed = true
	r.services = nil
	return nil
}

// Services returns a copy of the recorded services, sorted by frontend.
func (r *Recorder) Services() []RecordedService {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RecordedService, 0, len(r.services))
	for _, s := range r.services {
		out = append(out, RecordedService{Service: s.Service, Backends: slices.Clone(s.Backends)})
	}
	slices.SortFunc(out, func(a, b RecordedService) int {
		return compareFrontends(a.Service.Frontend, b.Service.Frontend)
	})
	return out
}

// Service returns a copy of the service at fe, if there is one.
func (r *Recorder) Service(fe Frontend) (RecordedService, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.services[fe]
	if s == nil {
		return RecordedService{}, false
	}
	return RecordedService{Service: s.Service, Backends: slices.Clone(s.Backends)}, true
}

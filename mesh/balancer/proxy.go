package balancer

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
)

// Proxy is the userspace Balancer: a TCP and UDP proxy in this process. It
// works on any operating system without privileges; see the package
// documentation for what it does with connections.
type Proxy struct {
	cfg    Config
	log    *slog.Logger
	dialer net.Dialer
	lc     net.ListenConfig
	// ctx is cancelled by Close, which ends connects in progress.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts every goroutine the proxy starts; Close waits for them.
	wg sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	services map[Frontend]*service
	// draining holds removed services that still have connections, so
	// Close can end them.
	draining map[*service]struct{}
}

var _ Balancer = (*Proxy)(nil)

// New returns a Proxy with no services. Zero fields of cfg take their
// defaults; an out-of-range one is an error naming it.
func New(cfg Config) (*Proxy, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Proxy{
		cfg:      cfg,
		log:      cfg.Logger,
		dialer:   net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: cfg.KeepAlive},
		lc:       net.ListenConfig{Control: reusePort, KeepAlive: cfg.KeepAlive},
		ctx:      ctx,
		cancel:   cancel,
		services: map[Frontend]*service{},
		draining: map[*service]struct{}{},
	}, nil
}

// UpsertService implements Balancer.
func (p *Proxy) UpsertService(svc Service) error {
	if err := svc.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if s := p.services[svc.Frontend]; s != nil {
		s.setOptions(svc.Options)
		return nil
	}
	if len(p.services) >= MaxServices {
		return fmt.Errorf("balancer: service %s: %d services already, the most one balancer holds", svc.Frontend, MaxServices)
	}
	s := newService(p, svc)
	if err := p.listen(s); err != nil {
		return err
	}
	p.services[svc.Frontend] = s
	p.log.Debug("balancer: service added", "service", svc.Frontend.String())
	return nil
}

// listen opens s's socket and starts serving it.
func (p *Proxy) listen(s *service) error {
	fe := s.fe
	network := string(fe.Protocol) + "4"
	if fe.Addr.Addr().Is6() {
		network = string(fe.Protocol) + "6"
	}
	if fe.Protocol == TCP {
		ln, err := p.lc.Listen(p.ctx, network, fe.Addr.String())
		if err != nil {
			return &BindError{Frontend: fe, Err: err}
		}
		s.stop = func() { ln.Close() }
		p.wg.Add(1)
		go s.serveTCP(ln.(*net.TCPListener))
		return nil
	}
	pc, err := p.lc.ListenPacket(p.ctx, network, fe.Addr.String())
	if err != nil {
		return &BindError{Frontend: fe, Err: err}
	}
	s.stop = func() { pc.Close() }
	s.flows = map[netip.AddrPort]*udpFlow{}
	p.wg.Add(1)
	go s.serveUDP(pc.(*net.UDPConn))
	return nil
}

// SetBackends implements Balancer.
func (p *Proxy) SetBackends(fe Frontend, backends []Backend) error {
	if err := ValidateBackends(fe, backends); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	s := p.services[fe]
	if s == nil {
		return fmt.Errorf("%w %s", ErrUnknownService, fe)
	}
	s.setBackends(backends)
	return nil
}

// RemoveService implements Balancer. A TCP service's open connections
// drain; a UDP service's flows end with its socket, which carried their
// answers.
func (p *Proxy) RemoveService(fe Frontend) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	s := p.services[fe]
	if s == nil {
		p.mu.Unlock()
		return fmt.Errorf("%w %s", ErrUnknownService, fe)
	}
	delete(p.services, fe)
	if fe.Protocol == TCP && s.remove() {
		p.draining[s] = struct{}{}
	}
	p.mu.Unlock()
	if fe.Protocol == UDP {
		s.shut()
		return nil
	}
	s.mu.Lock()
	stop := s.stop
	s.mu.Unlock()
	stop()
	p.log.Debug("balancer: service removed", "service", fe.String())
	return nil
}

// forget drops a removed service whose last connection ended.
func (p *Proxy) forget(s *service) {
	p.mu.Lock()
	delete(p.draining, s)
	p.mu.Unlock()
}

// Stats implements Balancer. Removed services that are still draining are
// not listed.
func (p *Proxy) Stats() []ServiceStats {
	p.mu.Lock()
	ss := make([]*service, 0, len(p.services))
	for _, s := range p.services {
		ss = append(ss, s)
	}
	p.mu.Unlock()
	out := make([]ServiceStats, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.stats())
	}
	slices.SortFunc(out, func(a, b ServiceStats) int { return compareFrontends(a.Frontend, b.Frontend) })
	return out
}

func compareFrontends(a, b Frontend) int {
	return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Protocol, b.Protocol))
}

// Close implements Balancer: listeners and connections are closed at once
// (no drain) and Close returns when every goroutine of the proxy has ended.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.closed = true
	all := make([]*service, 0, len(p.services)+len(p.draining))
	for _, s := range p.services {
		all = append(all, s)
	}
	for s := range p.draining {
		all = append(all, s)
	}
	p.services, p.draining = nil, nil
	p.mu.Unlock()
	p.cancel()
	for _, s := range all {
		s.shut()
	}
	p.wg.Wait()
	return nil
}

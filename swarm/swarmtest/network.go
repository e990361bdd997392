package swarmtest

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// network is the test cluster's network between members: every
// connection a member opens to another goes through its dialer, so a cut
// between two members refuses new connections and closes those open, in
// both directions (each side's outgoing connections are its own).
type network struct {
	mu sync.Mutex
	// side maps a member's address to the side of the cut it is on; a
	// nil map is a whole network.
	side  map[string]int
	conns map[*netConn]struct{}
}

type netConn struct {
	net.Conn
	from, to string
	nw       *network
	once     sync.Once
}

func (c *netConn) Close() error {
	c.once.Do(func() {
		c.nw.mu.Lock()
		delete(c.nw.conns, c)
		c.nw.mu.Unlock()
	})
	return c.Conn.Close()
}

// cutLocked reports whether from and to are on different sides.
func (nw *network) cutLocked(from, to string) bool {
	if nw.side == nil {
		return false
	}
	sf, okf := nw.side[from]
	st, okt := nw.side[to]
	return okf && okt && sf != st
}

// dialer is the dialer of the member at from.
func (nw *network) dialer(from string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		nw.mu.Lock()
		cut := nw.cutLocked(from, addr)
		nw.mu.Unlock()
		if cut {
			return nil, fmt.Errorf("swarmtest: %s cannot reach %s: the network is cut", from, addr)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		nc := &netConn{Conn: c, from: from, to: addr, nw: nw}
		nw.mu.Lock()
		defer nw.mu.Unlock()
		if nw.cutLocked(from, addr) {
			c.Close()
			return nil, fmt.Errorf("swarmtest: %s cannot reach %s: the network is cut", from, addr)
		}
		if nw.conns == nil {
			nw.conns = map[*netConn]struct{}{}
		}
		nw.conns[nc] = struct{}{}
		return nc, nil
	}
}

// cut puts the members at addrs on one side and everyone else in all on
// the other, and closes every connection across.
func (nw *network) cut(addrs, all []string) {
	nw.mu.Lock()
	nw.side = map[string]int{}
	for _, a := range all {
		nw.side[a] = 0
	}
	for _, a := range addrs {
		nw.side[a] = 1
	}
	var across []*netConn
	for c := range nw.conns {
		if nw.cutLocked(c.from, c.to) {
			across = append(across, c)
		}
	}
	nw.mu.Unlock()
	for _, c := range across {
		c.Close()
	}
}

// heal joins the sides again.
func (nw *network) heal() {
	nw.mu.Lock()
	nw.side = nil
	nw.mu.Unlock()
}

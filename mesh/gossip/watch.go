package gossip

import "sync"

// watchers fans events out to Watch callbacks. Each watcher has its own
// queue and goroutine, so a slow callback delays only itself and events are
// never dropped; publish is called with the owner's lock held, in the order
// the changes were applied, so every watcher sees them in that order.
type watchers struct {
	mu   sync.Mutex
	set  map[*watcher]struct{}
	done bool
}

type watcher struct {
	network, table string
	fn             func(Event)

	mu    sync.Mutex
	queue []Event
	wake  chan struct{} // capacity 1: "the queue may be non-empty"
	quit  chan struct{}
	exit  chan struct{}
}

func (ws *watchers) add(network, table string, fn func(Event)) (stop func()) {
	w := &watcher{network: network, table: table, fn: fn,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), exit: make(chan struct{})}
	ws.mu.Lock()
	if ws.done {
		ws.mu.Unlock()
		return func() {}
	}
	if ws.set == nil {
		ws.set = map[*watcher]struct{}{}
	}
	ws.set[w] = struct{}{}
	ws.mu.Unlock()
	go w.run()
	// Whoever takes w out of the set closes its quit: stop, or closeAll
	// (Close, or a MemoryHub node going down), in either order, any
	// number of times.
	return func() {
		ws.mu.Lock()
		_, mine := ws.set[w]
		delete(ws.set, w)
		ws.mu.Unlock()
		if mine {
			close(w.quit)
		}
		<-w.exit
	}
}

func (ws *watchers) publish(evs []Event) {
	if len(evs) == 0 {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.set {
		w.push(evs)
	}
}

// closeAll stops every watcher, letting each finish the event it is in.
func (ws *watchers) closeAll() {
	ws.mu.Lock()
	ws.done = true
	set := ws.set
	ws.set = nil
	ws.mu.Unlock()
	for w := range set {
		close(w.quit)
		<-w.exit
	}
}

func (w *watcher) matches(ev *Event) bool {
	if ev.Kind == EventNodeDown {
		return true
	}
	return (w.network == "" || w.network == ev.Entry.Network) && (w.table == "" || w.table == ev.Entry.Table)
}

func (w *watcher) push(evs []Event) {
	w.mu.Lock()
	n := len(w.queue)
	for i := range evs {
		if w.matches(&evs[i]) {
			w.queue = append(w.queue, evs[i])
		}
	}
	added := len(w.queue) > n
	w.mu.Unlock()
	if added {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *watcher) run() {
	defer close(w.exit)
	for {
		select {
		case <-w.quit:
			return
		case <-w.wake:
		}
		w.mu.Lock()
		q := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, ev := range q {
			select {
			case <-w.quit:
				return
			default:
			}
			w.fn(ev)
		}
	}
}

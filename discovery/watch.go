package discovery

import "sync"

// hub delivers instance sets to watchers. Deliveries (and watcher removal) are serialized by
// notify, so a watcher never sees an older set after a newer one and is never called after its
// stop function returned.
type hub struct {
	notify sync.Mutex
	mu     sync.Mutex
	subs   map[string]map[uint64]func([]Instance)
	nextID uint64
}

// add registers fn for service and, when current reports a known set, delivers it at once.
func (h *hub) add(service string, fn func([]Instance), current func() ([]Instance, bool)) (stop func()) {
	h.notify.Lock()
	defer h.notify.Unlock()
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[string]map[uint64]func([]Instance){}
	}
	if h.subs[service] == nil {
		h.subs[service] = map[uint64]func([]Instance){}
	}
	h.nextID++
	id := h.nextID
	h.subs[service][id] = fn
	h.mu.Unlock()
	if insts, ok := current(); ok {
		fn(insts)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			h.notify.Lock()
			defer h.notify.Unlock()
			h.mu.Lock()
			defer h.mu.Unlock()
			delete(h.subs[service], id)
			if len(h.subs[service]) == 0 {
				delete(h.subs, service)
			}
		})
	}
}

// publish delivers insts to the watchers of service.
func (h *hub) publish(service string, insts []Instance) {
	h.notify.Lock()
	defer h.notify.Unlock()
	h.mu.Lock()
	fns := make([]func([]Instance), 0, len(h.subs[service]))
	for _, fn := range h.subs[service] {
		fns = append(fns, fn)
	}
	h.mu.Unlock()
	for _, fn := range fns {
		fn(insts)
	}
}

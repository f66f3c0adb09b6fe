package userspace

import "sync"

type closer interface{ Close() error }

// connSet holds the open sockets of relays so that Drain can end them at its deadline.
type connSet struct {
	mu sync.Mutex
	m  map[closer]struct{}
}

func (s *connSet) add(c closer) {
	s.mu.Lock()
	s.m[c] = struct{}{}
	s.mu.Unlock()
}

func (s *connSet) remove(c closer) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

func (s *connSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.m {
		c.Close()
	}
}

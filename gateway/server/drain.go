package server

import (
	"time"
)

// drainStep is how often the drain closes its next batch of connections.
const drainStep = 20 * time.Millisecond

// drain is the graceful shutdown: refuse new upgrades and fail /readyz at
// once, close the open connections with 1001 in batches spread over the
// first 60% of the grace (so that clients do not all reconnect at the same
// moment), wait for their presence to be removed, and give up on the
// stragglers (closing them without handshake) at 80% of the grace, so the
// process exits before the grace ends.
func (s *Server) drain(grace time.Duration) {
	s.draining.Store(true)
	start := time.Now()
	spread, deadline := grace*6/10, start.Add(grace*8/10)

	s.mu.Lock()
	list := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		list = append(list, c)
	}
	s.mu.Unlock()
	s.log.Info("draining", "connections", len(list), "grace", grace)

	// At most one batch per drainStep; batches evenly over the spread.
	batches := max(min(len(list), int(spread/drainStep)), 1)
	per := max((len(list)+batches-1)/batches, 1)
	interval := spread / time.Duration(batches)
	for i := 0; i < len(list); i += per {
		for _, c := range list[i:min(i+per, len(list))] {
			c.closeAsync(statusGoingAway, "server shutting down", "drain")
		}
		if i+per < len(list) {
			time.Sleep(interval) // pacing, not synchronisation
		}
	}

	for {
		// Open connections, upgrades under way included: one upgraded
		// as the drain began registers (and is closed) a moment later.
		left := s.open.Load()
		if left == 0 {
			break
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			s.log.Warn("drain deadline: closing remaining connections without handshake", "connections", left)
			s.mu.Lock()
			for c := range s.clients {
				// Their TCP connections: the library's CloseNow would
				// wait for the close handshake under way instead.
				c.cutConn()
			}
			s.mu.Unlock()
			// Their read loops end at once and remove their presence;
			// Close on the store removes whatever is still left.
			s.waitClients(time.Until(start.Add(grace * 9 / 10)))
			break
		}
		select {
		case <-s.gone:
		case <-time.After(min(wait, 100*time.Millisecond)):
		}
	}
	s.log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
}

// waitClients waits (at most d) for every client to leave.
func (s *Server) waitClients(d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if s.open.Load() == 0 {
			return
		}
		select {
		case <-s.gone:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

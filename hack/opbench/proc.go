package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/procfs"
)

// sample is one reading of the operator process.
type sample struct {
	at     time.Time
	cpu    float64 // utime+stime, seconds
	rssMiB float64
}

// sampler reads the operator's CPU time and resident memory from /proc
// every interval, until its context ends.
type sampler struct {
	proc procfs.Proc

	mu      sync.Mutex
	samples []sample
	err     error
}

func newSampler(pid int) (*sampler, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return nil, fmt.Errorf("operator process %d: %w", pid, err)
	}
	s := &sampler{proc: p}
	if err := s.read(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *sampler) read() error {
	st, err := s.proc.Stat()
	if err != nil {
		return fmt.Errorf("read /proc/%d/stat: %w", s.proc.PID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, sample{at: time.Now(), cpu: st.CPUTime(), rssMiB: float64(st.ResidentMemory()) / (1 << 20)})
	return nil
}

// run samples every interval until ctx is done; the first error (the
// operator exited) stops it and is kept for err().
func (s *sampler) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.read(); err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				return
			}
		}
	}
}

func (s *sampler) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// usage is what the samples of a window say.
type usage struct {
	// cpuCores is CPU seconds per wall second over the window (1.0 = one core).
	cpuCores float64
	// peakRSS and lastRSS are in MiB.
	peakRSS, lastRSS float64
	n                int
}

func (u usage) String() string {
	if u.n < 2 {
		return "too few samples"
	}
	return fmt.Sprintf("CPU %.2f cores (%.0f%% of one core), RSS peak %.1f MiB, at the end %.1f MiB", u.cpuCores, 100*u.cpuCores, u.peakRSS, u.lastRSS)
}

// window summarises the samples taken in [from, to].
func (s *sampler) window(from, to time.Time) usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return summarise(s.samples, from, to)
}

func summarise(samples []sample, from, to time.Time) usage {
	var u usage
	var first, last sample
	for _, x := range samples {
		if x.at.Before(from) || x.at.After(to) {
			continue
		}
		if u.n == 0 {
			first = x
		}
		last = x
		u.n++
		u.peakRSS = max(u.peakRSS, x.rssMiB)
	}
	if u.n >= 2 {
		if d := last.at.Sub(first.at).Seconds(); d > 0 {
			u.cpuCores = (last.cpu - first.cpu) / d
		}
		u.lastRSS = last.rssMiB
	}
	return u
}

package main

import (
	"testing"
	"time"
)

// The demo client's backoff: before retry n, a delay in [c/2, c] where c
// doubles from the base up to the cap.
func TestBackoffDelayEqualJitter(t *testing.T) {
	base, capDelay := 500*time.Millisecond, 30*time.Second
	for attempt, ceiling := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		for range 200 {
			d := backoffDelay(attempt, base, capDelay)
			if d < ceiling/2 || d > ceiling {
				t.Fatalf("attempt %d: delay %s outside [%s, %s]", attempt, d, ceiling/2, ceiling)
			}
		}
	}
	if d := backoffDelay(1000, base, capDelay); d < capDelay/2 || d > capDelay {
		t.Fatalf("attempt 1000: delay %s outside [%s, %s]", d, capDelay/2, capDelay)
	}
}

func TestOtherGatewayNeverTheSame(t *testing.T) {
	seen := map[int]bool{}
	for range 300 {
		k := otherGateway(1, 3)
		if k == 1 || k < 0 || k > 2 {
			t.Fatalf("otherGateway(1, 3) = %d", k)
		}
		seen[k] = true
	}
	if !seen[0] || !seen[2] {
		t.Fatalf("otherGateway(1, 3) never picked one of the others: %v", seen)
	}
	if k := otherGateway(0, 1); k != 0 {
		t.Fatalf("otherGateway(0, 1) = %d, want 0 (the only one)", k)
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Second)
	}
	if q := quantile(d, 0.99); q != 99*time.Second {
		t.Fatalf("p99 of 1..100 s = %s, want 99s", q)
	}
	if q := quantile(d, 1); q != 100*time.Second {
		t.Fatalf("p100 = %s, want 100s", q)
	}
	if q := quantile(nil, 0.5); q != -1 {
		t.Fatalf("quantile of nothing = %s, want -1", q)
	}
}

// An offline event is false when the user never dropped for the grace:
// either it never dropped, or it came back sooner. Events before the storm
// are not counted.
func TestFalseOfflineNeedsADropShorterThanTheGrace(t *testing.T) {
	s := &storm{o: options{prefix: "u"}, clients: make([]clientState, 3), ids: map[string]int{"u-0": 0, "u-1": 1, "u-2": 2}}
	t0 := time.Unix(1000, 0)
	s.clients[0].downs = []downSpan{{from: t0, to: t0.Add(2 * time.Second)}} // back within the grace
	s.clients[1].downs = []downSpan{{from: t0, to: t0.Add(9 * time.Second)}} // down longer
	// u-2 never dropped.
	w := &watcher{name: "w", offline: []offlineEvent{{"u-0", t0.Add(time.Second)}, {"u-1", t0.Add(6 * time.Second)},
		{"u-2", t0.Add(time.Second)}, {"u-0", t0.Add(-time.Second)}}}
	s.watchers = []*watcher{w}
	total, falseN, _ := s.falseOffline(t0, 5*time.Second)
	if total != 3 || falseN != 2 {
		t.Fatalf("falseOffline = %d total, %d false; want 3 (the one before the storm left out), 2 (u-0 and u-2)", total, falseN)
	}
}

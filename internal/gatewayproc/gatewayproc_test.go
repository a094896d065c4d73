package gatewayproc

import (
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBinary()
	os.Exit(code)
}

// TestFreePortNeverEphemeralNorTwice: ports come from below the kernel's
// ephemeral range (so no outgoing connection is given one before the
// gateway binds it), each is free, and concurrent callers never get the
// same one.
func TestFreePortNeverEphemeralNorTwice(t *testing.T) {
	const n = 300
	ports := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { ports <- FreePort(t) })
	}
	wg.Wait()
	close(ports)
	seen := map[int]bool{}
	low := ephemeralLow()
	for p := range ports {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p >= low {
			t.Fatalf("port %d is in the ephemeral range (from %d): an outgoing connection may take it", p, low)
		}
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		_ = l.Close()
	}
}

// TestStartRetriesOnATakenPort: another process binds the port between
// FreePort and the gateway's start (here: the test holds it); Start picks
// other ports and the gateway runs.
func TestStartRetriesOnATakenPort(t *testing.T) {
	taken := FreePort(t)
	l, err := net.Listen("tcp", ":"+strconv.Itoa(taken))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	calls := 0
	freePort = func(t testing.TB) int {
		calls++
		if calls == 1 {
			return taken
		}
		return FreePort(t)
	}
	t.Cleanup(func() { freePort = FreePort })
	p := Start(t, Options{Name: "retry", Env: []string{"REDIS_NODES="}, ReadyPath: "/healthz", ReadyWithin: 30 * time.Second})
	if strings.HasSuffix(p.API, ":"+strconv.Itoa(taken)) {
		t.Fatalf("the gateway claims the taken port %d: %s", taken, p.API)
	}
	if calls < 3 {
		t.Fatalf("%d port lookups: Start did not start again on other ports", calls)
	}
}

package gatewayproc

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortIsFreeWhereTheGatewayListens: the port can be bound on ":port",
// the address the gateway listens on, not only on 127.0.0.1. Probabilistic:
// with a port free on 127.0.0.1 only, this failed for 13% of ports on a
// machine with a few thousand TIME_WAIT sockets.
func TestFreePortIsFreeWhereTheGatewayListens(t *testing.T) {
	for range 500 {
		p := FreePort(t)
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("FreePort returned %d, but the gateway could not listen on it: %v", p, err)
		}
		_ = l.Close()
	}
}

package shardsub

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
)

// fakeNode is a Redis node that speaks just enough RESP2 for the client:
// AUTH, PING, SSUBSCRIBE and SUNSUBSCRIBE of one channel each (several
// channels get CROSSSLOT, as from a real node when their slots differ), and
// publish, which pushes "smessage" to the connections subscribed.
type fakeNode struct {
	t    *testing.T
	ln   net.Listener
	addr string

	mu    sync.Mutex
	conns map[net.Conn]*fakeConn
	// hold, when set, delays every SSUBSCRIBE reply until it is closed.
	hold chan struct{}
	subs int // SSUBSCRIBE commands answered
}

type fakeConn struct {
	w    *bufio.Writer
	wmu  sync.Mutex
	subs map[string]bool
}

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{t: t, ln: ln, addr: ln.Addr().String(), conns: map[net.Conn]*fakeConn{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fc := &fakeConn{w: bufio.NewWriter(c), subs: map[string]bool{}}
			n.mu.Lock()
			n.conns[c] = fc
			n.mu.Unlock()
			go n.serve(c, fc)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		n.dropAll()
	})
	return n
}

func (n *fakeNode) serve(c net.Conn, fc *fakeConn) {
	defer func() {
		n.mu.Lock()
		delete(n.conns, c)
		n.mu.Unlock()
		_ = c.Close()
	}()
	r := bufio.NewReader(c)
	for {
		v, err := readValue(r)
		if err != nil {
			return
		}
		arr, _ := v.([]any)
		if len(arr) == 0 {
			return
		}
		args := make([]string, len(arr))
		for i, a := range arr {
			args[i], _ = a.(string)
		}
		switch strings.ToUpper(args[0]) {
		case "AUTH":
			fc.write("+OK\r\n")
		case "PING":
			fc.write("*2\r\n$4\r\npong\r\n$0\r\n\r\n")
		case "SSUBSCRIBE":
			if len(args) != 2 {
				fc.write("-CROSSSLOT Keys in request don't hash to the same slot\r\n")
				continue
			}
			n.mu.Lock()
			hold := n.hold
			n.mu.Unlock()
			if hold != nil {
				<-hold
			}
			n.mu.Lock()
			fc.subs[args[1]] = true
			n.subs++
			count := len(fc.subs)
			n.mu.Unlock()
			fc.write(fmt.Sprintf("*3\r\n$10\r\nssubscribe\r\n%s:%d\r\n", bulk(args[1]), count))
		case "SUNSUBSCRIBE":
			n.mu.Lock()
			delete(fc.subs, args[1])
			count := len(fc.subs)
			n.mu.Unlock()
			fc.write(fmt.Sprintf("*3\r\n$12\r\nsunsubscribe\r\n%s:%d\r\n", bulk(args[1]), count))
		default:
			fc.write("-ERR unknown command\r\n")
		}
	}
}

func bulk(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }

func (fc *fakeConn) write(s string) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_, _ = fc.w.WriteString(s)
	_ = fc.w.Flush()
}

// publish pushes payload to every connection subscribed to channel and
// returns how many there were.
func (n *fakeNode) publish(channel, payload string) int {
	n.mu.Lock()
	var to []*fakeConn
	for _, fc := range n.conns {
		if fc.subs[channel] {
			to = append(to, fc)
		}
	}
	n.mu.Unlock()
	for _, fc := range to {
		fc.write("*3\r\n$8\r\nsmessage\r\n" + bulk(channel) + bulk(payload))
	}
	return len(to)
}

// subscribed reports whether some connection is subscribed to channel.
func (n *fakeNode) subscribed(channel string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, fc := range n.conns {
		if fc.subs[channel] {
			return true
		}
	}
	return false
}

// dropAll closes every client connection (a node restart, a network cut).
func (n *fakeNode) dropAll() {
	n.mu.Lock()
	var cs []net.Conn
	for c := range n.conns {
		cs = append(cs, c)
	}
	n.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}

package controllers

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeRedis is a loopback TCP server that speaks just enough RESP for the
// health check: reply maps a command (its words, upper-cased) to a raw RESP
// reply. A nil reply makes a blackhole: it accepts connections, reads what
// they send, and never answers, like a node behind a dropped route or a
// hung process.
type fakeRedis struct {
	addr string
	// accepted receives one value per accepted connection.
	accepted chan struct{}
}

func startFakeRedis(t *testing.T, reply func(cmd []string) string) *fakeRedis {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{addr: l.Addr().String(), accepted: make(chan struct{}, 64)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case f.accepted <- struct{}{}:
			default:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveFakeRedis(c, reply)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return f
}

// serveFakeRedis answers the commands of one connection until it closes.
func serveFakeRedis(c net.Conn, reply func(cmd []string) string) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		cmd, err := readRESPCommand(r)
		if err != nil {
			return
		}
		if reply == nil {
			continue // blackhole
		}
		if _, err := io.WriteString(c, reply(cmd)); err != nil {
			return
		}
	}
}

// readRESPCommand reads one command: an array of bulk strings.
func readRESPCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not an array: %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		return nil, err
	}
	cmd := make([]string, 0, n)
	for range n {
		head, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		cmd = append(cmd, strings.ToUpper(string(buf[:size])))
	}
	return cmd, nil
}

// respBulk is a RESP bulk string.
func respBulk(s string) string {
	return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s)
}

// healthyClusterInfo is CLUSTER INFO of a cluster that is ok.
const healthyClusterInfo = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_known_nodes:1\r\n"

// fakeUnknownCommand answers what the fake does not implement (HELLO, which
// go-redis sends first, then falls back to RESP2 without it).
const fakeUnknownCommand = "-ERR unknown command\r\n"

package shardsub

import (
	"context"
	"strings"
	"sync"
)

// fakeRouter routes a channel by its prefix before ":" to a node address.
type fakeRouter struct {
	mu    sync.Mutex
	nodes map[string]string // prefix -> addr
}

func (r *fakeRouter) MasterAddr(_ context.Context, channel string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prefix, _, _ := strings.Cut(channel, ":")
	return r.nodes[prefix], nil
}

func (r *fakeRouter) Reload(context.Context) {}

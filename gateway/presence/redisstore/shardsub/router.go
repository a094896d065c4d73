package shardsub

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Router says which master node serves a channel's slot.
type Router interface {
	// MasterAddr returns the "host:port" of the master serving channel's slot.
	MasterAddr(ctx context.Context, channel string) (string, error)
	// Reload asks for a fresh slot map (it may be lazy and coalesced).
	Reload(ctx context.Context)
}

// ClusterRouter routes with a go-redis ClusterClient's slot map: the one
// Client returns now (the store replaces its client when its seed nodes
// change).
type ClusterRouter struct {
	Client func() *redis.ClusterClient
}

// MasterAddr implements Router.
func (r ClusterRouter) MasterAddr(ctx context.Context, channel string) (string, error) {
	node, err := r.Client().MasterForKey(ctx, channel)
	if err != nil {
		return "", err
	}
	return node.Options().Addr, nil
}

// Reload implements Router.
func (r ClusterRouter) Reload(ctx context.Context) { r.Client().ReloadState(ctx) }

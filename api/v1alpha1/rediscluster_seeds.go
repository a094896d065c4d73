package v1alpha1

import (
	"net"
	"slices"
	"strings"
)

// QualifyRedisNode qualifies a seed node's host with namespace when it is a
// short in-cluster name ("redis" or "redis-0.redis", at most one dot), which
// a pod resolves through its own namespace's DNS search path: the gateways
// run in the RedisCluster's namespace but the operator does not, so both
// must be given "redis-0.redis.<namespace>.svc:6379". IP addresses,
// localhost, names with two or more dots, names with a "svc" label and
// absolute names (trailing dot) are returned unchanged, as is anything that
// is not host:port (validation reports those). A Service in another
// namespace is written <service>.<namespace>.svc.
func QualifyRedisNode(node, namespace string) string {
	host, port, err := net.SplitHostPort(node)
	if err != nil || host == "" || namespace == "" {
		return node
	}
	labels := strings.Split(host, ".")
	if net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".") ||
		len(labels) > 2 || slices.Contains(labels, "svc") {
		return node
	}
	return net.JoinHostPort(host+"."+namespace+".svc", port)
}

// SeedNodes is the list of seed nodes both the gateways (REDIS_NODES_FILE) and
// the operator's health check use: spec.external.nodes, qualified with the
// RedisCluster's namespace (QualifyRedisNode); for spec.serviceRef, the
// seeds the operator resolved from the Service's endpoints (status.seeds).
func (rc *RedisCluster) SeedNodes() []string {
	if rc.Spec.External != nil && len(rc.Spec.External.Nodes) > 0 {
		out := make([]string, 0, len(rc.Spec.External.Nodes))
		for _, n := range rc.Spec.External.Nodes {
			out = append(out, QualifyRedisNode(n, rc.Namespace))
		}
		return out
	}
	if rc.Spec.ServiceRef != nil {
		return slices.Clone(rc.Status.Seeds)
	}
	return nil
}

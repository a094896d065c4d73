package controllers

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// maxServiceSeeds bounds the seeds taken from a Service's endpoints: the
// gateways need one live seed to discover the whole cluster, and a list
// this long survives any realistic number of members down at once.
const maxServiceSeeds = 64

// resolveSeeds turns the RedisCluster's source of nodes into the seed nodes
// the health check asks and the gateways get (status.seeds). A source that
// gives nothing is a problem for the user (SourceNotFound, NoNodes); err is
// for failed API calls.
func (r *RedisClusterReconciler) resolveSeeds(ctx context.Context, rc *presencev1alpha1.RedisCluster) ([]string, *conditionResult, error) {
	switch {
	case rc.Spec.ServiceRef != nil:
		return r.serviceSeeds(ctx, rc.Namespace, rc.Spec.ServiceRef)
	case rc.Spec.External != nil && len(rc.Spec.External.Nodes) > 0:
		// Qualified exactly as the gateways get them (SeedNodes), so that
		// a short in-cluster name ("redis-0.redis:6379"), which the
		// gateways resolve in the RedisCluster's namespace, is not looked
		// up in the operator's own.
		return rc.SeedNodes(), nil, nil
	}
	return nil, &conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonNoNodes,
		"the spec gives no node to check: set spec.external.nodes or spec.serviceRef"}, nil
}

// serviceSeeds reads the Service of ref and its EndpointSlices from the API
// server: the manager caches only the operator's own Services, and caching
// every EndpointSlice of the cluster would make the operator's memory grow
// with the cluster. The read happens at every check (CheckInterval), which
// is how the seeds follow members that come and go.
func (r *RedisClusterReconciler) serviceSeeds(ctx context.Context, namespace string, ref *presencev1alpha1.RedisServiceRef) ([]string, *conditionResult, error) {
	port := ref.Port
	if port == 0 {
		port = 6379
	}
	svc := &corev1.Service{}
	if err := r.apiReader().Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonSourceNotFound,
				fmt.Sprintf("Service %q (spec.serviceRef.name) not found in namespace %s", ref.Name, namespace)}, nil
		}
		return nil, nil, fmt.Errorf("get Service %s: %w", ref.Name, err)
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port })
	if i < 0 {
		var have []string
		for _, p := range svc.Spec.Ports {
			have = append(have, strconv.Itoa(int(p.Port)))
		}
		return nil, &conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonSourceNotFound,
			fmt.Sprintf("Service %q has no port %d (spec.serviceRef.port); its ports: %s", ref.Name, port, orNone(have))}, nil
	}
	portName := svc.Spec.Ports[i].Name
	headless := svc.Spec.ClusterIP == corev1.ClusterIPNone

	var epSlices discoveryv1.EndpointSliceList
	if err := r.apiReader().List(ctx, &epSlices, client.InNamespace(namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: ref.Name}); err != nil {
		return nil, nil, fmt.Errorf("list EndpointSlices of Service %s: %w", ref.Name, err)
	}
	seeds := endpointSeeds(epSlices.Items, ref.Name, namespace, portName, headless)
	if len(seeds) == 0 {
		return nil, &conditionResult{metav1.ConditionFalse, presencev1alpha1.ReasonNoNodes,
			fmt.Sprintf("Service %q (spec.serviceRef) has no ready endpoint on port %d", ref.Name, port)}, nil
	}
	return seeds, nil, nil
}

// endpointSeeds are the ready endpoints of a Service's EndpointSlices on
// the endpoint port named portName, sorted and at most maxServiceSeeds. The
// endpoint of a headless Service that has a hostname (a StatefulSet's pod)
// becomes <hostname>.<service>.<namespace>.svc:<port>, a name that stays
// with the member across restarts and resolves the same from every
// namespace; any other becomes <address>:<port>.
func endpointSeeds(items []discoveryv1.EndpointSlice, service, namespace, portName string, headless bool) []string {
	var seeds []string
	for _, s := range items {
		var port int32
		for _, p := range s.Ports {
			if p.Port != nil && ptr.Deref(p.Name, "") == portName {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			switch {
			case headless && ep.Hostname != nil && *ep.Hostname != "":
				seeds = append(seeds, net.JoinHostPort(*ep.Hostname+"."+service+"."+namespace+".svc", strconv.Itoa(int(port))))
			case len(ep.Addresses) > 0:
				seeds = append(seeds, net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port))))
			}
		}
	}
	slices.Sort(seeds)
	seeds = slices.Compact(seeds)
	if len(seeds) > maxServiceSeeds {
		seeds = seeds[:maxServiceSeeds]
	}
	return seeds
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func (r *RedisClusterReconciler) apiReader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

package controllers

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
)

// TestEndpointSeeds: the ready endpoints on the named port, as stable pod
// names for a headless Service's hostnames, as addresses otherwise; sorted,
// without duplicates.
func TestEndpointSeeds(t *testing.T) {
	slice := func(portName string, port int32, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
		return discoveryv1.EndpointSlice{
			Ports:     []discoveryv1.EndpointPort{{Name: ptr.To("metrics"), Port: ptr.To[int32](9121)}, {Name: ptr.To(portName), Port: ptr.To(port)}},
			Endpoints: eps,
		}
	}
	ep := func(addr, hostname string, ready *bool) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
		if hostname != "" {
			e.Hostname = ptr.To(hostname)
		}
		return e
	}
	items := []discoveryv1.EndpointSlice{
		slice("redis", 6379, ep("10.0.0.2", "redis-1", ptr.To(true)), ep("10.0.0.1", "redis-0", nil), ep("10.0.0.3", "redis-2", ptr.To(false))),
		slice("redis", 6379, ep("10.0.0.1", "redis-0", ptr.To(true))), // the same pod in a second slice
		slice("other", 7000, ep("10.0.0.9", "x-0", ptr.To(true))),     // not the port named
	}
	g := NewWithT(t)
	g.Expect(endpointSeeds(items, "redis", "data", "redis", true)).To(Equal([]string{
		"redis-0.redis.data.svc:6379", "redis-1.redis.data.svc:6379",
	}), "headless: pod names, not-ready skipped")
	g.Expect(endpointSeeds(items, "redis", "data", "redis", false)).To(Equal([]string{
		"10.0.0.1:6379", "10.0.0.2:6379",
	}), "a ClusterIP Service: addresses")
	g.Expect(endpointSeeds(items, "redis", "data", "nope", true)).To(BeEmpty())
}

// hostAddress is a non-loopback IPv4 address of this machine: the API
// server refuses loopback addresses in EndpointSlices.
func hostAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address, which an EndpointSlice of the Redis test cluster needs")
	return ""
}

// forward listens on host:0 and relays every connection to target (a node
// of the local Redis Cluster, which listens on loopback only), so that an
// EndpointSlice can point at the real cluster.
func forward(t *testing.T, host, target string) int32 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func createEndpointSlice(t *testing.T, ns, service, name, addr string, port int32) {
	t.Helper()
	NewWithT(t).Expect(k8sClient.Create(context.Background(), &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("redis"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	})).To(Succeed())
}

// TestRedisClusterFromService: spec.serviceRef follows the Service's
// EndpointSlices. Without endpoints the cluster is NoNodes; with one that
// reaches the real Redis Cluster it becomes Ready, its seeds are in
// status.seeds and in the gateways' seed file; a member that joins changes
// that file, not the pods.
func TestRedisClusterFromService(t *testing.T) {
	requireRedisCluster(t)
	ctx := context.Background()
	ns := newNamespace(t)
	host := hostAddress(t)
	g := NewWithT(t)

	g.Expect(k8sClient.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "redis", Port: 6379}}},
	})).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &presencev1alpha1.RedisCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "from-service"},
		Spec:       presencev1alpha1.RedisClusterSpec{ServiceRef: &presencev1alpha1.RedisServiceRef{Name: "redis"}},
	})).To(Succeed())
	eventually(t, clusterCondition(ns, "from-service", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonNoNodes),
		HaveField("Message", ContainSubstring(`Service "redis" (spec.serviceRef) has no ready endpoint on port 6379`))))

	firstPort := forward(t, host, testRedisNodes[0])
	first := net.JoinHostPort(host, strconv.Itoa(int(firstPort)))
	createEndpointSlice(t, ns, "redis", "redis-a", host, firstPort)
	eventually(t, clusterCondition(ns, "from-service", presencev1alpha1.ConditionReady)).Should(
		statusReason(metav1.ConditionTrue, presencev1alpha1.ReasonClusterOK))
	rc := &presencev1alpha1.RedisCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "from-service"}}
	g.Expect(get(ctx, rc)).To(Succeed())
	g.Expect(rc.Status.Seeds).To(Equal([]string{first}))
	g.Expect(rc.Status.Nodes).To(ConsistOf(testRedisNodes), "the whole cluster, discovered from the one seed")

	createGateway(t, ns, "chat", "from-service", nil)
	nodes := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "chat-redis-nodes"}}
	eventually(t, func(g Gomega) string {
		g.Expect(get(ctx, nodes)).To(Succeed())
		return nodes.Data["nodes"]
	}).Should(Equal(first + "\n"))
	template := waitDeployment(t, ns, "chat").Spec.Template

	second := forward(t, host, testRedisNodes[1])
	createEndpointSlice(t, ns, "redis", "redis-b", host, second)
	both := []string{first, net.JoinHostPort(host, strconv.Itoa(int(second)))}
	if both[1] < both[0] {
		both[0], both[1] = both[1], both[0]
	}
	eventually(t, func(g Gomega) string {
		g.Expect(get(ctx, nodes)).To(Succeed())
		return nodes.Data["nodes"]
	}).Should(Equal(both[0] + "\n" + both[1] + "\n"))
	g.Expect(get(ctx, rc)).To(Succeed())
	g.Expect(rc.Status.Seeds).To(Equal(both))
	dep := waitDeployment(t, ns, "chat")
	g.Expect(dep.Spec.Template).To(Equal(template), "a member joining must not roll the gateways")
}

// TestRedisClusterServiceNotFound: a missing Service, or one without the
// port named, is SourceNotFound with a message that says which.
func TestRedisClusterServiceNotFound(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	g := NewWithT(t)
	g.Expect(k8sClient.Create(ctx, &presencev1alpha1.RedisCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nowhere"},
		Spec:       presencev1alpha1.RedisClusterSpec{ServiceRef: &presencev1alpha1.RedisServiceRef{Name: "redis", Port: 7000}},
	})).To(Succeed())
	eventually(t, clusterCondition(ns, "nowhere", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonSourceNotFound),
		HaveField("Message", ContainSubstring(`Service "redis" (spec.serviceRef.name) not found in namespace `+ns))))
	g.Expect(k8sClient.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Name: "redis", Port: 6379}}},
	})).To(Succeed())
	eventually(t, clusterCondition(ns, "nowhere", presencev1alpha1.ConditionReady)).Should(And(
		statusReason(metav1.ConditionFalse, presencev1alpha1.ReasonSourceNotFound),
		HaveField("Message", ContainSubstring(`Service "redis" has no port 7000 (spec.serviceRef.port); its ports: 6379`))))
}

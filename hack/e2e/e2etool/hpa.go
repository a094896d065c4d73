package main

// The e2e's HPA case: a custom metrics API that the real kube-controller-
// manager's HPA reads, and clients that hold connections open so that the
// gateways' connection gauge is above the target.
//
// There is no prometheus-adapter here (no Prometheus either), so
// metrics-adapter serves the two requests the HPA controller makes of
// custom.metrics.k8s.io/v1beta2: its discovery document, and the value of a
// metric for the pods a selector picks. Each pod's value is the
// presence_gateway_connections gauge of one of the e2e's gateway processes
// (the pods themselves are kwok's, with no process behind them), taken from
// that gateway's real /metrics, pod i of the sorted list from gateway
// i mod n. It is written by hand because the one library for this,
// sigs.k8s.io/custom-metrics-apiserver, is a whole generic API server.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/presencekit/presence-operator/client"
)

const (
	customMetricsGV = "custom.metrics.k8s.io/v1beta2"
	connectionsName = "presence_gateway_connections"
)

func metricsAdapter(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("metrics-adapter", flag.ExitOnError)
	listen := fs.String("listen", "", "host:port to serve HTTPS on (a non-loopback address: an EndpointSlice points at it)")
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster whose pods it describes")
	sources := fs.String("gateway-metrics", "", "the gateways' /metrics URLs, comma separated")
	pidfile := fs.String("pidfile", "", "write the process id here")
	_ = fs.Parse(args)
	if *listen == "" || *sources == "" {
		return errors.New("-listen and -gateway-metrics are required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	a := &adapter{kube: kube, sources: strings.Split(*sources, ",")}
	srv := &http.Server{
		Addr: *listen, Handler: a, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
			return err
		}
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	fmt.Printf("metrics-adapter: serving %s on https://%s for %s\n", customMetricsGV, *listen, *sources)
	if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type adapter struct {
	kube    kubernetes.Interface
	sources []string
	mu      sync.Mutex
	served  int
}

func (a *adapter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/apis/"+customMetricsGV:
		writeJSON(w, metav1.APIResourceList{
			TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
			GroupVersion: customMetricsGV,
			APIResources: []metav1.APIResource{{Name: "pods/" + connectionsName, Namespaced: true, Kind: "MetricValueList", Verbs: []string{"get"}}},
		})
	case strings.HasPrefix(path, "/apis/"+customMetricsGV+"/namespaces/"):
		// .../namespaces/<ns>/pods/<name or *>/<metric>
		parts := strings.Split(strings.TrimPrefix(path, "/apis/"+customMetricsGV+"/namespaces/"), "/")
		if len(parts) != 4 || parts[1] != "pods" || parts[3] != connectionsName {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		list, err := a.values(r.Context(), parts[0], parts[2], r.URL.Query().Get("labelSelector"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, list)
	case path == "/healthz" || path == "/readyz" || path == "/livez":
		_, _ = w.Write([]byte("ok"))
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

// metricValue and metricValueList are custom.metrics.k8s.io/v1beta2's
// MetricValue and MetricValueList, the JSON the HPA controller decodes.
type metricValue struct {
	DescribedObject corev1.ObjectReference `json:"describedObject"`
	Metric          struct {
		Name string `json:"name"`
	} `json:"metric"`
	Timestamp     metav1.Time `json:"timestamp"`
	WindowSeconds *int64      `json:"windowSeconds,omitempty"`
	Value         string      `json:"value"`
}

type metricValueList struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ListMeta `json:"metadata"`
	Items           []metricValue   `json:"items"`
}

func (a *adapter) values(ctx context.Context, namespace, name, selector string) (*metricValueList, error) {
	pods, err := a.kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(pods.Items))
	for _, p := range pods.Items {
		if name == "*" || p.Name == name {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	gauges := make([]float64, len(a.sources))
	for i, src := range a.sources {
		if gauges[i], err = scrapeGauge(ctx, src, connectionsName); err != nil {
			return nil, err
		}
	}
	list := &metricValueList{TypeMeta: metav1.TypeMeta{Kind: "MetricValueList", APIVersion: customMetricsGV}, Items: []metricValue{}}
	now := metav1.Now()
	for i, n := range names {
		v := metricValue{
			DescribedObject: corev1.ObjectReference{Kind: "Pod", Namespace: namespace, Name: n, APIVersion: "/v1"},
			Timestamp:       now,
			Value:           strconv.FormatFloat(gauges[i%len(gauges)], 'f', -1, 64),
		}
		v.Metric.Name = connectionsName
		list.Items = append(list.Items, v)
	}
	a.mu.Lock()
	a.served++
	if a.served == 1 {
		fmt.Printf("metrics-adapter: first request: %d pods, gauges %v\n", len(names), gauges)
	}
	a.mu.Unlock()
	return list, nil
}

// scrapeGauge reads one unlabelled gauge from a Prometheus text page.
func scrapeGauge(ctx context.Context, url, metric string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, metric+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s", url, metric)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// selfSigned is the adapter's serving certificate: the APIService says
// insecureSkipTLSVerify, as test adapters' do.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2etool metrics-adapter"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// hold opens -n connections spread over the gateways and keeps them open
// (the client pings) until it is stopped.
func hold(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	gateways := fs.String("gateways", "", "gateway base URLs, comma separated")
	n := fs.Int("n", 40, "connections")
	pidfile := fs.String("pidfile", "", "write the process id here")
	_ = fs.Parse(args)
	gw := strings.Split(*gateways, ",")
	if *gateways == "" || *n < 1 {
		return errors.New("-gateways and a positive -n are required")
	}
	suffix := randomSuffix()
	var conns []*client.Client
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range *n {
		dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := client.Dial(dialCtx, client.Options{URL: gw[i%len(gw)], UserID: fmt.Sprintf("e2e-hpa-%s-%d", suffix, i), DiscardEvents: true, DialAttempts: 1})
		cancel()
		if err != nil {
			return fmt.Errorf("connection %d to %s: %w", i, gw[i%len(gw)], err)
		}
		conns = append(conns, c)
	}
	if *pidfile != "" {
		if err := os.WriteFile(*pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
			return err
		}
	}
	fmt.Printf("hold: %d connections open over %d gateways\n", len(conns), len(gw))
	<-ctx.Done()
	return nil
}

// Command opbench measures the operator at scale on a running control plane
// (hack/opbench/run.sh starts one, with kwok pods, a Redis Cluster and the
// operator, and runs this): it creates N PresenceGateways sharing one
// RedisCluster, waits (on watches) until all are Ready, then measures an
// idle window and one RedisCluster flap. It reports the operator's CPU and
// RSS (/proc), its API writes (the kube-apiserver's audit log, filtered to
// the operator's user) and its reconciles (its own /metrics).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	"github.com/presencekit/presence-operator/controllers"
)

type options struct {
	kubeconfig    string
	namespace     string
	redisCluster  string
	redisNodes    string
	gateways      int
	replicas      int
	createWorkers int
	operatorPID   int
	operatorUser  string
	auditLog      string
	metricsURL    string
	readyTimeout  time.Duration
	settle        time.Duration
	idle          time.Duration
	flapDown      string
	flapUp        string
	flapTimeout   time.Duration
}

func main() {
	o := &options{}
	// A flag set of its own: controller-runtime registers --kubeconfig on
	// the global one.
	fs := flag.NewFlagSet("opbench", flag.ExitOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "admin kubeconfig of the control plane")
	fs.StringVar(&o.namespace, "namespace", "opbench", "namespace of the RedisCluster and the gateways (created)")
	fs.StringVar(&o.redisCluster, "redis-cluster", "shared-redis", "name of the RedisCluster every gateway references")
	fs.StringVar(&o.redisNodes, "redis-nodes", "", "comma-separated host:port seeds of the RedisCluster")
	fs.IntVar(&o.gateways, "gateways", 500, "PresenceGateways to create")
	fs.IntVar(&o.replicas, "replicas", 2, "spec.replicas of each gateway (kwok pods)")
	fs.IntVar(&o.createWorkers, "create-workers", 8, "concurrent creates")
	fs.IntVar(&o.operatorPID, "operator-pid", 0, "pid of the operator process (for /proc)")
	fs.StringVar(&o.operatorUser, "operator-user", "presence-operator", "the operator's user name in the audit log")
	fs.StringVar(&o.auditLog, "audit-log", "", "the kube-apiserver's audit log (--audit-log-path)")
	fs.StringVar(&o.metricsURL, "metrics-url", "", "the operator's /metrics URL (HTTPS, read with the kubeconfig's bearer token)")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 10*time.Minute, "how long to wait for all gateways to be Ready")
	fs.DurationVar(&o.settle, "settle", 30*time.Second, "pause after all are Ready before the idle window (and after the flap)")
	fs.DurationVar(&o.idle, "idle", 2*time.Minute, "length of the idle window")
	fs.StringVar(&o.flapDown, "flap-down", "", "shell command that makes the RedisCluster's Redis unreachable (empty: no flap)")
	fs.StringVar(&o.flapUp, "flap-up", "", "shell command that makes it reachable again")
	fs.DurationVar(&o.flapTimeout, "flap-timeout", 3*time.Minute, "bound of each wait of the flap")
	_ = fs.Parse(os.Args[1:]) // ExitOnError
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ctrllog.SetLogger(logr.FromSlogHandler(slog.Default().Handler())) // the informers' few lines
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "opbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) error {
	if o.kubeconfig == "" || o.redisNodes == "" || o.operatorPID == 0 || o.auditLog == "" || o.metricsURL == "" {
		return errors.New("-kubeconfig, -redis-nodes, -operator-pid, -audit-log and -metrics-url are required")
	}
	if (o.flapDown == "") != (o.flapUp == "") {
		return errors.New("-flap-down and -flap-up go together")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS = -1 // the bench's own requests are not what is measured
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(presencev1alpha1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	metrics := newMetricsClient(o.metricsURL, cfg.BearerToken)
	procs, err := newSampler(o.operatorPID)
	if err != nil {
		return err
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", o.namespace, err)
	}
	informers, err := cache.New(cfg, cache.Options{
		Scheme:            scheme,
		DefaultNamespaces: map[string]cache.Config{o.namespace: {}},
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}: {Label: labels.SelectorFromSet(labels.Set{controllers.ManagedByLabel: controllers.ManagedByValue})},
		},
	})
	if err != nil {
		return err
	}
	tr := newTracker()
	if err := tr.watch(ctx, informers); err != nil {
		return err
	}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = informers.Start(cctx) }()
	if !informers.WaitForCacheSync(cctx) {
		return errors.New("informers did not sync")
	}
	go procs.run(cctx, time.Second)

	rep := &report{o: o, start: time.Now()}
	if err := settle(ctx, o, c, tr, metrics, rep); err != nil {
		return err
	}
	if err := idle(ctx, o, metrics, rep); err != nil {
		return err
	}
	if o.flapDown != "" {
		if err := flap(ctx, o, tr, metrics, rep); err != nil {
			return err
		}
	}
	if err := procs.failed(); err != nil {
		return err
	}
	writes, err := readWritesFile(o.auditLog, o.operatorUser)
	if err != nil {
		return err
	}
	rep.print(os.Stdout, procs, writes, tr)
	return nil
}

// report holds the instants and scrapes the figures are computed from.
type report struct {
	o     *options
	start time.Time
	// Settling: creates from t0; all created, all Deployments seen, all Ready.
	t0, created, deployed, ready time.Time
	// Idle window.
	idleFrom, idleTo                 time.Time
	idleBefore, idleAfter            scrape
	settleBefore, settleAfter        scrape
	flapFrom, rcDown, gwDown, upCmd  time.Time
	rcUp, gwUp, flapTo               time.Time
	flapBefore, flapAfter            scrape
	loadavg0, loadavgIdle, loadavgFl string
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// settle creates the RedisCluster and, once it is Ready, the gateways, and
// waits for all of them to be Ready.
func settle(ctx context.Context, o *options, c client.Client, tr *tracker, m *metricsClient, rep *report) error {
	rc := &presencev1alpha1.RedisCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.namespace, Name: o.redisCluster},
		Spec:       presencev1alpha1.RedisClusterSpec{External: &presencev1alpha1.ExternalRedisCluster{Nodes: strings.Split(o.redisNodes, ",")}},
	}
	if err := c.Create(ctx, rc); err != nil {
		return fmt.Errorf("create RedisCluster: %w", err)
	}
	if _, err := tr.waitFor(ctx, "the RedisCluster to be Ready", o.flapTimeout, func(c counts) bool {
		return c.redisReady != nil && *c.redisReady
	}); err != nil {
		return err
	}
	slog.Info("RedisCluster Ready; creating gateways", "gateways", o.gateways, "replicas", o.replicas)

	var err error
	if rep.settleBefore, err = m.get(ctx); err != nil {
		return err
	}
	rep.loadavg0 = loadavg()
	rep.t0 = time.Now()
	if err := createGateways(ctx, o, c); err != nil {
		return err
	}
	rep.created = time.Now()
	slog.Info("created", "gateways", o.gateways, "in", rep.created.Sub(rep.t0).Round(time.Millisecond))
	if rep.deployed, err = tr.waitFor(ctx, "every gateway's Deployment", o.readyTimeout, func(c counts) bool {
		return c.deployments >= o.gateways
	}); err != nil {
		return err
	}
	slog.Info("all Deployments created", "after", rep.deployed.Sub(rep.t0).Round(time.Millisecond))
	if rep.ready, err = tr.waitFor(ctx, "every gateway to be Ready", o.readyTimeout-time.Since(rep.t0), func(c counts) bool {
		return c.ready >= o.gateways
	}); err != nil {
		return err
	}
	slog.Info("all Ready", "after", rep.ready.Sub(rep.t0).Round(time.Millisecond))
	rep.settleAfter, err = m.get(ctx)
	return err
}

func createGateways(ctx context.Context, o *options, c client.Client) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, o.createWorkers)
	for range o.createWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= o.gateways {
					return
				}
				gw := &presencev1alpha1.PresenceGateway{
					ObjectMeta: metav1.ObjectMeta{Namespace: o.namespace, Name: fmt.Sprintf("gw-%04d", i)},
					Spec: presencev1alpha1.PresenceGatewaySpec{
						Replicas: ptr.To(int32(o.replicas)),
						Redis:    presencev1alpha1.RedisSpec{ClusterRef: presencev1alpha1.LocalRef{Name: o.redisCluster}},
					},
				}
				if err := c.Create(ctx, gw); err != nil {
					errs <- fmt.Errorf("create PresenceGateway %s: %w", gw.Name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// idle waits o.settle, then measures an idle window of o.idle.
func idle(ctx context.Context, o *options, m *metricsClient, rep *report) error {
	if err := pause(ctx, o.settle); err != nil {
		return err
	}
	var err error
	rep.idleFrom = time.Now()
	if rep.idleBefore, err = m.get(ctx); err != nil {
		return err
	}
	slog.Info("idle window", "length", o.idle)
	if err := pause(ctx, o.idle); err != nil {
		return err
	}
	rep.idleTo = time.Now()
	rep.loadavgIdle = loadavg()
	rep.idleAfter, err = m.get(ctx)
	return err
}

// pause is a measurement window, not a synchronisation: nothing is
// checked at its end.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// flap makes the RedisCluster's Redis unreachable until the RedisCluster
// and every gateway report it, then reachable again until all are Ready.
func flap(ctx context.Context, o *options, tr *tracker, m *metricsClient, rep *report) error {
	var err error
	if rep.flapBefore, err = m.get(ctx); err != nil {
		return err
	}
	rep.flapFrom = time.Now()
	if err := shell(ctx, o.flapDown); err != nil {
		return err
	}
	if rep.rcDown, err = tr.waitFor(ctx, "the RedisCluster to be not Ready", o.flapTimeout, func(c counts) bool {
		return c.redisReady != nil && !*c.redisReady
	}); err != nil {
		return err
	}
	slog.Info("RedisCluster not Ready", "after", rep.rcDown.Sub(rep.flapFrom).Round(time.Millisecond))
	if rep.gwDown, err = tr.waitFor(ctx, "every gateway to be not Ready", o.flapTimeout, func(c counts) bool {
		return c.ready == 0
	}); err != nil {
		return err
	}
	slog.Info("every gateway not Ready", "after RedisCluster", rep.gwDown.Sub(rep.rcDown).Round(time.Millisecond))
	rep.upCmd = time.Now()
	if err := shell(ctx, o.flapUp); err != nil {
		return err
	}
	if rep.rcUp, err = tr.waitFor(ctx, "the RedisCluster to be Ready again", o.flapTimeout, func(c counts) bool {
		return c.redisReady != nil && *c.redisReady
	}); err != nil {
		return err
	}
	if rep.gwUp, err = tr.waitFor(ctx, "every gateway to be Ready again", o.flapTimeout, func(c counts) bool {
		return c.ready >= o.gateways
	}); err != nil {
		return err
	}
	slog.Info("every gateway Ready again", "after RedisCluster", rep.gwUp.Sub(rep.rcUp).Round(time.Millisecond))
	if err := pause(ctx, o.settle); err != nil {
		return err
	}
	rep.flapTo = time.Now()
	rep.loadavgFl = loadavg()
	rep.flapAfter, err = m.get(ctx)
	return err
}

func shell(ctx context.Context, command string) error {
	cmd := exec.CommandContext(ctx, "bash", "-c", command)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%q: %w", command, err)
	}
	return nil
}

func (rep *report) print(w *os.File, procs *sampler, writes []write, tr *tracker) {
	o := rep.o
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	secs := func(t time.Time) string { return fmt.Sprintf("%.1f s", t.Sub(rep.t0).Seconds()) }
	reconciles := func(after, before scrape) string {
		d := diff(after.sum("controller_runtime_reconcile_total", "controller", nil), before.sum("controller_runtime_reconcile_total", "controller", nil))
		return formatCounts(d)
	}
	methods := func(after, before scrape) string {
		d := diff(after.sum("rest_client_requests_total", "method", nil), before.sum("rest_client_requests_total", "method", nil))
		return formatCounts(d)
	}
	perMin := func(n int, from, to time.Time) float64 { return float64(n) / to.Sub(from).Minutes() }

	p("opbench: %d PresenceGateways x %d replicas on one RedisCluster (%s), %s", o.gateways, o.replicas, o.redisNodes, rep.start.UTC().Format(time.RFC3339))
	p("load average at the start %s, after the idle window %s, after the flap %s", rep.loadavg0, rep.loadavgIdle, rep.loadavgFl)
	p("")
	p("## Settling (from the first create)")
	ds := tr.readyTimes(rep.t0)
	p("all created        %s", secs(rep.created))
	p("all Deployments    %s", secs(rep.deployed))
	p("all rolled out     %s   (the last Deployment Available with every pod updated: the control plane's part)", secs(tr.lastRolledOut()))
	p("all Ready          %s   (per gateway: p50 %.1f s, p90 %.1f s, max %.1f s)", secs(rep.ready),
		percentile(ds, 50).Seconds(), percentile(ds, 90).Seconds(), percentile(ds, 100).Seconds())
	lag := tr.operatorLag()
	p("Ready after its Deployment rolled out: p50 %.1f s, p90 %.1f s, max %.1f s (the operator's part)",
		percentile(lag, 50).Seconds(), percentile(lag, 90).Seconds(), percentile(lag, 100).Seconds())
	p("operator           %s", procs.window(rep.t0, rep.ready))
	sc := countWrites(writes, rep.t0, rep.ready)
	p("writes             %d (%.0f per gateway; %d Events, %d Lease): %s", sc.total, float64(sc.total)/float64(o.gateways), sc.matching(isEvent), sc.matching(isLease), sc)
	p("reconciles         %s", reconciles(rep.settleAfter, rep.settleBefore))
	p("client requests    %s", methods(rep.settleAfter, rep.settleBefore))
	tail := countWrites(writes, rep.ready, rep.idleFrom)
	p("writes in the %s after all Ready: %d: %s", rep.idleFrom.Sub(rep.ready).Round(time.Second), tail.total, tail)
	p("")
	p("## Idle (%s)", rep.idleTo.Sub(rep.idleFrom).Round(time.Second))
	p("operator           %s", procs.window(rep.idleFrom, rep.idleTo))
	ic := countWrites(writes, rep.idleFrom, rep.idleTo)
	p("writes             %.1f/min without the Lease (%d in the window), Lease %.1f/min: %s",
		perMin(ic.without(isLease), rep.idleFrom, rep.idleTo), ic.without(isLease), perMin(ic.matching(isLease), rep.idleFrom, rep.idleTo), ic)
	p("reconciles         %s", reconciles(rep.idleAfter, rep.idleBefore))
	p("client requests    %s", methods(rep.idleAfter, rep.idleBefore))
	if rep.flapFrom.IsZero() {
		return
	}
	p("")
	p("## One RedisCluster flap (Redis down, then up)")
	p("RedisCluster not Ready     %.1f s after the Redis went down", rep.rcDown.Sub(rep.flapFrom).Seconds())
	p("every gateway not Ready    %.1f s after that", rep.gwDown.Sub(rep.rcDown).Seconds())
	p("RedisCluster Ready again   %.1f s after the Redis came back", rep.rcUp.Sub(rep.upCmd).Seconds())
	p("every gateway Ready again  %.1f s after that", rep.gwUp.Sub(rep.rcUp).Seconds())
	p("operator           %s", procs.window(rep.flapFrom, rep.flapTo))
	fc := countWrites(writes, rep.flapFrom, rep.flapTo)
	p("writes             %d without the Lease (%.1f per gateway; %d Event writes): %s",
		fc.without(isLease), float64(fc.without(isLease))/float64(o.gateways), fc.matching(isEvent), fc)
	p("reconciles         %s", reconciles(rep.flapAfter, rep.flapBefore))
	p("client requests    %s", methods(rep.flapAfter, rep.flapBefore))
}

func formatCounts(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%.0f", k, m[k])
	}
	return strings.Join(parts, ", ")
}

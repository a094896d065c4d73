package main

import (
	"strings"
	"testing"
	"time"
)

// Audit lines as kube-apiserver writes them (trimmed to the fields read).
const auditLog = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","verb":"patch","user":{"username":"presence-operator","groups":["system:authenticated"]},"objectRef":{"resource":"presencegateways","namespace":"opbench","name":"gw-0001","apiGroup":"presence.presencekit.io","apiVersion":"v1alpha1","subresource":"status"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-12-02T10:00:01.000000Z","stageTimestamp":"2026-12-02T10:00:01.004000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","verb":"patch","user":{"username":"presence-operator"},"objectRef":{"resource":"deployments","namespace":"opbench","name":"gw-0001","apiGroup":"apps","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2026-12-02T10:00:02.000000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","verb":"create","user":{"username":"presence-operator"},"objectRef":{"resource":"events","namespace":"opbench","apiGroup":"events.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2026-12-02T10:00:03.000000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","verb":"update","user":{"username":"presence-operator"},"objectRef":{"resource":"leases","namespace":"presence-system","name":"presence-operator.presencekit.io","apiGroup":"coordination.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-12-02T10:00:04.000000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","verb":"patch","user":{"username":"presence-operator"},"objectRef":{"resource":"presencegateways","namespace":"opbench","name":"gw-0002","apiGroup":"presence.presencekit.io","apiVersion":"v1alpha1","subresource":"status"},"responseStatus":{"metadata":{},"code":409},"requestReceivedTimestamp":"2026-12-02T10:00:05.000000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","verb":"get","user":{"username":"presence-operator"},"objectRef":{"resource":"secrets","namespace":"opbench","name":"s"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-12-02T10:00:06.000000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","verb":"patch","user":{"username":"system:kube-controller-manager"},"objectRef":{"resource":"deployments","subresource":"status"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-12-02T10:00:07.000000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","verb":"create","user":{"username":"presence-operator"},"objectRef":{"resource":"tokenreviews","apiGroup":"authentication.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2026-12-02T10:00:06.500000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseStarted","verb":"patch","user":{"username":"presence-operator"},"objectRef":{"resource":"deployments"},"requestReceivedTimestamp":"2026-12-02T10:00:08.000000Z"}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComp`

func TestReadWritesCountsTheUsersCompletedWrites(t *testing.T) {
	ws, err := readWrites(strings.NewReader(auditLog), "presence-operator")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range ws {
		got = append(got, w.what)
	}
	want := []string{"presencegateways/status patch", "deployments patch", "events create", "leases update", "presencegateways/status patch"}
	if strings.Join(got, ";") != strings.Join(want, ";") {
		t.Fatalf("writes = %q, want %q (reads, reviews, other users, other stages and the torn last line left out)", got, want)
	}

	at := func(s int) time.Time { return time.Date(2026, 12, 2, 10, 0, s, 0, time.UTC) }
	all := countWrites(ws, at(0), at(10))
	if all.total != 5 || all.failed != 1 {
		t.Fatalf("total %d failed %d, want 5 and 1", all.total, all.failed)
	}
	if n := all.without(isLease); n != 4 {
		t.Errorf("without the Lease: %d, want 4", n)
	}
	if n := all.matching(isEvent); n != 1 {
		t.Errorf("Events: %d, want 1", n)
	}
	if s := all.String(); s != "presencegateways/status patch=2, deployments patch=1, events create=1, leases update=1 (1 failed)" {
		t.Errorf("String() = %q", s)
	}
	// The window is [from, to).
	if w := countWrites(ws, at(2), at(4)); w.total != 2 || w.by["deployments patch"] != 1 || w.by["events create"] != 1 {
		t.Errorf("window [2s, 4s): %v", w)
	}
	if s := countWrites(ws, at(20), at(30)).String(); s != "none" {
		t.Errorf("empty window: %q", s)
	}
}

func TestParseMetricsAndSum(t *testing.T) {
	const text = `# HELP rest_client_requests_total Number of HTTP requests, partitioned by status code, method, and host.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="127.0.0.1:16502",method="GET"} 12
rest_client_requests_total{code="200",host="127.0.0.1:16502",method="PATCH"} 1500
rest_client_requests_total{code="409",host="127.0.0.1:16502",method="PATCH"} 3
rest_client_requests_total{code="201",host="127.0.0.1:16502",method="POST"} 2.5e+03
controller_runtime_reconcile_total{controller="presencegateway",result="success"} 4000
controller_runtime_reconcile_total{controller="presencegateway",result="error"} 2
controller_runtime_reconcile_total{controller="rediscluster",result="requeue_after"} 7
process_resident_memory_bytes 5.1e+07
`
	s, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	byMethod := s.sum("rest_client_requests_total", "method", nil)
	if byMethod["PATCH"] != 1503 || byMethod["POST"] != 2500 || byMethod["GET"] != 12 {
		t.Errorf("by method: %v", byMethod)
	}
	ok := s.sum("controller_runtime_reconcile_total", "controller", map[string]string{"result": "success"})
	if len(ok) != 1 || ok["presencegateway"] != 4000 {
		t.Errorf("successful reconciles by controller: %v", ok)
	}
	if rss := s.sum("process_resident_memory_bytes", "", nil)[""]; rss != 5.1e7 {
		t.Errorf("an unlabelled sample: %v", rss)
	}
	d := diff(map[string]float64{"a": 5, "b": 2}, map[string]float64{"a": 3, "b": 2})
	if len(d) != 1 || d["a"] != 2 {
		t.Errorf("diff: %v", d)
	}
	if _, err := parseMetrics(strings.NewReader("broken_line_without_value\n")); err == nil {
		t.Error("a line without a value parsed")
	}
}

func TestSummariseAWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	samples := []sample{
		{at: t0, cpu: 10, rssMiB: 40},
		{at: t0.Add(1 * time.Second), cpu: 10.5, rssMiB: 90},
		{at: t0.Add(2 * time.Second), cpu: 11, rssMiB: 70},
		{at: t0.Add(3 * time.Second), cpu: 11, rssMiB: 60},
	}
	u := summarise(samples, t0.Add(time.Second), t0.Add(3*time.Second))
	if u.n != 3 || u.peakRSS != 90 || u.lastRSS != 60 || u.cpuCores != 0.25 {
		t.Errorf("summarise = %+v, want 3 samples, peak 90, last 60, 0.25 cores", u)
	}
	if u := summarise(samples, t0.Add(10*time.Second), t0.Add(20*time.Second)); u.n != 0 || u.String() != "too few samples" {
		t.Errorf("an empty window: %+v", u)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 10; i++ {
		ds = append(ds, time.Duration(i)*time.Second)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 5 * time.Second}, {90, 9 * time.Second}, {100, 10 * time.Second}, {1, time.Second}} {
		if got := percentile(ds, c.p); got != c.want {
			t.Errorf("p%v = %s, want %s", c.p, got, c.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing")
	}
}

package charts_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presencekit/presence-operator/gateway/hub"
	"github.com/presencekit/presence-operator/gateway/metrics"
	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/redisstore"
	"github.com/presencekit/presence-operator/gateway/server"
)

// dashboard is the part of a Grafana dashboard model the tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboard checks that the Grafana dashboard shows what an SRE asks of a
// presence gateway, and that every series it queries is one the gateway
// exports (a renamed metric would otherwise leave an empty panel).
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "presence-gateway.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboards/presence-gateway.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid (stable links, sidecar updates) and a title")
	}
	variables := map[string]bool{}
	for _, v := range d.Templating.List {
		variables[v.Name] = true
	}
	if !variables["datasource"] {
		t.Error("the dashboard has no datasource variable: it would only work with a data source of one fixed uid")
	}

	var exprs []string
	ids := map[int]string{}
	for _, p := range d.Panels {
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q uses data source %q, want ${datasource}", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			exprs = append(exprs, target.Expr)
		}
	}
	all := strings.Join(exprs, "\n")

	// What the issue asks the dashboard to show.
	for _, want := range []string{
		"presence_gateway_connections{",
		"presence_gateway_online_users_local{",
		"rate(presence_gateway_presence_transitions_total{",
		"rate(presence_gateway_presence_events_delivered_total{",
		"histogram_quantile(0.99, sum by (le, command) (rate(presence_gateway_redis_command_duration_seconds_bucket{",
		"rate(presence_gateway_upgrade_rejections_total{",
		"rate(presence_gateway_slow_consumer_disconnects_total{",
		// The storms: reconnects, coalescing, dead replicas reaped.
		"rate(presence_gateway_connections_total{",
		"rate(presence_gateway_disconnections_total{",
		"rate(presence_gateway_events_coalesced_total{",
		"rate(presence_gateway_redis_events_coalesced_total{",
		"rate(presence_gateway_reaped_connections_total{",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel queries %s", want)
		}
	}

	exported := gatewayMetricNames(t)
	for _, name := range regexp.MustCompile(`presence_gateway_[a-z0-9_]+`).FindAllString(all, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if trimmed, ok := strings.CutSuffix(name, suffix); ok && exported[trimmed] {
				base = trimmed
			}
		}
		if !exported[base] {
			t.Errorf("the dashboard queries %s, which the gateway does not export", name)
		}
	}
}

// gatewayMetricNames returns the names of the metrics the gateway registers:
// the runtime's and each layer's, as cmd/presence-gateway registers them.
func gatewayMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	rec := &descRecorder{names: map[string]bool{}}
	metrics.RegisterRuntime(rec)
	server.NewMetrics(rec)
	hub.NewMetrics(rec)
	presence.NewMetrics(rec)
	redisstore.NewMetrics(rec)
	if len(rec.names) == 0 {
		t.Fatal("the gateway registered no metric")
	}
	return rec.names
}

// descRecorder is a prometheus.Registerer that records the metric names of
// what is registered with it.
type descRecorder struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *descRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *descRecorder) Unregister(prometheus.Collector) bool { return false }

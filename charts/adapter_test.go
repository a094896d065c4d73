package charts_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	presencev1alpha1 "github.com/presencekit/presence-operator/api/v1alpha1"
	gwspecs "github.com/presencekit/presence-operator/internal/specs/gateway"
)

// TestPrometheusAdapterRule renders the prometheus-adapter rule the chart
// ships (files/prometheus-adapter-values.yaml) the way the adapter does: its
// name rule must turn the gateway's gauge into the metric the operator's HPA
// asks for, and its metricsQuery, with the label matchers and grouping the
// adapter fills in for a Pods metric, must give each pod's own connection
// count (checked by promtool on sample series).
func TestPrometheusAdapterRule(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "files", "prometheus-adapter-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Rules struct {
			Default bool `json:"default"`
			Custom  []struct {
				SeriesQuery string `json:"seriesQuery"`
				Resources   struct {
					Overrides map[string]struct {
						Resource string `json:"resource"`
					} `json:"overrides"`
				} `json:"resources"`
				Name struct {
					Matches string `json:"matches"`
					As      string `json:"as"`
				} `json:"name"`
				MetricsQuery string `json:"metricsQuery"`
			} `json:"custom"`
		} `json:"rules"`
	}
	if err := yaml.UnmarshalStrict(b, &values); err != nil {
		t.Fatalf("prometheus-adapter-values.yaml: %v", err)
	}
	if len(values.Rules.Custom) != 1 {
		t.Fatalf("%d custom rules, want 1", len(values.Rules.Custom))
	}
	rule := values.Rules.Custom[0]

	// The metric the operator's HPA reads.
	hpa := gwspecs.HPA(&presencev1alpha1.PresenceGateway{Spec: presencev1alpha1.PresenceGatewaySpec{
		Autoscaling: &presencev1alpha1.AutoscalingSpec{MaxReplicas: 4, TargetConnectionsPerPod: ptr.To[int32](100)}}})
	var want string
	for _, m := range hpa.Spec.Metrics {
		if m.Pods != nil {
			want = m.Pods.Metric.Name
		}
	}
	series := strings.SplitN(rule.SeriesQuery, "{", 2)[0]
	name := regexp.MustCompile(rule.Name.Matches).ReplaceAllString(series, rule.Name.As)
	if name != want {
		t.Errorf("the adapter serves %s as %q, the HPA asks for %q", series, name, want)
	}
	for _, label := range []string{"namespace", "pod"} {
		if rule.Resources.Overrides[label].Resource != label {
			t.Errorf("label %s is not mapped to the %s resource: the adapter could not find a pod's series", label, label)
		}
	}

	// What the adapter sends Prometheus for the pods of one HPA.
	tmpl, err := template.New("metricsQuery").Delims("<<", ">>").Parse(rule.MetricsQuery)
	if err != nil {
		t.Fatal(err)
	}
	var q strings.Builder
	if err := tmpl.Execute(&q, map[string]string{
		"Series": series, "LabelMatchers": `namespace="chat",pod=~"chat-a|chat-b"`, "GroupBy": "pod",
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unit := `rule_files: []
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'presence_gateway_connections{namespace="chat",pod="chat-a",instance="10.0.0.1:9090"}'
        values: '120x5'
      - series: 'presence_gateway_connections{namespace="chat",pod="chat-b",instance="10.0.0.2:9090"}'
        values: '480x5'
      - series: 'presence_gateway_connections{namespace="other",pod="chat-a",instance="10.0.0.3:9090"}'
        values: '999x5'
    promql_expr_test:
      - expr: '` + q.String() + `'
        eval_time: 2m
        exp_samples:
          - labels: '{pod="chat-a"}'
            value: 120
          - labels: '{pod="chat-b"}'
            value: 480
`
	if err := os.WriteFile(filepath.Join(dir, "adapter_test.yaml"), []byte(unit), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Log(promtool(t, dir, "test", "rules", "adapter_test.yaml"))
}

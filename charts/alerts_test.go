package charts_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/presencekit/presence-operator/controllers"
	"github.com/presencekit/presence-operator/internal/needs"
)

// promtoolBin returns $PROMTOOL, else the bin/promtool-* that `make promtool`
// builds, failing with the make target to run when there is none.
func promtoolBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("PROMTOOL=%s: %v (run `make test-helm`, which builds it)", p, err)
		}
		return p
	}
	found, _ := filepath.Glob(filepath.Join("..", "bin", "promtool-v*"))
	if len(found) == 0 {
		needs.Missing(t, "needs promtool, not in bin/ (PROMTOOL): run `make test-helm`, which builds it and runs these tests")
	}
	sort.Strings(found)
	p, err := filepath.Abs(found[len(found)-1])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtoolBin(t), args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// alertRules renders the chart's PrometheusRule and returns its spec
// (the rule groups, in Prometheus' rule-file format) and its alerts.
func alertRules(t *testing.T) (spec map[string]any, alerts []map[string]any) {
	t.Helper()
	rule := one(t, render(t, "--set", "prometheusRule.enabled=true"), "PrometheusRule")
	spec, ok, err := unstructured.NestedMap(rule.Object, "spec")
	if !ok || err != nil {
		t.Fatalf("PrometheusRule without a spec: %v", err)
	}
	groups, _, _ := unstructured.NestedSlice(spec, "groups")
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			alerts = append(alerts, r.(map[string]any))
		}
	}
	if len(alerts) == 0 {
		t.Fatal("the PrometheusRule holds no alert")
	}
	return spec, alerts
}

// TestAlertRules checks the chart's alerts with Prometheus' own tool: the
// rules parse (`promtool check rules`), and each fires, with the labels and
// annotations it promises, exactly when testdata/alerts_test.yaml says
// (`promtool test rules`), which must test every alert.
func TestAlertRules(t *testing.T) {
	spec, alerts := alertRules(t)
	dir := t.TempDir()
	b, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("testdata", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Log(promtool(t, dir, "check", "rules", "rules.yaml"))
	t.Log(promtool(t, dir, "test", "rules", "alerts_test.yaml"))

	// promtool passes a unit test file that never mentions an alert: make
	// sure each one is tested firing.
	var unit struct {
		Tests []struct {
			AlertRuleTest []struct {
				AlertName string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &unit); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range unit.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			}
		}
	}
	for _, a := range alerts {
		if name, _ := a["alert"].(string); !fires[name] {
			t.Errorf("testdata/alerts_test.yaml never expects %s to fire", name)
		}
	}
}

// TestAlertsPointAtTheirRunbook: every alert has a runbook_url whose anchor is
// a heading of docs/operations.md, and queries only metrics that exist.
func TestAlertsPointAtTheirRunbook(t *testing.T) {
	_, alerts := alertRules(t)
	ops, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(ops), -1) {
		anchors[githubAnchor(m[1])] = true
	}
	gateway := gatewayMetricNames(t)
	operator := operatorMetricNames(t)
	for _, a := range alerts {
		name, _ := a["alert"].(string)
		ann, _ := a["annotations"].(map[string]any)
		url, _ := ann["runbook_url"].(string)
		_, anchor, ok := strings.Cut(url, "/docs/operations.md#")
		if !ok || !anchors[anchor] {
			t.Errorf("%s: runbook_url %q names no heading of docs/operations.md", name, url)
		}
		for _, key := range []string{"summary", "description"} {
			if s, _ := ann[key].(string); s == "" {
				t.Errorf("%s has no %s", name, key)
			}
		}
		expr, _ := a["expr"].(string)
		for _, m := range regexp.MustCompile(`presence_[a-z0-9_]+`).FindAllString(expr, -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if trimmed, ok := strings.CutSuffix(m, suffix); ok && gateway[trimmed] {
					base = trimmed
				}
			}
			if !gateway[base] && !operator[base] {
				t.Errorf("%s queries %s, which neither the gateway nor the operator exports", name, m)
			}
		}
	}
}

// githubAnchor is the fragment GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// operatorMetricNames: the series the operator adds to controller-runtime's.
func operatorMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	rec := &descRecorder{names: map[string]bool{}}
	if err := rec.Register(prometheus.Collector(&controllers.ConditionCollector{})); err != nil {
		t.Fatal(err)
	}
	return rec.names
}

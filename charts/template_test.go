package charts_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// sampleRedisSpec is the RedisCluster spec the tests give samples.enabled.
const sampleRedisSpec = `samples.redisCluster.spec={"external":{"nodes":["redis-0.redis:6379","redis-1.redis:6379"]}}`

// toggle is one way of installing the chart: the values a user sets and what
// the rendered objects must then show.
type toggle struct {
	name  string
	args  []string
	check func(t *testing.T, objs []*unstructured.Unstructured)
}

// toggles are the defaults and every optional value of the chart. The
// template, lint and server-side dry-run tests all run over them.
var toggles = []toggle{
	{name: "defaults", check: checkDefaults},
	{
		name: "crds.keep=false",
		args: []string{"--set", "crds.keep=false"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			crds := find(objs, "CustomResourceDefinition")
			if len(crds) != 2 {
				t.Fatalf("want the 2 CRDs, rendered %v", kinds(objs))
			}
			for _, crd := range crds {
				if _, ok := crd.GetAnnotations()["helm.sh/resource-policy"]; ok {
					t.Errorf("CRD %s has helm.sh/resource-policy with crds.keep=false", crd.GetName())
				}
			}
		},
	},
	{
		name: "crds.install=false",
		args: []string{"--set", "crds.install=false"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			if crds := find(objs, "CustomResourceDefinition"); len(crds) != 0 {
				t.Errorf("crds.install=false rendered CRDs: %v", kinds(crds))
			}
			one(t, objs, "Deployment")
		},
	},
	{
		name: "metrics.serviceMonitor",
		args: []string{"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.release=prometheus"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			sm := one(t, objs, "ServiceMonitor")
			if sm.GetLabels()["release"] != "prometheus" {
				t.Errorf("ServiceMonitor labels %v lack serviceMonitor.labels", sm.GetLabels())
			}
			svc := one(t, objs, "Service")
			selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
			for k, v := range selector {
				if svc.GetLabels()[k] != v {
					t.Errorf("ServiceMonitor selects %s=%s; the metrics Service has labels %v", k, v, svc.GetLabels())
				}
			}
			endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			if len(endpoints) != 1 || len(ports) != 1 ||
				endpoints[0].(map[string]any)["port"] != ports[0].(map[string]any)["name"] {
				t.Errorf("ServiceMonitor endpoints %v do not name the Service port %v", endpoints, ports)
			}
		},
	},
	{
		name: "dashboard",
		args: []string{"--set", "dashboard.enabled=true", "--set", "dashboard.namespace=monitoring", "--set", "dashboard.annotations.grafana_folder=Presence"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			cm := one(t, objs, "ConfigMap")
			if cm.GetLabels()["grafana_dashboard"] != "1" {
				t.Errorf("dashboard ConfigMap labels %v: want grafana_dashboard: \"1\" for the Grafana sidecar", cm.GetLabels())
			}
			if cm.GetNamespace() != "monitoring" || cm.GetAnnotations()["grafana_folder"] != "Presence" {
				t.Errorf("dashboard ConfigMap in %q with annotations %v: want dashboard.namespace and dashboard.annotations", cm.GetNamespace(), cm.GetAnnotations())
			}
			data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
			want, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "presence-gateway.json"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(data["presence-gateway.json"]) != strings.TrimSpace(string(want)) {
				t.Error("the ConfigMap's presence-gateway.json differs from dashboards/presence-gateway.json")
			}
			if !json.Valid([]byte(data["presence-gateway.json"])) {
				t.Error("the ConfigMap's presence-gateway.json is not JSON")
			}
		},
	},
	{
		name: "prometheusRule",
		args: []string{"--set", "prometheusRule.enabled=true", "--set", "prometheusRule.namespace=monitoring",
			"--set", "prometheusRule.labels.release=prometheus", "--set", "prometheusRule.notReadyFor=3m",
			"--set", "prometheusRule.runbookURL=https://wiki.example.test/presence/"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			rule := one(t, objs, "PrometheusRule")
			if rule.GetNamespace() != "monitoring" || rule.GetLabels()["release"] != "prometheus" {
				t.Errorf("PrometheusRule in %q with labels %v: want prometheusRule.namespace and .labels", rule.GetNamespace(), rule.GetLabels())
			}
			groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
			notReady := 0
			for _, g := range groups {
				rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
				for _, r := range rules {
					r := r.(map[string]any)
					url, _, _ := unstructured.NestedString(r, "annotations", "runbook_url")
					if !strings.HasPrefix(url, "https://wiki.example.test/presence#") {
						t.Errorf("%s: runbook_url %q does not follow prometheusRule.runbookURL", r["alert"], url)
					}
					if strings.HasSuffix(r["alert"].(string), "NotReady") {
						notReady++
						if r["for"] != "3m" {
							t.Errorf("%s: for %v, want prometheusRule.notReadyFor", r["alert"], r["for"])
						}
					}
				}
			}
			if notReady != 2 {
				t.Errorf("want the gateway and RedisCluster not-ready alerts, found %d", notReady)
			}
		},
	},
	{
		name: "samples",
		args: []string{"--set", "samples.enabled=true", "--set-json", sampleRedisSpec, "--set", "samples.presenceGateway.name=chat", "--set", "samples.presenceGateway.spec.replicas=3"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			rc := one(t, objs, "RedisCluster")
			gw := one(t, objs, "PresenceGateway")
			for _, o := range []*unstructured.Unstructured{rc, gw} {
				if o.GetAnnotations()["helm.sh/hook"] != "post-install" {
					t.Errorf("%s/%s is not a post-install hook (annotations %v): helm install would fail before its CRD exists",
						o.GetKind(), o.GetName(), o.GetAnnotations())
				}
				if o.GetNamespace() != releaseNS {
					t.Errorf("%s/%s in namespace %q, want the release namespace", o.GetKind(), o.GetName(), o.GetNamespace())
				}
			}
			nodes, _, _ := unstructured.NestedStringSlice(rc.Object, "spec", "external", "nodes")
			if !slices.Equal(nodes, []string{"redis-0.redis:6379", "redis-1.redis:6379"}) {
				t.Errorf("RedisCluster spec.external.nodes = %v", nodes)
			}
			ref, _, _ := unstructured.NestedString(gw.Object, "spec", "redis", "clusterRef", "name")
			replicas := nestedNumber(gw, "spec", "replicas")
			if gw.GetName() != "chat" || ref != rc.GetName() || replicas != 3 {
				t.Errorf("PresenceGateway %s: clusterRef %q (want %q), replicas %v (want 3)", gw.GetName(), ref, rc.GetName(), replicas)
			}
		},
	},
	{
		name: "watchNamespaces",
		args: []string{"--set", "watchNamespaces={team-a,team-b}"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			c := operatorContainer(t, one(t, objs, "Deployment"))
			if !slices.Contains(c.Args, "--watch-namespaces=team-a,team-b") {
				t.Errorf("operator args %v lack --watch-namespaces=team-a,team-b", c.Args)
			}
			if cr := named(objs, "ClusterRole", releaseName); cr != nil {
				t.Errorf("watchNamespaces still renders the operator's ClusterRole %s", cr.GetName())
			}
			generated := readYAML(t, filepath.Join("..", "config", "rbac", "role.yaml"))["rules"]
			for _, ns := range []string{"team-a", "team-b"} {
				role, binding := namedIn(objs, "Role", releaseName, ns), namedIn(objs, "RoleBinding", releaseName, ns)
				if role == nil || binding == nil {
					t.Fatalf("no Role and RoleBinding %s in namespace %s: %v", releaseName, ns, kinds(objs))
				}
				rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
				if !reflect.DeepEqual(any(rules), generated) {
					t.Errorf("Role %s/%s rules differ from config/rbac/role.yaml", ns, role.GetName())
				}
				subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
				if len(subjects) != 1 || subjects[0].(map[string]any)["namespace"] != releaseNS {
					t.Errorf("RoleBinding %s/%s subjects %v: want the operator's ServiceAccount in %s", ns, binding.GetName(), subjects, releaseNS)
				}
			}
		},
	},
	{
		name: "image digests",
		args: []string{"--set", "image.digest=sha256:" + strings.Repeat("a", 64), "--set", "gatewayImage.digest=sha256:" + strings.Repeat("b", 64)},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			c := operatorContainer(t, one(t, objs, "Deployment"))
			if want := "ghcr.io/presencekit/presence-operator@sha256:" + strings.Repeat("a", 64); c.Image != want {
				t.Errorf("operator image %s, want %s", c.Image, want)
			}
			if want := "--gateway-image=ghcr.io/presencekit/presence-gateway@sha256:" + strings.Repeat("b", 64); !slices.Contains(c.Args, want) {
				t.Errorf("operator args %v lack %s", c.Args, want)
			}
		},
	},
	{
		name: "metrics.secure=false",
		args: []string{"--set", "metrics.secure=false", "--set", "metrics.serviceMonitor.enabled=true", "--set", "podDisruptionBudget.enabled=false"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			c := operatorContainer(t, one(t, objs, "Deployment"))
			if !slices.Contains(c.Args, "--metrics-secure=false") {
				t.Errorf("operator args %v lack --metrics-secure=false", c.Args)
			}
			for _, name := range []string{releaseName + "-metrics-auth", releaseName + "-metrics-reader"} {
				if named(objs, "ClusterRole", name) != nil {
					t.Errorf("metrics.secure=false still renders ClusterRole %s", name)
				}
			}
			endpoints, _, _ := unstructured.NestedSlice(one(t, objs, "ServiceMonitor").Object, "spec", "endpoints")
			if scheme := endpoints[0].(map[string]any)["scheme"]; scheme != nil {
				t.Errorf("ServiceMonitor scheme %v with metrics.secure=false", scheme)
			}
			if pdbs := find(objs, "PodDisruptionBudget"); len(pdbs) != 0 {
				t.Errorf("podDisruptionBudget.enabled=false rendered %v", kinds(pdbs))
			}
		},
	},
	{
		name: "crds.install=false NOTES",
		args: []string{"--set", "crds.install=false"},
		check: func(t *testing.T, _ []*unstructured.Unstructured) {
			notes := mustHelm(t, "", "install", releaseName, chartDir, "--namespace", releaseNS, "--dry-run=client", "--set", "crds.install=false")
			// The notes of a chart installed from a repository cannot point
			// at files of this git repository.
			for _, checkoutOnly := range []string{"config/", "-k config", "hack/", "charts/"} {
				if strings.Contains(notes, checkoutOnly) {
					t.Errorf("install notes refer to %q, which exists only in a git checkout:\n%s", checkoutOnly, notes)
				}
			}
			if !strings.Contains(notes, "--show-only templates/crds.yaml") {
				t.Errorf("install notes with crds.install=false do not say how to install the CRDs:\n%s", notes)
			}
		},
	},
	{
		name: "operator knobs",
		args: []string{"--set", "replicaCount=2", "--set", "gatewayImage.tag=9.9.9", "--set", "leaderElection.enabled=false",
			"--set", "extraArgs={--zap-log-level=debug}", "--set", "image.tag=1.2.3", "--set", "maxConcurrentRollouts=3",
			"--set", "kubeAPI.qps=120", "--set", "kubeAPI.burst=240"},
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			dep := one(t, objs, "Deployment")
			if r := nestedNumber(dep, "spec", "replicas"); r != 2 {
				t.Errorf("replicas = %v, want replicaCount 2", r)
			}
			c := operatorContainer(t, dep)
			for _, arg := range []string{"--gateway-image=ghcr.io/presencekit/presence-gateway:9.9.9", "--leader-elect=false", "--zap-log-level=debug",
				"--max-concurrent-rollouts=3", "--kube-api-qps=120", "--kube-api-burst=240"} {
				if !slices.Contains(c.Args, arg) {
					t.Errorf("operator args %v lack %s", c.Args, arg)
				}
			}
			if c.Image != "ghcr.io/presencekit/presence-operator:1.2.3" {
				t.Errorf("operator image %s, want image.tag 1.2.3", c.Image)
			}
			if roles := find(objs, "Role"); len(roles) != 0 {
				t.Errorf("leader election off but the leader-election Role is rendered: %v", kinds(roles))
			}
		},
	},
}

// TestTemplate renders the chart with each toggle and checks what a user of
// that toggle relies on.
func TestTemplate(t *testing.T) {
	helmBin(t) // skip once, not in every subtest
	for _, tc := range toggles {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.args...)
			for _, o := range objs {
				if o.GetAPIVersion() == "" || o.GetKind() == "" || o.GetName() == "" {
					t.Errorf("rendered object without apiVersion, kind or name: %v", o.Object)
				}
			}
			tc.check(t, objs)
		})
	}
}

// TestLint runs `helm lint --strict` with each toggle.
func TestLint(t *testing.T) {
	helmBin(t) // skip once, not in every subtest
	for _, tc := range toggles {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", chartDir, "--namespace", releaseNS}, tc.args...)
			mustHelm(t, "", args...)
		})
	}
}

// checkDefaults checks the default install: the CRDs (kept on uninstall),
// the operator Deployment as the operator's flags want it, RBAC, the metrics
// Service, and nothing optional.
func checkDefaults(t *testing.T, objs []*unstructured.Unstructured) {
	for _, kind := range []string{"ServiceAccount", "Role", "RoleBinding", "Service", "Deployment", "PodDisruptionBudget"} {
		one(t, objs, kind)
	}
	for _, cr := range []struct{ kind, name string }{
		{"ClusterRole", releaseName}, {"ClusterRoleBinding", releaseName},
		{"ClusterRole", releaseName + "-metrics-auth"}, {"ClusterRoleBinding", releaseName + "-metrics-auth"},
		{"ClusterRole", releaseName + "-metrics-reader"},
	} {
		if named(objs, cr.kind, cr.name) == nil {
			t.Errorf("no %s %s: %v", cr.kind, cr.name, kinds(objs))
		}
	}
	for _, kind := range []string{"ServiceMonitor", "ConfigMap", "RedisCluster", "PresenceGateway"} {
		if found := find(objs, kind); len(found) != 0 {
			t.Errorf("optional %s rendered by default: %v", kind, kinds(found))
		}
	}

	crds := find(objs, "CustomResourceDefinition")
	if len(crds) != 2 {
		t.Errorf("want the PresenceGateway and RedisCluster CRDs, rendered %v", kinds(crds))
	}
	for _, crd := range crds {
		if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s lacks helm.sh/resource-policy: keep (crds.keep defaults to true)", crd.GetName())
		}
	}

	dep := one(t, objs, "Deployment")
	if r := nestedNumber(dep, "spec", "replicas"); r != 1 {
		t.Errorf("operator replicas = %v, want replicaCount's default 1", r)
	}
	c := operatorContainer(t, dep)
	version := appVersion(t)
	for _, arg := range []string{
		"--leader-elect=true",
		"--metrics-bind-address=:8443",
		"--metrics-secure=true",
		"--health-probe-bind-address=:8081",
		"--zap-log-level=info",
		"--redis-check-interval=30s",
		"--redis-check-timeout=3s",
		"--redis-check-heartbeat=5m",
		"--max-concurrent-reconciles-presencegateway=16",
		"--max-concurrent-reconciles-rediscluster=8",
		"--max-concurrent-rollouts=1",
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		"--gateway-image=ghcr.io/presencekit/presence-gateway:" + version,
	} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("operator args %v lack %s", c.Args, arg)
		}
	}
	if want := "ghcr.io/presencekit/presence-operator:" + version; c.Image != want {
		t.Errorf("operator image %s, want %s", c.Image, want)
	}
	for _, p := range []struct {
		name string
		got  *probe
		path string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.got == nil || p.got.HTTPGet.Path != p.path || c.portNumber(p.got.HTTPGet.Port) != 8081 {
			t.Errorf("%s probe %+v: want GET %s on port 8081", p.name, p.got, p.path)
		}
	}
	if c.portNumber("metrics") != 8443 {
		t.Errorf("container ports %+v: want metrics on 8443", c.Ports)
	}
	for _, arg := range c.Args {
		if strings.HasPrefix(arg, "--watch-namespaces") {
			t.Errorf("operator args %v: %s by default, want every namespace", c.Args, arg)
		}
	}
	sc := c.SecurityContext
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("operator securityContext %+v: want a read-only root filesystem and no privilege escalation", sc)
	}
	if nonRoot, _, _ := unstructured.NestedBool(dep.Object, "spec", "template", "spec", "securityContext", "runAsNonRoot"); !nonRoot {
		t.Error("operator pod securityContext lacks runAsNonRoot: true")
	}

	// The ClusterRole carries exactly the rules controller-gen generated.
	rules, _, _ := unstructured.NestedSlice(named(objs, "ClusterRole", releaseName).Object, "rules")
	generated := readYAML(t, filepath.Join("..", "config", "rbac", "role.yaml"))["rules"]
	if !reflect.DeepEqual(any(rules), generated) {
		t.Errorf("ClusterRole rules differ from config/rbac/role.yaml (run `make helm-crds`):\n got %v\nwant %v", rules, generated)
	}

	// The CRDs are config/crd/bases with only labels and the keep policy added.
	for _, crd := range crds {
		path := filepath.Join("..", "config", "crd", "bases", generatedCRDFile(crd))
		want := readYAML(t, path)
		got := crd.DeepCopy().Object
		meta := got["metadata"].(map[string]any)
		delete(meta, "labels")
		if ann, ok := meta["annotations"].(map[string]any); ok {
			delete(ann, "helm.sh/resource-policy")
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("rendered CRD %s differs from %s beyond labels and the keep policy", crd.GetName(), path)
		}
	}
}

// nestedNumber reads a number of a rendered object (YAML numbers decode as
// float64), or -1 when the field is missing.
func nestedNumber(o *unstructured.Unstructured, fields ...string) float64 {
	v, ok, _ := unstructured.NestedFieldNoCopy(o.Object, fields...)
	if n, isNumber := v.(float64); ok && isNumber {
		return n
	}
	return -1
}

// generatedCRDFile is controller-gen's file name for a CRD: <group>_<plural>.yaml.
func generatedCRDFile(crd *unstructured.Unstructured) string {
	plural, group, _ := strings.Cut(crd.GetName(), ".")
	return group + "_" + plural + ".yaml"
}

// container is the part of a rendered container the tests read.
type container struct {
	Image string   `json:"image"`
	Args  []string `json:"args"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	LivenessProbe   *probe `json:"livenessProbe"`
	ReadinessProbe  *probe `json:"readinessProbe"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
	} `json:"securityContext"`
}

type probe struct {
	HTTPGet struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
}

// portNumber resolves a probe port (a number or a container port name).
func (c container) portNumber(port any) int {
	switch p := port.(type) {
	case float64:
		return int(p)
	case int64:
		return int(p)
	case string:
		for _, cp := range c.Ports {
			if cp.Name == p {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

// operatorContainer decodes the operator Deployment's only container.
func operatorContainer(t *testing.T, dep *unstructured.Unstructured) container {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("operator Deployment has %d containers, want 1", len(containers))
	}
	b, err := json.Marshal(containers[0])
	if err != nil {
		t.Fatal(err)
	}
	var c container
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestValuesSchemaRejectsBadValues checks that values.schema.json (or the
// templates' own checks) turn a bad value into an error naming it, instead of
// a chart that renders something else.
func TestValuesSchemaRejectsBadValues(t *testing.T) {
	helmBin(t) // skip once, not in every subtest
	for _, tc := range []struct {
		name string
		args []string
		want string // in helm's error
	}{
		{"replicaCount a string", []string{"--set-string", "replicaCount=two"}, "replicaCount"},
		{"replicaCount negative", []string{"--set", "replicaCount=-1"}, "replicaCount"},
		{"misspelled key", []string{"--set", "crds.instal=true"}, "instal"},
		{"unknown top-level key", []string{"--set", "replicas=2"}, "replicas"},
		{"crds.keep a string", []string{"--set-string", "crds.keep=yes"}, "keep"},
		{"port out of range", []string{"--set", "metrics.port=70000"}, "port"},
		{"unknown pull policy", []string{"--set", "image.pullPolicy=Sometimes"}, "pullPolicy"},
		{"bad scrape interval", []string{"--set", "metrics.serviceMonitor.interval=often"}, "interval"},
		{"bad check interval", []string{"--set", "redisCheck.interval=often"}, "interval"},
		{"bad namespace", []string{"--set", "watchNamespaces={Team_A}"}, "watchNamespaces"},
		{"bad digest", []string{"--set", "image.digest=latest"}, "digest"},
		{"bad log level", []string{"--set", "logLevel=loud"}, "logLevel"},
		{"zero workers", []string{"--set", "maxConcurrentReconciles.redisCluster=0"}, "redisCluster"},
		{"negative rollouts", []string{"--set", "maxConcurrentRollouts=-1"}, "maxConcurrentRollouts"},
		{"samples without a Redis spec", []string{"--set", "samples.enabled=true"}, "samples.redisCluster.spec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"template", releaseName, chartDir, "--namespace", releaseNS}, tc.args...)
			_, err := runHelm(t, "", args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded; want an error naming %q", tc.args, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template %v failed without naming %q:\n%v", tc.args, tc.want, err)
			}
		})
	}
}

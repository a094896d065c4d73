package charts_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/presencekit/presence-operator/internal/poll"
)

// TestRenderedObjectsApplyToAPIServer server-side dry-runs what each toggle
// renders against a real API server, so that a field the API does not know,
// a wrong type or a custom resource its CRD rejects fails here rather than at
// a user's `helm install`.
func TestRenderedObjectsApplyToAPIServer(t *testing.T) {
	api := startAPIServer(t)
	api.createNamespace(t, releaseNS)
	api.createNamespace(t, "monitoring") // the dashboard toggle's dashboard.namespace
	api.createNamespace(t, "team-a")     // the watchNamespaces toggle's
	api.createNamespace(t, "team-b")

	// Custom resources (the samples, the ServiceMonitor, the PrometheusRule)
	// validate against their CRDs, so those are created for real first.
	crds := append(find(render(t), "CustomResourceDefinition"), monitoringCRDs(t, "servicemonitors", "prometheusrules")...)
	if err := api.apply(crds, false); err != nil {
		t.Fatal(err)
	}
	api.waitEstablished(t, crds)

	for _, tc := range toggles {
		t.Run(tc.name, func(t *testing.T) {
			if err := api.apply(render(t, tc.args...), true); err != nil {
				t.Fatalf("the API server rejects what %s renders: %v", tc.name, err)
			}
		})
	}

	// The resources the install notes and the README tell users to apply
	// are valid for the CRDs the chart installs.
	t.Run("the NOTES and README examples", func(t *testing.T) {
		api.createNamespace(t, "chat")
		notes := mustHelm(t, "", "install", releaseName, chartDir, "--namespace", releaseNS, "--dry-run=client")
		readme, err := os.ReadFile(filepath.Join("..", "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		for source, text := range map[string]string{"NOTES.txt": notes, "README.md": string(readme)} {
			examples := heredocObjects(t, text)
			if len(find(examples, "RedisCluster")) == 0 || len(find(examples, "PresenceGateway")) == 0 {
				t.Errorf("%s shows no RedisCluster and PresenceGateway to apply: %v", source, kinds(examples))
			}
			for _, o := range examples {
				o.SetNamespace("chat")
			}
			if err := api.apply(examples, true); err != nil {
				t.Errorf("the example in %s is rejected: %v", source, err)
			}
		}
	})

	// The dry run is a real check: an object with a field its schema lacks
	// is rejected, for built-in kinds and the chart's CRDs alike.
	t.Run("a schema error fails", func(t *testing.T) {
		samples := render(t, "--set", "samples.enabled=true", "--set-json", sampleRedisSpec)
		dep := one(t, samples, "Deployment").DeepCopy()
		_ = unstructured.SetNestedField(dep.Object, "true", "spec", "paused") // a string where the API wants a boolean
		gw := one(t, samples, "PresenceGateway").DeepCopy()
		_ = unstructured.SetNestedField(gw.Object, int64(1), "spec", "noSuchField")
		for _, bad := range []*unstructured.Unstructured{dep, gw} {
			err := api.apply([]*unstructured.Unstructured{bad}, true)
			if err == nil {
				t.Errorf("the API server accepted a broken %s: the dry run would not catch a template error", bad.GetKind())
			}
			t.Logf("rejected as it should be: %v", err)
		}
	})
}

// TestHelmInstallUpgradeUninstall runs the README's lifecycle with the real
// helm against a real API server: install (with every optional object), the
// objects exist; upgrade, the CRDs follow the chart; uninstall, crds.keep
// decides whether the CRDs and the custom resources stay.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	api := startAPIServer(t)
	// The ServiceMonitor and PrometheusRule toggles need prometheus-operator's CRDs.
	smCRD := monitoringCRDs(t, "servicemonitors", "prometheusrules")
	if err := api.apply(smCRD, false); err != nil {
		t.Fatal(err)
	}
	api.waitEstablished(t, smCRD)

	install := []string{"install", releaseName, chartDir, "--namespace", releaseNS, "--create-namespace",
		"--set", "samples.enabled=true", "--set-json", sampleRedisSpec, "--set", "samples.presenceGateway.name=chat",
		"--set", "dashboard.enabled=true", "--set", "metrics.serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true"}
	notes := mustHelm(t, api.kubeconfig, install...)
	if want := "kubectl -n " + releaseNS + " wait --for=condition=Ready pgw/chat"; !strings.Contains(notes, want) {
		t.Errorf("install notes do not say how to wait for the gateway (%q):\n%s", want, notes)
	}

	// Every object of the release exists.
	manifest := decodeObjects(t, mustHelm(t, api.kubeconfig, "get", "manifest", releaseName, "--namespace", releaseNS))
	for _, kind := range []string{"CustomResourceDefinition", "Deployment", "ServiceAccount", "ClusterRole", "ServiceMonitor", "PrometheusRule", "ConfigMap"} {
		if len(find(manifest, kind)) == 0 {
			t.Errorf("the release has no %s: %v", kind, kinds(manifest))
		}
	}
	for _, o := range manifest {
		if _, err := api.get(o); err != nil {
			t.Errorf("after helm install: %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	crds := find(manifest, "CustomResourceDefinition")
	checkOperatorPermissions(t, api)

	// The samples were created after the CRDs, by the post-install hooks.
	rendered := render(t, "--set", "samples.enabled=true", "--set-json", sampleRedisSpec, "--set", "samples.presenceGateway.name=chat")
	samples := append(find(rendered, "RedisCluster"), find(rendered, "PresenceGateway")...)
	uids := map[string]string{}
	for _, s := range samples {
		live, err := api.get(s)
		if err != nil {
			t.Fatalf("sample %s/%s after install: %v", s.GetKind(), s.GetName(), err)
		}
		uids[s.GetKind()] = string(live.GetUID())
	}

	// Upgrade to a newer chart: the CRDs are upgraded with it (a crds/
	// folder would be left as first installed), the Deployment follows the
	// new values, and the samples are left alone.
	newer := copyChart(t, "0.1.1-upgrade-test")
	mustHelm(t, api.kubeconfig, "upgrade", releaseName, newer, "--namespace", releaseNS, "--reuse-values", "--set", "replicaCount=2")
	for _, crd := range crds {
		live, err := api.get(crd)
		if err != nil {
			t.Fatal(err)
		}
		if got := live.GetLabels()["helm.sh/chart"]; got != "presence-operator-0.1.1-upgrade-test" {
			t.Errorf("after helm upgrade, CRD %s is labelled helm.sh/chart=%s: the CRDs did not follow the chart", crd.GetName(), got)
		}
	}
	dep, err := api.get(one(t, manifest, "Deployment"))
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); r != 2 {
		t.Errorf("after helm upgrade --set replicaCount=2, the Deployment has %d replicas", r)
	}
	for _, s := range samples {
		live, err := api.get(s)
		if err != nil || string(live.GetUID()) != uids[s.GetKind()] {
			t.Errorf("helm upgrade replaced or deleted sample %s/%s (err %v): it must leave it alone", s.GetKind(), s.GetName(), err)
		}
	}

	// Handing the CRDs over to something else (crds.install=false) with
	// crds.keep leaves them and the custom resources in place.
	mustHelm(t, api.kubeconfig, "upgrade", releaseName, newer, "--namespace", releaseNS, "--reuse-values", "--set", "crds.install=false")
	for _, o := range append(crds, samples...) {
		if _, err := api.get(o); err != nil {
			t.Errorf("crds.keep: after helm upgrade --set crds.install=false, %s %s: %v, want it kept", o.GetKind(), o.GetName(), err)
		}
	}

	// Uninstall with crds.keep (the default): the operator goes, the CRDs
	// and every custom resource stay.
	mustHelm(t, api.kubeconfig, "uninstall", releaseName, "--namespace", releaseNS)
	if _, err := api.get(dep); !apierrors.IsNotFound(err) {
		t.Errorf("after helm uninstall, the operator Deployment: %v, want NotFound", err)
	}
	for _, o := range append(crds, samples...) {
		if _, err := api.get(o); err != nil {
			t.Errorf("crds.keep: after helm uninstall, %s %s: %v, want it kept", o.GetKind(), o.GetName(), err)
		}
	}

	// Install again with crds.keep=false: the kept CRDs are adopted by the
	// new release, and its uninstall deletes them, and with them every
	// PresenceGateway and RedisCluster.
	mustHelm(t, api.kubeconfig, "install", releaseName, chartDir, "--namespace", releaseNS, "--set", "crds.keep=false")
	mustHelm(t, api.kubeconfig, "uninstall", releaseName, "--namespace", releaseNS)
	for _, crd := range crds {
		poll.Eventually(t, time.Minute, "crds.keep=false: CRD "+crd.GetName()+" gone after helm uninstall", func() (bool, string) {
			_, err := api.get(crd)
			if err == nil {
				return false, "it still exists"
			}
			return apierrors.IsNotFound(err), err.Error()
		})
	}
}

// copyChart copies the chart to a temporary directory with another version,
// as a newer release of it would be.
func copyChart(t *testing.T, version string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), chartDir)
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	chartYAML := filepath.Join(dir, "Chart.yaml")
	b, err := os.ReadFile(chartYAML)
	if err != nil {
		t.Fatal(err)
	}
	b = regexp.MustCompile(`(?m)^version: .*$`).ReplaceAll(b, []byte("version: "+version))
	if err := os.WriteFile(chartYAML, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// heredocObjects decodes the YAML of every `kubectl apply ... <<'YAML'`
// here-document in text.
func heredocObjects(t *testing.T, text string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, m := range regexp.MustCompile(`(?s)<<'YAML'\n(.*?)\nYAML\n`).FindAllStringSubmatch(text, -1) {
		objs = append(objs, decodeObjects(t, m[1])...)
	}
	return objs
}

// checkOperatorPermissions asks the API server's RBAC authorizer what the
// installed operator's ServiceAccount may do: every rule controller-gen
// generated (cluster-wide) and leader election in the release namespace, and
// no more than that.
func checkOperatorPermissions(t *testing.T, api *apiServer) {
	t.Helper()
	type access struct {
		namespace, group, resource, verb string
	}
	var allowed []access
	rules, _ := readYAML(t, filepath.Join("..", "config", "rbac", "role.yaml"))["rules"].([]any)
	if len(rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	for _, r := range rules {
		rule := r.(map[string]any)
		for _, g := range rule["apiGroups"].([]any) {
			for _, res := range rule["resources"].([]any) {
				for _, v := range rule["verbs"].([]any) {
					allowed = append(allowed, access{"", g.(string), res.(string), v.(string)})
				}
			}
		}
	}
	for _, v := range []string{"get", "create", "update"} {
		allowed = append(allowed, access{releaseNS, "coordination.k8s.io", "leases", v})
	}
	allowed = append(allowed, access{releaseNS, "", "events", "create"})
	// metrics.secure: the operator reviews the tokens and access of scrapers.
	allowed = append(allowed, access{"", "authentication.k8s.io", "tokenreviews", "create"},
		access{"", "authorization.k8s.io", "subjectaccessreviews", "create"})
	denied := []access{
		{"", "", "namespaces", "delete"},
		{"", "rbac.authorization.k8s.io", "clusterroles", "create"},
		{"default", "coordination.k8s.io", "leases", "update"}, // leader election only in its own namespace
	}

	can := func(a access) bool { return operatorCan(t, api, a.namespace, a.group, a.resource, a.verb) }
	for _, a := range allowed {
		if !can(a) {
			t.Errorf("the operator's ServiceAccount may not %s %s (group %q) in namespace %q: the chart's RBAC does not grant what it needs", a.verb, a.resource, a.group, a.namespace)
		}
	}
	for _, a := range denied {
		if can(a) {
			t.Errorf("the operator's ServiceAccount may %s %s (group %q) in namespace %q: more than it needs", a.verb, a.resource, a.group, a.namespace)
		}
	}
}

// operatorCan asks the API server's authorizer (SubjectAccessReview)
// whether the release's operator ServiceAccount may verb resource.
func operatorCan(t *testing.T, api *apiServer, namespace, group, resource, verb string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   "system:serviceaccount:" + releaseNS + ":" + releaseName,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNS, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: namespace, Group: group, Resource: resource, Verb: verb,
		},
	}}
	if err := api.client.Create(context.Background(), sar); err != nil {
		t.Fatalf("SubjectAccessReview %s %s/%s in %q: %v", verb, group, resource, namespace, err)
	}
	return sar.Status.Allowed
}

// TestNamespacedRBAC installs the RBAC that watchNamespaces renders and
// asks the API server's authorizer what the operator may do: everything it
// needs in the listed namespaces, nothing elsewhere and nothing cluster-wide
// (what a team without cluster rights can install).
func TestNamespacedRBAC(t *testing.T) {
	api := startAPIServer(t)
	for _, ns := range []string{releaseNS, "team-a", "team-b", "elsewhere"} {
		api.createNamespace(t, ns)
	}
	objs := render(t, "--set", "watchNamespaces={team-a,team-b}", "--set", "crds.install=false", "--set", "metrics.secure=false")
	var rbac []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			rbac = append(rbac, o)
		}
	}
	if crs := append(find(rbac, "ClusterRole"), find(rbac, "ClusterRoleBinding")...); len(crs) != 0 {
		t.Errorf("watchNamespaces with metrics.secure=false renders cluster-wide RBAC: %v", kinds(crs))
	}
	if err := api.apply(rbac, false); err != nil {
		t.Fatal(err)
	}

	rules, _ := readYAML(t, filepath.Join("..", "config", "rbac", "role.yaml"))["rules"].([]any)
	for _, r := range rules {
		rule := r.(map[string]any)
		for _, g := range rule["apiGroups"].([]any) {
			for _, res := range rule["resources"].([]any) {
				for _, v := range rule["verbs"].([]any) {
					group, resource, verb := g.(string), res.(string), v.(string)
					for _, ns := range []string{"team-a", "team-b"} {
						if !operatorCan(t, api, ns, group, resource, verb) {
							t.Errorf("watchNamespaces: the operator may not %s %s (group %q) in %s", verb, resource, group, ns)
						}
					}
					if operatorCan(t, api, "elsewhere", group, resource, verb) {
						t.Errorf("watchNamespaces: the operator may %s %s (group %q) in a namespace it does not watch", verb, resource, group)
					}
					if operatorCan(t, api, "", group, resource, verb) {
						t.Errorf("watchNamespaces: the operator may %s %s (group %q) cluster-wide", verb, resource, group)
					}
				}
			}
		}
	}
}

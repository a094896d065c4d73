package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// templateJSON is a gateway Deployment as kubectl prints it, with what the
// operator puts in the pod template: ports, a fieldRef, a secretKeyRef, and
// ConfigMap, Secret (one key, renamed) and emptyDir volumes.
const templateJSON = `{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "chat", "namespace": "chat"},
  "spec": {"template": {"spec": {
    "containers": [{
      "name": "gateway",
      "image": "ghcr.io/presencekit/presence-gateway:1",
      "args": ["--log-format=text", "--ws-port=8080", "--metrics-port", "9090", "--other=8080x", "--tls-ca=/etc/presence/redis/ca.pem"],
      "env": [
        {"name": "WS_PORT", "value": "8080"},
        {"name": "METRICS_PORT", "value": "9090"},
        {"name": "REDIS_NODES_FILE", "value": "/etc/presence/redis-nodes/nodes"},
        {"name": "REDIS_PASSWORD_FILE", "value": "/etc/presence/redis/password"},
        {"name": "AUTH_JWT_SECRET_FILE", "value": "/etc/presence/jwt/secret"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TEAM", "valueFrom": {"configMapKeyRef": {"name": "chat-redis-nodes", "key": "team", "optional": true}}}
      ],
      "ports": [{"name": "ws", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
      "readinessProbe": {"httpGet": {"path": "/readyz", "port": "ws"}},
      "volumeMounts": [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "redis-nodes", "mountPath": "/etc/presence/redis-nodes", "readOnly": true},
        {"name": "redis-auth", "mountPath": "/etc/presence/redis", "readOnly": true},
        {"name": "jwt", "mountPath": "/etc/presence/jwt", "readOnly": true}
      ]
    }],
    "volumes": [
      {"name": "tmp", "emptyDir": {}},
      {"name": "redis-nodes", "configMap": {"name": "chat-redis-nodes", "defaultMode": 292}},
      {"name": "redis-auth", "secret": {"secretName": "redis-auth", "defaultMode": 288}},
      {"name": "jwt", "secret": {"secretName": "jwt", "items": [{"key": "hs256", "path": "secret"}], "defaultMode": 288}}
    ]
  }}}
}`

// objectsJSON is `kubectl get configmaps,secrets -o json` for it.
const objectsJSON = `{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "chat-redis-nodes", "namespace": "chat"},
   "data": {"nodes": "redis-0.redis.chat.svc:6379\nredis-1.redis.chat.svc:6379\n"}},
  {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "redis-auth", "namespace": "chat"},
   "data": {"password": "czNjcmV0"}},
  {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "jwt", "namespace": "chat"},
   "data": {"hs256": "and0LWtleQ==", "other": "bm90LW1vdW50ZWQ="}}
]}`

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func fixture(t *testing.T, deployment, objects string) (*deploymentFixture, string) {
	t.Helper()
	d, err := readDeployment(writeTemp(t, "deploy.json", deployment))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := readObjects(writeTemp(t, "objects.json", objects))
	if err != nil {
		t.Fatal(err)
	}
	c, err := pickContainer(d, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	return &deploymentFixture{d: d, c: c, objs: objs}, t.TempDir()
}

type deploymentFixture struct {
	d    *appsv1.Deployment
	c    *corev1.Container
	objs podObjects
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPodEnvResolvesValuesAndReferences(t *testing.T) {
	f, _ := fixture(t, templateJSON, objectsJSON)
	env, err := podEnv(f.d, f.c, f.objs, "chat-local-1")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"POD_NAME": "chat-local-1", "POD_NAMESPACE": "chat", "WS_PORT": "8080",
		"REDIS_NODES_FILE": "/etc/presence/redis-nodes/nodes",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	if _, ok := env["TEAM"]; ok {
		t.Error("an optional configMapKeyRef to a missing key must leave the variable unset")
	}

	withSecretRef := strings.Replace(templateJSON, `{"name": "WS_PORT", "value": "8080"}`,
		`{"name": "AUTH_JWT_SECRET", "valueFrom": {"secretKeyRef": {"name": "jwt", "key": "hs256"}}}`, 1)
	f, _ = fixture(t, withSecretRef, objectsJSON)
	if env, err := podEnv(f.d, f.c, f.objs, "x"); err != nil || env["AUTH_JWT_SECRET"] != "jwt-key" {
		t.Fatalf("secretKeyRef: %q, %v; want the Secret's value", env["AUTH_JWT_SECRET"], err)
	}
	f, _ = fixture(t, withSecretRef, `{"kind": "List", "items": []}`)
	if _, err := podEnv(f.d, f.c, f.objs, "x"); err == nil || !strings.Contains(err.Error(), "AUTH_JWT_SECRET") {
		t.Fatalf("err = %v, want an error naming AUTH_JWT_SECRET", err)
	}
}

// The volumes are written where the env and args now point: the ConfigMap's
// keys, the whole auth Secret, only the jwt Secret's projected key under
// its path, with the template's modes; an update replaces the files behind
// the same paths (a new inode, as the kubelet's symlink swap makes).
func TestVolumesAreWrittenAndPathsRewritten(t *testing.T) {
	f, dir := fixture(t, templateJSON, objectsJSON)
	mounts, err := writeVolumes(f.d, f.c, f.objs, dir)
	if err != nil {
		t.Fatal(err)
	}
	nodes := rewritePaths("/etc/presence/redis-nodes/nodes", mounts)
	if nodes != filepath.Join(dir, "redis-nodes", "nodes") {
		t.Fatalf("REDIS_NODES_FILE rewritten to %q", nodes)
	}
	if got := readFile(t, nodes); got != "redis-0.redis.chat.svc:6379\nredis-1.redis.chat.svc:6379\n" {
		t.Errorf("nodes file: %q", got)
	}
	if got := readFile(t, rewritePaths("/etc/presence/redis/password", mounts)); got != "s3cret" {
		t.Errorf("password file: %q", got)
	}
	if got := readFile(t, rewritePaths("/etc/presence/jwt/secret", mounts)); got != "jwt-key" {
		t.Errorf("jwt file: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "jwt", "other")); err == nil {
		t.Error("a key left out of the volume's items was written")
	}
	if info, err := os.Stat(filepath.Join(dir, "redis-auth", "password")); err != nil || info.Mode().Perm() != 0o440 {
		t.Errorf("password file mode: %v %v, want 0440", info.Mode(), err)
	}
	for _, tc := range []struct{ in, want string }{
		{"/etc/presence/redis", filepath.Join(dir, "redis-auth")},
		{"/etc/presence/redisfoo", "/etc/presence/redisfoo"},
		{"/tmp/x", filepath.Join(dir, "tmp", "x")},
		{"redis-0:6379", "redis-0:6379"},
	} {
		if got := rewritePaths(tc.in, mounts); got != tc.want {
			t.Errorf("rewritePaths(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}

	before, err := os.Stat(nodes)
	if err != nil {
		t.Fatal(err)
	}
	f.objs.configMaps["chat-redis-nodes"].Data["nodes"] = "redis-2.redis.chat.svc:6379\n"
	delete(f.objs.secrets["redis-auth"].Data, "password")
	f.objs.secrets["redis-auth"].Data["username"] = []byte("presence")
	if _, err := writeVolumes(f.d, f.c, f.objs, dir); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(nodes)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(before, after) {
		t.Error("the update kept the file's inode: a watcher would not see it")
	}
	if got := readFile(t, nodes); got != "redis-2.redis.chat.svc:6379\n" {
		t.Errorf("nodes file after the update: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "redis-auth", "password")); err == nil {
		t.Error("a key removed from the Secret is still a file")
	}
	if got := readFile(t, filepath.Join(dir, "redis-auth", "username")); got != "presence" {
		t.Errorf("a key added to the Secret: %q", got)
	}
	versions, _ := filepath.Glob(filepath.Join(dir, "redis-nodes", "..2*"))
	if len(versions) != 1 {
		t.Errorf("old versions are kept: %v", versions)
	}
}

func TestVolumesRefuseWhatTheKubeletWouldNotUpdate(t *testing.T) {
	subPath := strings.Replace(templateJSON, `"mountPath": "/etc/presence/jwt", "readOnly": true`,
		`"mountPath": "/etc/presence/jwt/secret", "subPath": "secret", "readOnly": true`, 1)
	f, dir := fixture(t, subPath, objectsJSON)
	if _, err := writeVolumes(f.d, f.c, f.objs, dir); err == nil || !strings.Contains(err.Error(), "subPath") {
		t.Errorf("subPath mount: %v, want an error", err)
	}
	f, dir = fixture(t, templateJSON, `{"kind": "List", "items": []}`)
	if _, err := writeVolumes(f.d, f.c, f.objs, dir); err == nil || !strings.Contains(err.Error(), `ConfigMap "chat-redis-nodes"`) {
		t.Errorf("missing ConfigMap: %v, want an error naming it", err)
	}
}

func TestRewritePortFlags(t *testing.T) {
	got := rewritePortFlags(
		[]string{"--log-format=text", "--ws-port=8080", "--metrics-port", "9090", "--other=8080x", "9090"},
		map[int]int{8080: 18181, 9090: 19191})
	want := []string{"--log-format=text", "--ws-port=18181", "--metrics-port", "19191", "--other=8080x", "9090"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReadinessURLFollowsANamedPort(t *testing.T) {
	f, _ := fixture(t, templateJSON, objectsJSON)
	got, err := readinessURL(f.c, map[int]int{8080: 18181, 9090: 19191})
	if err != nil {
		t.Fatal(err)
	}
	if got != "http://127.0.0.1:18181/readyz" {
		t.Errorf("got %q", got)
	}
	numbered := strings.Replace(templateJSON, `"port": "ws"`, `"port": 9090`, 1)
	f, _ = fixture(t, numbered, objectsJSON)
	if got, err := readinessURL(f.c, map[int]int{8080: 18181, 9090: 19191}); err != nil || got != "http://127.0.0.1:19191/readyz" {
		t.Errorf("numbered port: %q %v", got, err)
	}
	f.c.ReadinessProbe = nil
	if _, err := readinessURL(f.c, nil); err == nil {
		t.Error("no probe: want an error")
	}
}

func TestPickContainer(t *testing.T) {
	f, _ := fixture(t, templateJSON, objectsJSON)
	if _, err := pickContainer(f.d, "sidecar"); err == nil || !strings.Contains(err.Error(), `"sidecar"`) {
		t.Errorf("err = %v, want one naming the container", err)
	}
	if c, err := pickContainer(f.d, ""); err != nil || c.Name != "gateway" {
		t.Errorf("default container: %v %v", c, err)
	}
}

func TestReadDeploymentRefusesOtherKinds(t *testing.T) {
	if _, err := readDeployment(writeTemp(t, "x.json", `{"kind": "StatefulSet"}`)); err == nil || !strings.Contains(err.Error(), "StatefulSet") {
		t.Errorf("err = %v", err)
	}
}

package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

const templateJSON = `{
  "metadata": {"name": "chat", "namespace": "chat"},
  "spec": {"template": {"spec": {"containers": [{
    "name": "gateway",
    "image": "ghcr.io/presencekit/presence-gateway:1",
    "args": ["--log-format=text", "--ws-port=8080", "--metrics-port", "9090", "--other=8080x"],
    "env": [
      {"name": "WS_PORT", "value": "8080"},
      {"name": "METRICS_PORT", "value": "9090"},
      {"name": "REDIS_NODES", "value": "10.0.0.1:6379,10.0.0.2:6379"},
      {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
      {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    ],
    "ports": [{"name": "ws", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "ws"}}
  }]}}}
}`

func parseTemplate(t *testing.T, raw string) (deployment, container) {
	t.Helper()
	var d deployment
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatal(err)
	}
	c, err := pickContainer(d, "gateway")
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

func TestPodEnvResolvesValuesAndFieldRefs(t *testing.T) {
	d, c := parseTemplate(t, templateJSON)
	env, err := podEnv(d, c, "chat-local-1")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"REDIS_NODES": "10.0.0.1:6379,10.0.0.2:6379", "POD_NAME": "chat-local-1", "POD_NAMESPACE": "chat", "WS_PORT": "8080",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
}

func TestPodEnvRefusesSecretsByName(t *testing.T) {
	raw := strings.Replace(templateJSON, `{"name": "WS_PORT", "value": "8080"}`,
		`{"name": "AUTH_JWT_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}`, 1)
	d, c := parseTemplate(t, raw)
	if _, err := podEnv(d, c, "x"); err == nil || !strings.Contains(err.Error(), "AUTH_JWT_SECRET") {
		t.Fatalf("err = %v, want an error naming AUTH_JWT_SECRET", err)
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
	_, c := parseTemplate(t, templateJSON)
	got, err := readinessURL(c, map[int]int{8080: 18181, 9090: 19191})
	if err != nil {
		t.Fatal(err)
	}
	if got != "http://127.0.0.1:18181/readyz" {
		t.Errorf("got %q", got)
	}
	c.ReadinessProbe = nil
	if _, err := readinessURL(c, nil); err == nil {
		t.Error("no probe: want an error")
	}
}

func TestPickContainer(t *testing.T) {
	d, _ := parseTemplate(t, templateJSON)
	if _, err := pickContainer(d, "sidecar"); err == nil || !strings.Contains(err.Error(), `"sidecar"`) {
		t.Errorf("err = %v, want one naming the container", err)
	}
	if c, err := pickContainer(d, ""); err != nil || c.Name != "gateway" {
		t.Errorf("default container: %v %v", c.Name, err)
	}
}

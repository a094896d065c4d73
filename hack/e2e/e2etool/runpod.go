package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The few parts of a Deployment that run-pod reads. (Plain structs rather
// than k8s.io/api: this tool only needs a container's args, env, ports and
// readiness probe.)
type deployment struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Template struct {
			Spec struct {
				Containers []container `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type container struct {
	Name           string          `json:"name"`
	Image          string          `json:"image"`
	Command        []string        `json:"command"`
	Args           []string        `json:"args"`
	Env            []envVar        `json:"env"`
	Ports          []containerPort `json:"ports"`
	ReadinessProbe *struct {
		HTTPGet *struct {
			Path string          `json:"path"`
			Port json.RawMessage `json:"port"` // a number or a port name
		} `json:"httpGet"`
	} `json:"readinessProbe"`
}

type envVar struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `json:"fieldPath"`
		} `json:"fieldRef"`
		SecretKeyRef    json.RawMessage `json:"secretKeyRef"`
		ConfigMapKeyRef json.RawMessage `json:"configMapKeyRef"`
	} `json:"valueFrom"`
}

type containerPort struct {
	Name          string `json:"name"`
	ContainerPort int    `json:"containerPort"`
}

// runPod starts bin/presence-gateway the way the Deployment's pod template
// says (its args and env), with only what cannot be the same on one machine
// changed: the binary instead of the image, and local ports instead of the
// container ports. It waits for the template's readiness probe to pass on the
// local port, then exits, leaving the gateway running in its own session; the
// gateway's pid is written to -pidfile so that the caller stops exactly it.
func runPod(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run-pod", flag.ExitOnError)
	deployFile := fs.String("deployment", "", "the Deployment as JSON (kubectl get deploy NAME -o json > FILE)")
	containerName := fs.String("container", "", "container to run (default: the first)")
	binary := fs.String("binary", "bin/presence-gateway", "the local gateway binary that replaces the image")
	podName := fs.String("pod-name", "local-0", "the pod name seen through fieldRef metadata.name")
	wsPort := fs.Int("ws-port", 0, "local WebSocket port (replaces WS_PORT / the container's ws port)")
	metricsPort := fs.Int("metrics-port", 0, "local metrics port (replaces METRICS_PORT)")
	logFile := fs.String("log", "", "file for the gateway's output")
	pidFile := fs.String("pidfile", "", "file to write the gateway's pid to")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the readiness probe")
	_ = fs.Parse(args)
	if *deployFile == "" || *wsPort == 0 || *metricsPort == 0 || *logFile == "" || *pidFile == "" {
		return errors.New("-deployment, -ws-port, -metrics-port, -log and -pidfile are required")
	}

	raw, err := os.ReadFile(*deployFile)
	if err != nil {
		return err
	}
	var d deployment
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("%s: not a Deployment in JSON: %w", *deployFile, err)
	}
	c, err := pickContainer(d, *containerName)
	if err != nil {
		return err
	}

	env, err := podEnv(d, c, *podName)
	if err != nil {
		return err
	}
	// The template's ports, by number, become the local ones. The gateway
	// reads WS_PORT and METRICS_PORT (docs/architecture.md, "The gateway pods' contract"); their template values (or
	// the defaults) tell which container port is which.
	templateWS := atoiOr(env["WS_PORT"], 8080)
	templateMetrics := atoiOr(env["METRICS_PORT"], 9090)
	portMap := map[int]int{templateWS: *wsPort, templateMetrics: *metricsPort}
	env["WS_PORT"] = strconv.Itoa(*wsPort)
	env["METRICS_PORT"] = strconv.Itoa(*metricsPort)
	cmdArgs := rewritePortFlags(c.Args, portMap)

	out, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	// Not CommandContext: the gateway must outlive this command.
	cmd := exec.Command(*binary, cmdArgs...) //nolint:noctx // deliberately outlives ctx
	cmd.Env = envList(env)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	fmt.Printf("run-pod: %s (image %s) as %s %s\n  env: %s\n", c.Name, c.Image, *binary, strings.Join(cmdArgs, " "), strings.Join(cmd.Env, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", *binary, err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	probe, err := readinessURL(c, portMap)
	if err != nil {
		_ = cmd.Process.Kill()
		return err
	}
	if err := waitReady(ctx, probe, *timeout, exited); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("%w (gateway log: %s)", err, *logFile)
	}
	okf("gateway pid %d ready: %s", pid, probe)
	// Let go of the child: it runs on in its own session.
	_ = cmd.Process.Release()
	return nil
}

func pickContainer(d deployment, name string) (container, error) {
	cs := d.Spec.Template.Spec.Containers
	if len(cs) == 0 {
		return container{}, fmt.Errorf("deployment %s/%s: no containers in the pod template", d.Metadata.Namespace, d.Metadata.Name)
	}
	if name == "" {
		return cs[0], nil
	}
	for _, c := range cs {
		if c.Name == name {
			return c, nil
		}
	}
	return container{}, fmt.Errorf("deployment %s/%s: no container %q", d.Metadata.Namespace, d.Metadata.Name, name)
}

// podEnv resolves the container's env as the kubelet would for this pod.
func podEnv(d deployment, c container, podName string) (map[string]string, error) {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			switch e.ValueFrom.FieldRef.FieldPath {
			case "metadata.name":
				env[e.Name] = podName
			case "metadata.namespace":
				env[e.Name] = d.Metadata.Namespace
			case "status.podIP", "status.hostIP":
				env[e.Name] = "127.0.0.1"
			case "spec.nodeName":
				env[e.Name] = "local"
			default:
				return nil, fmt.Errorf("env %s: fieldRef %q is not supported by run-pod", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		default:
			return nil, fmt.Errorf("env %s: only value and fieldRef are supported by run-pod (the e2e uses no Secret or ConfigMap env)", e.Name)
		}
	}
	return env, nil
}

// rewritePortFlags changes "--flag=PORT" / "--flag PORT" values that are one
// of the template's ports into the matching local port.
func rewritePortFlags(args []string, portMap map[int]int) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "-") {
			if p, err := strconv.Atoi(v); err == nil {
				if local, ok := portMap[p]; ok {
					out[i] = k + "=" + strconv.Itoa(local)
				}
			}
			continue
		}
		if i > 0 && strings.HasPrefix(out[i-1], "-") && !strings.Contains(out[i-1], "=") {
			if p, err := strconv.Atoi(a); err == nil {
				if local, ok := portMap[p]; ok {
					out[i] = strconv.Itoa(local)
				}
			}
		}
	}
	return out
}

func readinessURL(c container, portMap map[int]int) (string, error) {
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
		return "", fmt.Errorf("container %s: the pod template has no httpGet readiness probe", c.Name)
	}
	g := c.ReadinessProbe.HTTPGet
	port := 0
	var name string
	if err := json.Unmarshal(g.Port, &port); err != nil {
		if err := json.Unmarshal(g.Port, &name); err != nil {
			return "", fmt.Errorf("container %s: readiness probe port %s: neither a number nor a name", c.Name, g.Port)
		}
		for _, p := range c.Ports {
			if p.Name == name {
				port = p.ContainerPort
			}
		}
	}
	local, ok := portMap[port]
	if !ok {
		return "", fmt.Errorf("container %s: readiness probe port %s is neither the ws nor the metrics port", c.Name, g.Port)
	}
	return fmt.Sprintf("http://127.0.0.1:%d%s", local, g.Path), nil
}

func waitReady(ctx context.Context, url string, timeout time.Duration, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case err := <-exited:
			if err == nil {
				return errors.New("the gateway exited (status 0) before it was ready")
			}
			return fmt.Errorf("the gateway exited before it was ready: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("readiness probe %s not passing after %s: last answer %s", url, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func atoiOr(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

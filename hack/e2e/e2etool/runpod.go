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
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// runPod starts bin/presence-gateway the way the Deployment's pod template
// says (its args, env and volumes), with only what cannot be the same on one
// machine changed: the binary instead of the image, local ports instead of
// the container ports, and local directories instead of the volumes' mount
// paths. It plays the kubelet's part for the volumes: each ConfigMap, Secret
// or emptyDir volume is written to a directory laid out as the kubelet lays
// it out (files behind a "..data" symlink, swapped atomically on update), and
// every env value or arg naming a path under a volume's mountPath is pointed
// at that directory. It waits for the template's readiness probe to pass on
// the local port, then exits, leaving the gateway running in its own
// session; the gateway's pid is written to -pidfile so that the caller stops
// exactly it.
//
// With -sync-volumes it only writes the volumes again from -objects, as the
// kubelet does when a mounted ConfigMap or Secret changes, and the running
// gateway sees the new files.
func runPod(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run-pod", flag.ExitOnError)
	deployFile := fs.String("deployment", "", "the Deployment as JSON (kubectl get deploy NAME -o json > FILE)")
	objectsFile := fs.String("objects", "", "the ConfigMaps and Secrets the pod uses, as JSON (kubectl get configmaps,secrets -o json > FILE); needed when the template mounts or references them")
	containerName := fs.String("container", "", "container to run (default: the first)")
	binary := fs.String("binary", "bin/presence-gateway", "the local gateway binary that replaces the image")
	podName := fs.String("pod-name", "local-0", "the pod name seen through fieldRef metadata.name")
	wsPort := fs.Int("ws-port", 0, "local WebSocket port (replaces WS_PORT / the container's ws port)")
	metricsPort := fs.Int("metrics-port", 0, "local metrics port (replaces METRICS_PORT)")
	logFile := fs.String("log", "", "file for the gateway's output")
	pidFile := fs.String("pidfile", "", "file to write the gateway's pid to")
	volumesDir := fs.String("volumes", "", "directory of the pod's volumes, one subdirectory per volume (default: volumes/<pod-name> beside -pidfile)")
	syncOnly := fs.Bool("sync-volumes", false, "only write the volumes again from -objects (the kubelet's update of a mounted ConfigMap or Secret), start nothing")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the readiness probe")
	_ = fs.Parse(args)
	if *deployFile == "" || *pidFile == "" {
		return errors.New("-deployment and -pidfile are required")
	}
	if !*syncOnly && (*wsPort == 0 || *metricsPort == 0 || *logFile == "") {
		return errors.New("-ws-port, -metrics-port and -log are required")
	}
	if *volumesDir == "" {
		*volumesDir = filepath.Join(filepath.Dir(*pidFile), "volumes", *podName)
	}

	d, err := readDeployment(*deployFile)
	if err != nil {
		return err
	}
	objs, err := readObjects(*objectsFile)
	if err != nil {
		return err
	}
	c, err := pickContainer(d, *containerName)
	if err != nil {
		return err
	}
	mounts, err := writeVolumes(d, c, objs, *volumesDir)
	if err != nil {
		return err
	}
	if *syncOnly {
		okf("volumes of %s written again in %s", *podName, *volumesDir)
		return nil
	}

	env, err := podEnv(d, c, objs, *podName)
	if err != nil {
		return err
	}
	// The template's ports, by number, become the local ones. The gateway
	// reads WS_PORT and METRICS_PORT (docs/architecture.md, "The gateway pods' contract"); their template values (or
	// the defaults) tell which container port is which.
	templateWS := atoiOr(env["WS_PORT"], 8080)
	templateMetrics := atoiOr(env["METRICS_PORT"], 9090)
	portMap := map[int]int{templateWS: *wsPort, templateMetrics: *metricsPort}
	for k, v := range env {
		env[k] = rewritePaths(v, mounts)
	}
	env["WS_PORT"] = strconv.Itoa(*wsPort)
	env["METRICS_PORT"] = strconv.Itoa(*metricsPort)
	cmdArgs := rewritePortFlags(c.Args, portMap)
	for i, a := range cmdArgs {
		cmdArgs[i] = rewritePaths(a, mounts)
	}

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

func readDeployment(path string) (*appsv1.Deployment, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d appsv1.Deployment
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%s: not a Deployment in JSON: %w", path, err)
	}
	if d.Kind != "" && d.Kind != "Deployment" {
		return nil, fmt.Errorf("%s: a %s, not a Deployment", path, d.Kind)
	}
	return &d, nil
}

// podObjects are the ConfigMaps and Secrets a pod may use, by name.
type podObjects struct {
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
}

// readObjects reads a kubectl List (or a single object) of ConfigMaps and
// Secrets; no file means none.
func readObjects(path string) (podObjects, error) {
	objs := podObjects{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	if path == "" {
		return objs, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return objs, err
	}
	var list struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return objs, fmt.Errorf("%s: not JSON: %w", path, err)
	}
	items := list.Items
	if list.Kind != "List" && !strings.HasSuffix(list.Kind, "List") {
		items = []json.RawMessage{raw}
	}
	for _, item := range items {
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(item, &meta); err != nil {
			return objs, fmt.Errorf("%s: %w", path, err)
		}
		switch meta.Kind {
		case "ConfigMap":
			cm := &corev1.ConfigMap{}
			if err := json.Unmarshal(item, cm); err != nil {
				return objs, fmt.Errorf("%s: ConfigMap: %w", path, err)
			}
			objs.configMaps[cm.Name] = cm
		case "Secret":
			s := &corev1.Secret{}
			if err := json.Unmarshal(item, s); err != nil {
				return objs, fmt.Errorf("%s: Secret: %w", path, err)
			}
			objs.secrets[s.Name] = s
		default:
			return objs, fmt.Errorf("%s: a %q among the objects; only ConfigMaps and Secrets are used", path, meta.Kind)
		}
	}
	return objs, nil
}

func pickContainer(d *appsv1.Deployment, name string) (*corev1.Container, error) {
	cs := d.Spec.Template.Spec.Containers
	if len(cs) == 0 {
		return nil, fmt.Errorf("deployment %s/%s: no containers in the pod template", d.Namespace, d.Name)
	}
	if name == "" {
		return &cs[0], nil
	}
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i], nil
		}
	}
	return nil, fmt.Errorf("deployment %s/%s: no container %q", d.Namespace, d.Name, name)
}

// podEnv resolves the container's env as the kubelet would for this pod.
func podEnv(d *appsv1.Deployment, c *corev1.Container, objs podObjects, podName string) (map[string]string, error) {
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
			continue
		}
		switch from := e.ValueFrom; {
		case from.FieldRef != nil:
			switch from.FieldRef.FieldPath {
			case "metadata.name":
				env[e.Name] = podName
			case "metadata.namespace":
				env[e.Name] = d.Namespace
			case "status.podIP", "status.hostIP":
				env[e.Name] = "127.0.0.1"
			case "spec.nodeName":
				env[e.Name] = "local"
			default:
				return nil, fmt.Errorf("env %s: fieldRef %q is not supported by run-pod", e.Name, from.FieldRef.FieldPath)
			}
		case from.SecretKeyRef != nil:
			ref := from.SecretKeyRef
			s, ok := objs.secrets[ref.Name]
			v, has := []byte(nil), false
			if ok {
				v, has = s.Data[ref.Key]
			}
			if !has {
				if ref.Optional != nil && *ref.Optional {
					continue
				}
				return nil, fmt.Errorf("env %s: Secret %q key %q not among -objects", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = string(v)
		case from.ConfigMapKeyRef != nil:
			ref := from.ConfigMapKeyRef
			cm, ok := objs.configMaps[ref.Name]
			v, has := "", false
			if ok {
				v, has = cm.Data[ref.Key]
			}
			if !has {
				if ref.Optional != nil && *ref.Optional {
					continue
				}
				return nil, fmt.Errorf("env %s: ConfigMap %q key %q not among -objects", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = v
		default:
			return nil, fmt.Errorf("env %s: only value, fieldRef, secretKeyRef and configMapKeyRef are supported by run-pod", e.Name)
		}
	}
	return env, nil
}

// volumeMount is where a container expects a volume, and where run-pod put it.
type volumeMount struct {
	mountPath, dir string
}

// writeVolumes writes the volumes the container mounts under dir (one
// directory per volume, as the kubelet does) and returns the mounts, longest
// mount path first.
func writeVolumes(d *appsv1.Deployment, c *corev1.Container, objs podObjects, dir string) ([]volumeMount, error) {
	volumes := map[string]corev1.Volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	var mounts []volumeMount
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" {
			// The kubelet never updates a subPath mount: the operator must not use one.
			return nil, fmt.Errorf("volume mount %s uses subPath %q: not supported by run-pod (and never updated by the kubelet)", m.Name, m.SubPath)
		}
		v, ok := volumes[m.Name]
		if !ok {
			return nil, fmt.Errorf("volume mount %s: no such volume in the pod template", m.Name)
		}
		vdir := filepath.Join(dir, m.Name)
		files, mode, err := volumeFiles(v, objs)
		if err != nil {
			return nil, err
		}
		if files == nil { // emptyDir
			if err := os.MkdirAll(vdir, 0o755); err != nil {
				return nil, err
			}
		} else if err := writeAtomic(vdir, files, mode); err != nil {
			return nil, fmt.Errorf("volume %s: %w", m.Name, err)
		}
		mounts = append(mounts, volumeMount{mountPath: filepath.Clean(m.MountPath), dir: vdir})
	}
	slices.SortFunc(mounts, func(a, b volumeMount) int { return len(b.mountPath) - len(a.mountPath) })
	return mounts, nil
}

// volumeFiles is the content of a ConfigMap or Secret volume (path ->
// bytes) and its file mode; nil files for an emptyDir.
func volumeFiles(v corev1.Volume, objs podObjects) (map[string][]byte, os.FileMode, error) {
	project := func(data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, optional *bool, what string) (map[string][]byte, os.FileMode, error) {
		mode := os.FileMode(0o644)
		if defaultMode != nil {
			mode = os.FileMode(*defaultMode)
		}
		if data == nil {
			if optional != nil && *optional {
				return map[string][]byte{}, mode, nil
			}
			return nil, 0, fmt.Errorf("volume %s: %s not among -objects", v.Name, what)
		}
		files := map[string][]byte{}
		if len(items) == 0 {
			for k, b := range data {
				files[k] = b
			}
			return files, mode, nil
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				if optional != nil && *optional {
					continue
				}
				return nil, 0, fmt.Errorf("volume %s: %s has no key %q", v.Name, what, it.Key)
			}
			files[it.Path] = b
		}
		return files, mode, nil
	}
	switch src := v.VolumeSource; {
	case src.EmptyDir != nil:
		return nil, 0, nil
	case src.ConfigMap != nil:
		var data map[string][]byte
		if cm, ok := objs.configMaps[src.ConfigMap.Name]; ok {
			data = map[string][]byte{}
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
			for k, b := range cm.BinaryData {
				data[k] = b
			}
		}
		return project(data, src.ConfigMap.Items, src.ConfigMap.DefaultMode, src.ConfigMap.Optional, fmt.Sprintf("ConfigMap %q", src.ConfigMap.Name))
	case src.Secret != nil:
		var data map[string][]byte
		if s, ok := objs.secrets[src.Secret.SecretName]; ok {
			data = s.Data
			if data == nil {
				data = map[string][]byte{}
			}
		}
		return project(data, src.Secret.Items, src.Secret.DefaultMode, src.Secret.Optional, fmt.Sprintf("Secret %q", src.Secret.SecretName))
	default:
		return nil, 0, fmt.Errorf("volume %s: only configMap, secret and emptyDir volumes are supported by run-pod", v.Name)
	}
}

// writeAtomic makes dir hold exactly files, the way the kubelet's atomic
// writer updates a ConfigMap or Secret volume: the files go into a new
// timestamped directory, the "..data" symlink is swapped to it with one
// rename, and each top-level name is a symlink through "..data". A reader
// sees the old content or the new, never a mix, and a file's path stays the
// same while its inode changes.
func writeAtomic(dir string, files map[string][]byte, mode os.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	version, err := os.MkdirTemp(dir, ".."+time.Now().UTC().Format("2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	top := map[string]bool{}
	for p, b := range files {
		clean := filepath.Clean(p)
		if filepath.IsAbs(clean) || strings.HasPrefix(clean, "..") {
			return fmt.Errorf("file %q: not a relative path inside the volume", p)
		}
		full := filepath.Join(version, clean)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, b, mode.Perm()); err != nil {
			return err
		}
		if err := os.Chmod(full, mode.Perm()); err != nil { // not narrowed by the umask
			return err
		}
		top[strings.SplitN(clean, string(filepath.Separator), 2)[0]] = true
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(version), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == "..data" || name == filepath.Base(version):
		case strings.HasPrefix(name, ".."):
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return err
			}
		case !top[name]:
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return err
		}
	}
	return nil
}

// rewritePaths points a value naming a path under a volume's mount path at
// the volume's local directory.
func rewritePaths(v string, mounts []volumeMount) string {
	for _, m := range mounts {
		if v == m.mountPath {
			return m.dir
		}
		if rest, ok := strings.CutPrefix(v, m.mountPath+"/"); ok {
			return filepath.Join(m.dir, rest)
		}
	}
	return v
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

func readinessURL(c *corev1.Container, portMap map[int]int) (string, error) {
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
		return "", fmt.Errorf("container %s: the pod template has no httpGet readiness probe", c.Name)
	}
	g := c.ReadinessProbe.HTTPGet
	port := 0
	if g.Port.Type == intstr.Int {
		port = g.Port.IntValue()
	} else {
		for _, p := range c.Ports {
			if p.Name == g.Port.StrVal {
				port = int(p.ContainerPort)
			}
		}
	}
	local, ok := portMap[port]
	if !ok {
		return "", fmt.Errorf("container %s: readiness probe port %s is neither the ws nor the metrics port", c.Name, g.Port.String())
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

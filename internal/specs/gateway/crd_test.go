package gateway

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	gwconfig "github.com/presencekit/presence-operator/gateway/config"
)

// TestCRDAgreesWithTheGateway: the PresenceGateway CRD's defaults and bounds
// are the gateway's own (gateway/config), so that the API server refuses
// what the gateway would refuse at start, and an unset field means what the
// gateway would do without the variable.
func TestCRDAgreesWithTheGateway(t *testing.T) {
	g := NewWithT(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "crd", "bases", "presence.presencekit.io_presencegateways.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var crd map[string]any
	g.Expect(yaml.Unmarshal(raw, &crd)).To(Succeed())
	versions := crd["spec"].(map[string]any)["versions"].([]any)
	schema := versions[0].(map[string]any)["schema"].(map[string]any)["openAPIV3Schema"].(map[string]any)
	field := func(path ...string) map[string]any {
		node := schema
		for _, p := range append([]string{"spec"}, path...) {
			props, ok := node["properties"].(map[string]any)
			g.Expect(ok).To(BeTrue(), "no properties above %s", p)
			node, ok = props[p].(map[string]any)
			g.Expect(ok).To(BeTrue(), "no field %s in the CRD", p)
		}
		return node
	}
	duration := func(v any) time.Duration {
		d, err := time.ParseDuration(v.(string))
		g.Expect(err).NotTo(HaveOccurred())
		return d
	}

	g.Expect(field("websocket", "port")["default"]).To(BeEquivalentTo(gwconfig.DefaultWSPort), "spec.websocket.port default")
	payload := field("websocket", "maxPayloadBytes")
	g.Expect(payload["default"]).To(BeEquivalentTo(gwconfig.DefaultMaxPayloadBytes), "spec.websocket.maxPayloadBytes default")
	g.Expect(payload["minimum"]).To(BeEquivalentTo(gwconfig.MinMaxPayloadBytes), "spec.websocket.maxPayloadBytes minimum")
	g.Expect(payload["maximum"]).To(BeEquivalentTo(gwconfig.MaxMaxPayloadBytes), "spec.websocket.maxPayloadBytes maximum")
	g.Expect(duration(field("presence", "ttl")["default"])).To(Equal(gwconfig.DefaultPresenceTTL), "spec.presence.ttl default")
	g.Expect(duration(field("presence", "heartbeatInterval")["default"])).To(Equal(gwconfig.DefaultHeartbeatInterval), "spec.presence.heartbeatInterval default")

	// spec.env must not override what the operator sets: its CEL rule names
	// every such variable.
	var rules []string
	for _, r := range field("env")["x-kubernetes-validations"].([]any) {
		rules = append(rules, r.(map[string]any)["rule"].(string))
	}
	for _, name := range gwconfig.OperatorSettings {
		g.Expect(rules).To(ContainElement(ContainSubstring("'"+name+"'")), "spec.env may set %s, which the operator sets", name)
	}
}

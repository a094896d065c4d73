package config

import (
	"strconv"
	"testing"
	"time"
)

// TestOperatorSettingsAreRead: every variable the operator may set is one
// Load reads, and the exported defaults are Load's defaults. A renamed or
// removed variable, or a default changed on one side only, fails here.
func TestOperatorSettingsAreRead(t *testing.T) {
	defaults := map[string]string{}
	for _, s := range settings {
		defaults[s.env] = s.def
	}
	for _, name := range OperatorSettings {
		if _, ok := defaults[name]; !ok {
			t.Errorf("the operator sets %s, which the gateway does not read", name)
		}
	}
	for name, want := range map[string]int{
		EnvWSPort: DefaultWSPort, EnvMetricsPort: DefaultMetricsPort, EnvMaxPayloadBytes: DefaultMaxPayloadBytes,
	} {
		if defaults[name] != strconv.Itoa(want) {
			t.Errorf("%s: the gateway's default is %q, settings.go says %d", name, defaults[name], want)
		}
	}
	for name, want := range map[string]time.Duration{
		EnvPresenceTTL: DefaultPresenceTTL, EnvHeartbeatInterval: DefaultHeartbeatInterval, EnvShutdownGrace: DefaultShutdownGrace,
	} {
		if got, err := time.ParseDuration(defaults[name]); err != nil || got != want {
			t.Errorf("%s: the gateway's default is %q, settings.go says %s", name, defaults[name], want)
		}
	}
}

// TestMaxPayloadLimits: Load accepts exactly MinMaxPayloadBytes to
// MaxMaxPayloadBytes.
func TestMaxPayloadLimits(t *testing.T) {
	for v, ok := range map[int]bool{
		MinMaxPayloadBytes - 1: false, MinMaxPayloadBytes: true, MaxMaxPayloadBytes: true, MaxMaxPayloadBytes + 1: false,
	} {
		env := map[string]string{EnvMaxPayloadBytes: strconv.Itoa(v)}
		_, err := Load(nil, func(k string) string { return env[k] }, nil)
		if (err == nil) != ok {
			t.Errorf("%s=%d: accepted=%v, want %v (err %v)", EnvMaxPayloadBytes, v, err == nil, ok, err)
		}
	}
}

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// scrape is one read of the operator's /metrics: each sample's value by its
// series, "name{label="value",...}" as the text format writes it.
type scrape map[string]float64

// parseMetrics reads the Prometheus text format (samples only; comments,
// timestamps and exemplars are not needed here).
func parseMetrics(r io.Reader) (scrape, error) {
	s := scrape{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the series, after the closing brace if any.
		rest := line
		series := ""
		if i := strings.IndexByte(line, '}'); i >= 0 {
			series, rest = line[:i+1], line[i+1:]
		} else if i := strings.IndexByte(line, ' '); i >= 0 {
			series, rest = line[:i], line[i:]
		}
		fields := strings.Fields(rest)
		if series == "" || len(fields) == 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		s[series] = v
	}
	return s, sc.Err()
}

// sum adds the samples of metric whose labels include every label=value
// of match, grouped by the value of label by ("" = one group).
func (s scrape) sum(metric, by string, match map[string]string) map[string]float64 {
	out := map[string]float64{}
	for series, v := range s {
		name, labels := series, ""
		if i := strings.IndexByte(series, '{'); i >= 0 {
			name, labels = series[:i], series[i+1:len(series)-1]
		}
		if name != metric {
			continue
		}
		l := parseLabels(labels)
		ok := true
		for k, want := range match {
			if l[k] != want {
				ok = false
				break
			}
		}
		if ok {
			out[l[by]] += v
		}
	}
	return out
}

// parseLabels parses `a="x",b="y"` (the values we read hold no quote or comma).
func parseLabels(s string) map[string]string {
	l := map[string]string{}
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if ok {
			l[strings.TrimSpace(k)] = strings.Trim(v, `"`)
		}
	}
	return l
}

// diff is after minus before, by group.
func diff(after, before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// metricsClient scrapes the operator's /metrics, served over HTTPS with a
// self-signed certificate behind controller-runtime's authentication and
// authorization filter: the bearer token must be one the API server accepts
// and that may GET /metrics (the bench uses the local cluster's admin).
type metricsClient struct {
	url, token string
	http       *http.Client
}

func newMetricsClient(url, token string) *metricsClient {
	return &metricsClient{url: url, token: token, http: &http.Client{
		Timeout: 10 * time.Second,
		// The operator's certificate is generated at start and signed by nobody.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // loopback, throwaway certificate
	}}
}

func (m *metricsClient) get(ctx context.Context) (scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	resp, err := m.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", m.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", m.url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

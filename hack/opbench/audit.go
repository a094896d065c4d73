package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// auditEntry is the part of a kube-apiserver audit event (audit.k8s.io/v1,
// one JSON object per line of --audit-log-path) that the counts need.
type auditEntry struct {
	Stage string `json:"stage"`
	Verb  string `json:"verb"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		APIGroup    string `json:"apiGroup"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestReceived time.Time `json:"requestReceivedTimestamp"`
}

// writeVerbs are the audit verbs of requests that write (an apply is a patch).
var writeVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "deletecollection": true}

// reviews are create requests that store nothing: the operator's /metrics
// filter asks the API server who a scraper is and what it may do.
var reviews = map[string]bool{"tokenreviews": true, "subjectaccessreviews": true}

// write is one write request of the operator, as the API server logged it.
type write struct {
	at time.Time
	// what is resource[/subresource] verb, e.g. "presencegateways/status patch".
	what string
	// failed is a response code of 400 or more (a conflict, a refusal).
	failed bool
}

// readWrites parses an audit log and returns the write requests user sent
// that reached the ResponseComplete stage, in log order, without reviews. Lines that are not
// audit events (a partially written last line) are skipped.
func readWrites(r io.Reader, user string) ([]write, error) {
	var out []write
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var e auditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue
		}
		if e.Stage != "ResponseComplete" || e.User.Username != user || !writeVerbs[e.Verb] || e.ObjectRef == nil || reviews[e.ObjectRef.Resource] {
			continue
		}
		res := e.ObjectRef.Resource
		if e.ObjectRef.Subresource != "" {
			res += "/" + e.ObjectRef.Subresource
		}
		out = append(out, write{
			at:     e.RequestReceived,
			what:   res + " " + e.Verb,
			failed: e.ResponseStatus != nil && e.ResponseStatus.Code >= 400,
		})
	}
	return out, sc.Err()
}

// readWritesFile is readWrites on a file.
func readWritesFile(path, user string) ([]write, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ws, err := readWrites(f, user)
	if err != nil {
		return nil, fmt.Errorf("read audit log %s: %w", path, err)
	}
	return ws, nil
}

// writeCounts are the writes of a time window, by what they wrote.
type writeCounts struct {
	by     map[string]int
	failed int
	total  int
}

// countWrites counts the writes received in [from, to).
func countWrites(ws []write, from, to time.Time) writeCounts {
	c := writeCounts{by: map[string]int{}}
	for _, w := range ws {
		if w.at.Before(from) || !w.at.Before(to) {
			continue
		}
		c.by[w.what]++
		c.total++
		if w.failed {
			c.failed++
		}
	}
	return c
}

// isLease says whether a write is the leader-election Lease renewal.
func isLease(what string) bool { return strings.HasPrefix(what, "leases ") }

// isEvent says whether a write creates or updates an Event.
func isEvent(what string) bool { return strings.HasPrefix(what, "events ") }

// without returns the total without the writes that match skip.
func (c writeCounts) without(skip func(string) bool) int {
	n := c.total
	for what, k := range c.by {
		if skip(what) {
			n -= k
		}
	}
	return n
}

// matching returns the writes that match keep.
func (c writeCounts) matching(keep func(string) bool) int {
	n := 0
	for what, k := range c.by {
		if keep(what) {
			n += k
		}
	}
	return n
}

// String lists the counts, largest first: "presencegateways/status patch=500, ...".
func (c writeCounts) String() string {
	if c.total == 0 {
		return "none"
	}
	keys := make([]string, 0, len(c.by))
	for k := range c.by {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if c.by[keys[i]] != c.by[keys[j]] {
			return c.by[keys[i]] > c.by[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, c.by[k])
	}
	s := strings.Join(parts, ", ")
	if c.failed > 0 {
		s += fmt.Sprintf(" (%d failed)", c.failed)
	}
	return s
}

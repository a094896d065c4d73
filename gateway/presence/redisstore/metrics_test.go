package redisstore

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/presencekit/presence-operator/gateway/presence"
)

// The store counts the users it holds (a pending offline grace included) in
// its own series, store_users_held, and leaves online_users_local to the
// transport, its only writer: two writers meaning different things made it
// flicker.
func TestStoreOwnsItsUsersGauge(t *testing.T) {
	r := newReplica(t, testNodes(t), testNamespace(), replicaOpts{ttl: 2 * time.Second, hb: 400 * time.Millisecond, grace: time.Hour})
	held := func() float64 { return testutil.ToFloat64(r.m.UsersHeld) }
	c := presence.Conn{UserID: "gauge-user", ID: "c1"}
	if _, err := r.Connect(tctx(t), c); err != nil {
		t.Fatal(err)
	}
	if held() != 1 {
		t.Fatalf("store_users_held after Connect: %v, want 1", held())
	}
	if _, err := r.Disconnect(tctx(t), c); err != nil {
		t.Fatal(err)
	}
	if held() != 1 {
		t.Fatalf("store_users_held within the offline grace: %v, want 1 (the store still holds the user)", held())
	}
	families, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "presence_gateway_online_users_local" {
			t.Fatal("the store registered online_users_local: only the transport may write it")
		}
	}
}

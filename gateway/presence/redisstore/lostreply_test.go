package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presencekit/presence-operator/gateway/presence"
	"github.com/presencekit/presence-operator/gateway/presence/presencetest"
	"github.com/presencekit/presence-operator/internal/poll"
)

// loseConnectReply lets the first userScript "connect" run on Redis, then
// reports an error to the caller as if the reply had been lost (a timeout
// or a cancelled request after the command was sent): what an upgrade
// refused with 503 under load sees.
type loseConnectReply struct{ lost atomic.Bool }

func (h *loseConnectReply) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *loseConnectReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *loseConnectReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		a := cmd.Args()
		name := strings.ToLower(fmt.Sprint(a[0]))
		if err == nil && (name == "evalsha" || name == "eval") && len(a) > 6 && a[6] == "connect" &&
			h.lost.CompareAndSwap(false, true) {
			err = errors.New("i/o timeout (reply lost by the test)")
			cmd.SetErr(err)
		}
		return err
	}
}

// A Connect whose script ran on Redis but whose reply was lost (the storm's
// 503 store_unavailable upgrades) published the user online, yet the
// replica did not know the connection: nobody refreshed or removed it, it
// expired silently, no offline event was ever published, and reads then
// said offline with the online event's version. A client keeping the
// highest version kept the user online forever. The replica must remove
// such a connection itself, publishing the offline with a higher version.
func TestConnectWithLostReplyIsRemovedWithItsOfflineEvent(t *testing.T) {
	nodes, ns := testNodes(t), testNamespace()
	clock := &presencetest.Clock{}
	o := replicaOpts{ttl: time.Minute, hb: 20 * time.Second, now: clock.Now, noRun: true}
	a, w := newReplica(t, nodes, ns, o), newReplica(t, nodes, ns, o)
	id := users(ns, 1)[0]
	if err := w.Watch(tctx(t), id); err != nil {
		t.Fatal(err)
	}
	hook := &loseConnectReply{}
	a.client().AddHook(hook)
	if _, err := a.Connect(tctx(t), presence.Conn{UserID: id, ID: "c1"}); err == nil {
		t.Fatal("Connect succeeded although its reply was lost")
	}
	if !hook.lost.Load() {
		t.Fatal("the connect script's reply was not intercepted")
	}
	var online presence.User
	poll.Eventually(t, 5*time.Second, "the online event of the connection Redis recorded", func() (bool, string) {
		evs := w.ev.Of(id)
		if len(evs) == 0 {
			return false, "no event"
		}
		online = evs[0]
		return online.Online, fmt.Sprintf("%+v", evs)
	})

	// Heartbeats go on (the replica lives) until the connection would have
	// expired had nobody removed it.
	for range 4 {
		clock.Advance(o.hb)
		a.heartbeat(tctx(t))
	}
	got := getOne(t, a, id)
	if got.Online {
		t.Fatalf("Get: %+v, want offline (the client never got its connection)", got)
	}
	if got.Version <= online.Version {
		t.Fatalf("Get says offline with version %d, not above the online event's %d: a client keeping "+
			"the highest version shows the user online forever", got.Version, online.Version)
	}
	poll.Eventually(t, 5*time.Second, "an offline event with the version reads report", func() (bool, string) {
		evs := w.ev.Of(id)
		last := evs[len(evs)-1]
		return !last.Online && last.Version == got.Version, fmt.Sprintf("%+v", evs)
	})
}

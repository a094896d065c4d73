// Package presence defines who is online: the Store interface that the
// gateway's transport talks to, and the types it speaks in. Two
// implementations sit behind it: an embedded in-memory store (one replica,
// for development) and a Redis Cluster store shared by every replica. Both
// pass the same conformance tests (package presencetest).
package presence

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Status is a user's presence status as clients see it.
type Status string

// The statuses of the protocol. A user is StatusOffline when it has no
// live connection, or while it is invisible; otherwise it shows the status
// it last set (StatusOnline by default).
//
// StatusInvisible is set, never shown: an invisible user keeps its
// connections, but every read and event shows it exactly as if its last
// connection had closed at the moment it went invisible (offline, lastSeen
// that moment, a new version). Setting any other settable status shows it
// online again. Like the other statuses it is per user (a connection the
// user opens meanwhile starts invisible too) and lasts while the user is
// online (its offline grace included): when the user really goes offline it
// is forgotten, and that publishes nothing, since watchers already see the
// user offline.
const (
	StatusOnline    Status = "online"
	StatusAway      Status = "away"
	StatusBusy      Status = "busy"
	StatusInvisible Status = "invisible"
	StatusOffline   Status = "offline"
)

// Settable reports whether a client may set s with a "status" message.
// "offline" is derived from the connections and cannot be set.
func (s Status) Settable() bool {
	return s == StatusOnline || s == StatusAway || s == StatusBusy || s == StatusInvisible
}

// User is one user's presence. Its wire form (the "U" object of the
// protocol) is decided by package protocol, not here.
type User struct {
	UserID      string
	Online      bool
	Status      Status
	Text        string
	Connections int
	// LastSeen is the unix time in milliseconds at which the user was last
	// online (now, while online); 0 if never.
	LastSeen int64
	// Version grows with every change of the user (online, offline, status,
	// connection count), so that a client receiving events from several
	// replicas out of order keeps the newest.
	Version int64
}

// Conn identifies one client connection. ID is unique across all replicas.
type Conn struct {
	UserID string
	ID     string
}

// EventHandler receives every change of a watched user, on whichever replica
// the change happened. It must not block: the hub copies the event to its
// subscribers' bounded queues and returns.
type EventHandler func(User)

// Store records connections and answers who is online.
//
// Semantics every implementation honours:
//   - a user is online exactly when at least one of its connections is open
//     and was refreshed within the TTL (or an offline grace is pending);
//     reads never report an expired one;
//   - each change (online, offline, status, connection count) bumps Version
//     and is delivered to the EventHandler of every replica that watches the
//     user, exactly once per replica, in Version order; only when a
//     replica's delivery falls behind may a change be skipped in favour of
//     a newer one of the same user (latest state wins: the newest state is
//     always delivered);
//   - the store refreshes the connections it holds locally from Run, once per
//     heartbeat interval, in batches (no timer per connection);
//   - stall recovery: a connection stays registered from Connect until
//     Disconnect or Close, whatever happens to its entry in the backend. If
//     the entry expired or was reaped while the process could not refresh it
//     (a stall longer than the TTL: SIGSTOP, a long GC pause, a frozen VM,
//     Redis unreachable), the next heartbeat that can write re-registers it,
//     and its user is announced online again (a new Version) within one
//     heartbeat. Meanwhile reads show the user offline, SetStatus on that
//     connection fails, and Ready returns an error;
//   - LastSeen, while a user is online with a connection, is now; otherwise
//     it is the moment the user's last connection ended: when it closed
//     (Disconnect), or its last refresh if it expired. It is the same during
//     the offline grace (the user still shows online) and after it, so it
//     never goes backwards; 0 for a user never seen (or forgotten).
type Store interface {
	// Connect records an open connection and returns the user afterwards.
	Connect(ctx context.Context, c Conn) (User, error)
	// Disconnect removes a connection and returns the user afterwards. With
	// Options.OfflineGrace > 0, removing the last connection delays the
	// offline transition by the grace; a Connect within it cancels it.
	Disconnect(ctx context.Context, c Conn) (User, error)
	// SetStatus sets the user's status and text (user-wide, not per connection).
	SetStatus(ctx context.Context, c Conn, status Status, text string) (User, error)
	// Get returns the users in the order asked, offline ones included.
	Get(ctx context.Context, userIDs []string) ([]User, error)
	// Watch makes this replica receive the user's changes; Unwatch stops it.
	// Watch is idempotent; the hub calls it once per user however many local
	// clients watch that user.
	Watch(ctx context.Context, userID string) error
	Unwatch(ctx context.Context, userID string) error
	// Run does the background work (heartbeat refresh of local connections,
	// expiry, reaping, delayed offline events) until ctx ends.
	Run(ctx context.Context) error
	// Ready returns nil when the store can serve reads and writes, and
	// an error (wrapping ErrUnavailable where the backend is the cause)
	// while it cannot write: the backend refuses or does not answer, or,
	// once Run has started, no heartbeat succeeded for a TTL, so local
	// connections are not kept alive (see stall recovery above). The
	// transport answers /readyz with 503 and refuses upgrades meanwhile.
	Ready(ctx context.Context) error
	// Close releases the store's resources. Connections still held are
	// removed first (best effort), so a graceful exit leaves no ghost; as
	// by Disconnect, with Options.OfflineGrace. A store shared by replicas
	// leaves the offline graces still pending to the other replicas, which
	// settle them at their deadline: a user whose client reconnects to
	// another replica within the grace is never announced offline.
	Close(ctx context.Context) error
}

// Options are the settings both implementations share.
type Options struct {
	// TTL is how long a connection counts as live without a refresh.
	TTL time.Duration
	// Heartbeat is how often Run refreshes local connections.
	Heartbeat time.Duration
	// OfflineGrace delays the offline transition after the last disconnect.
	OfflineGrace time.Duration
	// OnEvent receives the changes of watched users. Required.
	OnEvent EventHandler
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time
	// Logger (slog.Default when nil).
	Logger *slog.Logger
	// Metrics receives the series every store writes (NewMetrics):
	// transitions, events published, heartbeat batches, watched users.
	// Required.
	Metrics *Metrics
}

// ErrUnavailable wraps errors caused by the backing store being unreachable.
// The transport answers 503 to upgrades while it sees them.
var ErrUnavailable = errors.New("presence store unavailable")

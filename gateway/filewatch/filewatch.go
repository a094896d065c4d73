// Package filewatch keeps the parsed content of a file that may change
// while the gateway runs: a mounted Secret (JWT keys, the Redis password)
// or ConfigMap (the Redis seed nodes). The kubelet updates such a volume in
// place by swapping a symlink (never with subPath mounts, which it does not
// update), so a new inode, size or modification time of the path means new
// content.
//
// There is no goroutine and no inotify: Current stats the file at most
// once per Options.Every, on the caller's own schedule (a verification, a
// new Redis connection, a heartbeat), and re-reads it only when it changed.
package filewatch

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultEvery is how often a file is checked, at most, when Options.Every
// is zero.
const DefaultEvery = time.Second

// Options tune a File.
type Options struct {
	// Every is the least time between two checks (DefaultEvery when zero).
	Every time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Logger (slog.Default when nil) gets one line per reload and one per
	// failed change.
	Logger *slog.Logger
	// AllowMissing makes an absent file hold the zero value instead of
	// being an error, at start and later: an optional key of a Secret
	// volume is a file that comes and goes with the key.
	AllowMissing bool
}

// File is a file's parsed content, re-read when the file changes. A file
// that cannot be read or parsed keeps the content that was last good, and
// the failure is logged once per change. Safe for concurrent use.
type File[T any] struct {
	what, path string
	parse      func([]byte) (T, error)
	o          Options

	mu      sync.Mutex
	checked time.Time
	info    os.FileInfo // nil: absent (AllowMissing)
	value   T
	failed  bool // the last reload failed (logged once per change)
}

// New reads the file now. what names the setting in errors and logs (e.g.
// "REDIS_PASSWORD_FILE"); parse turns the bytes into the value.
func New[T any](what, path string, parse func([]byte) (T, error), o Options) (*File[T], error) {
	if o.Every <= 0 {
		o.Every = DefaultEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	f := &File[T]{what: what, path: path, parse: parse, o: o}
	info, err := os.Stat(path)
	switch {
	case err == nil:
		v, err := f.read()
		if err != nil {
			return nil, err
		}
		f.info, f.value = info, v
	case o.AllowMissing && errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	f.checked = o.Now()
	return f, nil
}

// Path is the file's path.
func (f *File[T]) Path() string { return f.path }

func (f *File[T]) read() (T, error) {
	var zero T
	b, err := os.ReadFile(f.path)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", f.what, err)
	}
	v, err := f.parse(b)
	if err != nil {
		return zero, fmt.Errorf("%s %q: %w", f.what, f.path, err)
	}
	return v, nil
}

// Current returns the file's content, re-reading it first when it changed
// (checked at most once per Options.Every).
func (f *File[T]) Current() T {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.o.Now()
	if now.Sub(f.checked) < f.o.Every && !now.Before(f.checked) {
		return f.value
	}
	f.checked = now
	info, err := os.Stat(f.path)
	if err != nil {
		if f.o.AllowMissing && errors.Is(err, fs.ErrNotExist) {
			if f.info != nil {
				var zero T
				f.info, f.value, f.failed = nil, zero, false
				f.o.Logger.Info("file removed; its setting is now unset", "setting", f.what, "path", f.path)
			}
			return f.value
		}
		if !f.failed {
			f.o.Logger.Warn("file unreadable; keeping its last content", "setting", f.what, "path", f.path, "err", err)
		}
		f.failed = true
		return f.value
	}
	if f.info != nil && os.SameFile(info, f.info) && info.Size() == f.info.Size() && info.ModTime().Equal(f.info.ModTime()) {
		return f.value
	}
	v, err := f.read()
	if err != nil {
		if !f.failed {
			f.o.Logger.Warn("file changed but cannot be used; keeping its last content", "setting", f.what, "err", err)
		}
		f.failed = true
		// Not recorded as seen: the next check reads it again (a writer
		// may have been half-way through).
		return f.value
	}
	f.info, f.value, f.failed = info, v, false
	f.o.Logger.Info("file reloaded", "setting", f.what, "path", f.path)
	return f.value
}

package server

import "time"

// SetSendTimeouts shortens the send side's bounds for one test and
// returns the function that restores them.
func SetSendTimeouts(write, flush, close time.Duration) (restore func()) {
	w, f, c := writeTimeout, flushTimeout, closeTimeout
	writeTimeout, flushTimeout, closeTimeout = write, flush, close
	return func() { writeTimeout, flushTimeout, closeTimeout = w, f, c }
}

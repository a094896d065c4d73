// Package excerpt bounds how much of a client's input the gateway quotes
// back in an error message (a user id, a frame type, a status, a JSON
// error), so that a client cannot make the gateway echo megabytes. The
// protocol, the upgrade and the user-id rule share this one bound.
package excerpt

// MaxLen is the most bytes of the input an excerpt keeps.
const MaxLen = 64

// Of returns s, or its first MaxLen bytes followed by "..." when it is
// longer.
func Of(s string) string {
	if len(s) > MaxLen {
		return s[:MaxLen] + "..."
	}
	return s
}

package shardsub

import (
	"bufio"
	"fmt"
)

// writeValue writes v (as readValue returns it) back in RESP2, for the
// fuzz target's round trip.
func writeValue(w *bufio.Writer, v any) {
	switch v := v.(type) {
	case nil:
		_, _ = w.WriteString("$-1\r\n")
	case string:
		_, _ = fmt.Fprintf(w, "$%d\r\n%s\r\n", len(v), v)
	case respError:
		_, _ = fmt.Fprintf(w, "-%s\r\n", string(v))
	case int64:
		_, _ = fmt.Fprintf(w, ":%d\r\n", v)
	case []any:
		_, _ = fmt.Fprintf(w, "*%d\r\n", len(v))
		for _, x := range v {
			writeValue(w, x)
		}
	}
}

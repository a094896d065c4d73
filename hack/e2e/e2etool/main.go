// Command e2etool is the Go half of the end-to-end test (hack/e2e/run.sh):
// the parts that are clearer in Go than in bash.
//
//	e2etool run-pod   start a gateway process from a Deployment's pod template
//	e2etool presence  check presence crossing two gateways over WebSocket
//	e2etool browser   check the /demo page on two gateways in headless Chromium
//
// Every subcommand is bounded in time and prints one "ok:" line per check it
// passed; the first failed check ends it with a non-zero exit and a message
// saying what was expected and what was seen.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch os.Args[1] {
	case "run-pod":
		err = runPod(ctx, os.Args[2:])
	case "presence":
		err = checkPresence(ctx, os.Args[2:])
	case "browser":
		err = checkBrowser(ctx, os.Args[2:])
	case "metrics-adapter":
		err = metricsAdapter(ctx, os.Args[2:])
	case "hold":
		err = hold(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2etool %s: FAIL: %v\n", os.Args[1], err)
		stop()
		os.Exit(1) //nolint:gocritic // stop() above is the only deferred call
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: e2etool run-pod|presence|browser|metrics-adapter|hold [flags] (-h for a subcommand's flags)")
	os.Exit(2)
}

// okf prints one passed check.
func okf(format string, args ...any) {
	fmt.Printf("ok: "+format+"\n", args...)
}

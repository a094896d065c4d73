// Command printversion prints version.String; version_test.go builds it
// with -ldflags -X to check that the linker can set the variables.
package main

import (
	"fmt"

	"github.com/presencekit/presence-operator/internal/version"
)

func main() { fmt.Println(version.String("prog")) }

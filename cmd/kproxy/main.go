// Command kproxy is a Kubernetes Service proxy. See the README.
package main

import (
	"fmt"
	"os"

	"kproxy.dev/kproxy/internal/cli"
	_ "kproxy.dev/kproxy/internal/dataplane/all"
)

func main() {
	if err := cli.NewRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kproxy:", err)
		os.Exit(1)
	}
}

// Command exitnow exits before the plugin handshake.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "exitnow: giving up at once")
	os.Exit(1)
}

// Command stdoutjunk prints to stdout before serving, which breaks the
// go-plugin handshake (stdout carries it).
package main

import (
	"fmt"

	"github.com/plughost/gateway/shared"
)

func main() {
	fmt.Println("hello from a plugin that talks too much")
	shared.Serve(&shared.FakePlatform{})
}

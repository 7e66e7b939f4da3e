// Command gateway-plugin-matrix is the gateway's Matrix platform plugin.
// The host starts it; it is not meant to be run by hand.
package main

import (
	"github.com/plughost/gateway/plugins/matrix/adapter"
	"github.com/plughost/gateway/shared"
)

func main() { shared.Serve(&adapter.Adapter{}) }

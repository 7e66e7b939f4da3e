// Command gateway-plugin-discord is the gateway's Discord platform plugin.
// The host starts it; it is not meant to be run by hand.
package main

import (
	"github.com/plughost/gateway/plugins/discord/adapter"
	"github.com/plughost/gateway/shared"
)

func main() { shared.Serve(&adapter.Adapter{}) }

// Command gateway-plugin-slack is the gateway's Slack platform plugin.
// The host starts it; it is not meant to be run by hand.
package main

import (
	"github.com/plughost/gateway/plugins/slack/adapter"
	"github.com/plughost/gateway/shared"
)

func main() { shared.Serve(&adapter.Adapter{}) }

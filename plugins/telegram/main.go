// Command gateway-plugin-telegram is the gateway's Telegram platform plugin.
// The host starts it; it is not meant to be run by hand.
package main

import (
	"github.com/plughost/gateway/plugins/telegram/adapter"
	"github.com/plughost/gateway/shared"
)

func main() { shared.Serve(&adapter.Adapter{}) }

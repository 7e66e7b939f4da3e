// Command gateway-plugin-http is the gateway's HTTP platform: POST a message
// to /v1/messages and get the agent's reply in the response.
package main

import "github.com/plughost/gateway/shared"

// serve is shared.Serve; built with -tags gateway_protocol1 it serves
// protocol 1 only, as a plugin built before protocol 2 did (for tests).
var serve = shared.Serve

func main() {
	serve(newAdapter())
}

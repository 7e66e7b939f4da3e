// Command gateway-plugin-http is the gateway's HTTP platform: POST a message
// to /v1/messages and get the agent's reply in the response.
package main

import "github.com/plughost/gateway/shared"

func main() {
	shared.Serve(newAdapter())
}

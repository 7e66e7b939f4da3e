// Command mcpserver is an MCP server over stdio for tests (see
// host/tools/toolstest).
package main

import (
	"context"
	"log"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/plughost/gateway/host/tools/toolstest"
)

func main() {
	if err := toolstest.NewServer(nil).Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Printf("mcpserver: %v", err)
	}
}

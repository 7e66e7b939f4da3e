// Command nohandshake starts and never completes the plugin handshake.
package main

import "time"

func main() {
	for {
		time.Sleep(time.Hour)
	}
}

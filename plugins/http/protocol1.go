//go:build gateway_protocol1

package main

import "github.com/plughost/gateway/shared"

func init() { serve = shared.ServeV1 }

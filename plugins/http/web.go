package main

import (
	_ "embed"
	"net/http"
)

// indexHTML is the web chat page (issue 16): one self-contained file,
// no CDN, that talks to /v1/chat/completions on the same origin.
//
//go:embed web/index.html
var indexHTML []byte

// handleIndex serves the web chat page on GET / (config web_ui).
func (a *adapter) handleIndex(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Nothing but the page's own script and style; no framing.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(indexHTML)
}

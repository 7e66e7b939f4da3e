// Package webguard keeps web pages from driving the gateway's HTTP
// listeners (the HTTP platform, the admin endpoint): a page a local user
// visits can send requests to loopback, and with DNS rebinding read the
// answers. It refuses requests for a Host the listener does not answer to,
// cross-origin browser requests that are not explicitly allowed, and JSON
// endpoints called with another content type (a text/plain POST needs no
// CORS preflight). Same-origin pages, such as a chat page the listener
// serves itself, keep working.
package webguard

import (
	"encoding/json"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
)

// Options configure a guard for one listener.
type Options struct {
	// Listen is the listener's host:port; its host is always accepted.
	Listen string
	// AllowedHosts are further names the Host header may carry (without a
	// port). IP addresses and "localhost" are always accepted: DNS
	// rebinding needs a name the attacker controls.
	AllowedHosts []string
	// AllowedOrigins are the origins ("https://app.example.com") whose
	// pages may call the listener from the browser, cross-origin.
	AllowedOrigins []string
	// AnyHost turns off the Host check (a unix socket, which no browser
	// reaches).
	AnyHost bool
}

// guard is the handler Wrap returns.
type guard struct {
	next    http.Handler
	hosts   map[string]bool
	origins map[string]bool
	anyHost bool
	cop     *http.CrossOriginProtection
}

// Wrap returns next behind the checks, or an error naming an allowed origin
// that is not scheme://host[:port].
func Wrap(next http.Handler, opts Options) (http.Handler, error) {
	g := &guard{next: next, hosts: map[string]bool{}, origins: map[string]bool{}, anyHost: opts.AnyHost,
		cop: http.NewCrossOriginProtection()}
	if host, _, err := net.SplitHostPort(opts.Listen); err == nil && host != "" {
		g.hosts[strings.ToLower(host)] = true
	}
	for _, h := range opts.AllowedHosts {
		g.hosts[strings.ToLower(strings.TrimSpace(h))] = true
	}
	for _, o := range opts.AllowedOrigins {
		if err := g.cop.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("allowed_origins: %w", err)
		}
		g.origins[o] = true
	}
	g.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse(w, http.StatusForbidden, "cross-origin request refused: add its origin to allowed_origins to let that page call this listener")
	}))
	return g, nil
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.anyHost && !g.hostAllowed(r.Host) {
		refuse(w, http.StatusMisdirectedRequest, fmt.Sprintf("this listener does not answer to host %q: add it to allowed_hosts", r.Host))
		return
	}
	origin := r.Header.Get("Origin")
	if origin != "" && g.origins[origin] {
		w.Header().Add("Vary", "Origin")
		w.Header().Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Session-Id")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	if err := g.cop.Check(r); err != nil {
		refuse(w, http.StatusForbidden, "cross-origin request refused: add its origin to allowed_origins to let that page call this listener")
		return
	}
	if unsafeMethod(r.Method) && r.ContentLength != 0 && !isJSON(r.Header.Get("Content-Type")) {
		refuse(w, http.StatusUnsupportedMediaType, "send the request body as JSON with Content-Type: application/json")
		return
	}
	g.next.ServeHTTP(w, r)
}

// hostAllowed reports whether the listener answers to the Host header h.
func (g *guard) hostAllowed(h string) bool {
	host := h
	if hp, _, err := net.SplitHostPort(h); err == nil {
		host = hp
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return false
	}
	if net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return g.hosts[host]
}

func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// isJSON reports whether the Content-Type ct is application/json.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

func refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Loopback reports whether the listen address addr (host:port) can only be
// reached from this machine: a loopback IP or "localhost". An empty host,
// 0.0.0.0, :: or any other name is reachable from elsewhere.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

package config

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/plughost/gateway/host/provider"
)

// providerView is a Provider as it may be printed: the API key and header
// values (which often carry credentials) replaced by SensitivePlaceholder.
type providerView struct {
	Name           string            `json:"name"`
	Type           string            `json:"type"`
	BaseURL        string            `json:"base_url,omitempty"`
	APIKey         string            `json:"api_key,omitempty"`
	Timeout        string            `json:"timeout"`
	MaxConnections int               `json:"max_connections"`
	StreamIdle     string            `json:"stream_idle_timeout,omitempty"`
	Headers        map[string]string `json:"headers,omitempty"`
}

// view returns p with its secrets redacted. An empty key stays empty, so
// "no key configured" remains visible.
func (p Provider) view() providerView {
	v := providerView{
		Name: p.Name, Type: p.Type, BaseURL: provider.RedactURL(p.BaseURL),
		Timeout: p.Timeout.String(), MaxConnections: p.MaxConnections,
	}
	if p.StreamIdleTimeout > 0 {
		v.StreamIdle = p.StreamIdleTimeout.String()
	}
	if p.APIKey != "" {
		v.APIKey = SensitivePlaceholder
	}
	if len(p.Headers) > 0 {
		v.Headers = make(map[string]string, len(p.Headers))
		for k := range p.Headers {
			v.Headers[k] = SensitivePlaceholder
		}
	}
	return v
}

// Format prints the provider with its API key and header values redacted,
// whatever the verb, so that no fmt or log call can leak them.
func (p Provider) Format(f fmt.State, verb rune) {
	v := p.view()
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, p.GoString())
		return
	}
	switch verb {
	case 'v', 's', 'q':
		fmt.Fprintf(f, fmt.FormatString(f, verb), v)
	default:
		fmt.Fprintf(f, "%%!%c(config.Provider=%+v)", verb, v)
	}
}

// String returns the provider with its secrets redacted.
func (p Provider) String() string {
	return fmt.Sprintf("%+v", p.view())
}

// GoString returns the provider as Go syntax with its secrets redacted.
func (p Provider) GoString() string {
	v := p.view()
	keys := make([]string, 0, len(v.Headers))
	for k := range v.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	headers := make([]string, len(keys))
	for i, k := range keys {
		headers[i] = fmt.Sprintf("%q:%q", k, v.Headers[k])
	}
	return fmt.Sprintf("config.Provider{Name:%q, Type:%q, BaseURL:%q, APIKey:%q, Timeout:%d, MaxConnections:%d, Headers:map[string]string{%s}}",
		v.Name, v.Type, v.BaseURL, v.APIKey, p.Timeout, v.MaxConnections, strings.Join(headers, ", "))
}

// MarshalJSON encodes the provider with its secrets redacted.
func (p Provider) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(p.view())
	if err != nil {
		return nil, fmt.Errorf("encoding provider %q: %w", p.Name, err)
	}
	return b, nil
}

// MarshalJSON encodes the platform's settings without its config block,
// which is undecoded HCL (and may hold secrets); print the result of
// Redacted(DecodePlatformConfig(…)) for that.
func (p Platform) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(struct {
		Name         string  `json:"name"`
		Plugin       string  `json:"plugin"`
		Enabled      bool    `json:"enabled"`
		SessionScope string  `json:"session_scope"`
		SHA256       string  `json:"sha256,omitempty"`
		Restart      Restart `json:"restart"`
	}{p.Name, p.Plugin, p.Enabled, p.SessionScope, p.SHA256, p.Restart})
	if err != nil {
		return nil, fmt.Errorf("encoding platform %q: %w", p.Name, err)
	}
	return b, nil
}

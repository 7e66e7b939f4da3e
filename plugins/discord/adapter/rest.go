package adapter

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
)

// restTimeout bounds one REST call, retries for 502s included.
const restTimeout = 20 * time.Second

// rewriteTransport sends discordgo's requests to api_url. discordgo builds
// every REST URL from package variables rooted at discordgo.EndpointAPI
// ("https://discord.com/api/v9/"); changing those globals would race with
// other sessions, so each session gets an http.Client whose transport swaps
// that prefix for api_url (scheme, host and path, so /api/v9/x → /api/v10/x).
type rewriteTransport struct {
	base *url.URL
	next http.RoundTripper
}

func (t *rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	from := req.URL.String()
	if !strings.HasPrefix(from, discordgo.EndpointAPI) {
		return t.next.RoundTrip(req)
	}
	to, err := url.Parse(strings.TrimRight(t.base.String(), "/") + "/" + strings.TrimPrefix(from, discordgo.EndpointAPI))
	if err != nil {
		return nil, fmt.Errorf("rewriting %s onto api_url: %w", req.URL.Path, err)
	}
	out := req.Clone(req.Context())
	out.URL = to
	out.Host = ""
	return t.next.RoundTrip(out)
}

// newREST returns a discordgo session used only for REST: its gateway
// methods are never called (see gateway.go for why), and its reconnect loop
// is switched off in case anything ever does.
func newREST(s settings) (*discordgo.Session, *http.Transport, error) {
	sess, err := discordgo.New("Bot " + s.token)
	if err != nil {
		return nil, nil, fmt.Errorf("creating discord session: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	sess.Client = &http.Client{
		Timeout:   restTimeout,
		Transport: &rewriteTransport{base: s.apiURL, next: transport},
	}
	sess.ShouldReconnectOnError = false
	sess.StateEnabled = false
	// discordgo's limiter keeps one bucket per route (per channel for
	// messages), so a 429 in one channel does not hold up the others. Its
	// 429 retry sleeps without looking at the context: off. Every call the
	// plugin makes waits for rate limits itself, with the context
	// (restRequest in send.go).
	sess.ShouldRetryOnRateLimit = false
	sess.MaxRestRetries = 2
	// discordgo would print to stderr outside hclog; every error it sees is
	// returned to us and logged there instead.
	sess.LogLevel = -1
	return sess, transport, nil
}

// gatewayURL asks the REST API where the gateway is (gateway/bot, which
// also checks the token) and returns the websocket URL to dial.
func (a *Adapter) gatewayURL(ctx context.Context) (string, error) {
	raw, err := a.restRequest(ctx, a.rest, http.MethodGet, discordgo.EndpointGatewayBot, nil)
	var gb discordgo.GatewayBotResponse
	if err == nil {
		err = json.Unmarshal(raw, &gb)
	}
	if err != nil {
		return "", fmt.Errorf("asking Discord for the gateway URL: %w", err)
	}
	return withGatewayParams(gb.URL, a.cfg.gatewayVersion())
}

// withGatewayParams adds the version and encoding query to a gateway URL.
func withGatewayParams(raw, version string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("gateway URL %q: %w", raw, err)
	}
	if u.Host == "" {
		return "", fmt.Errorf("gateway URL %q has no host", raw)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	q := u.Query()
	q.Set("v", version)
	q.Set("encoding", "json")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

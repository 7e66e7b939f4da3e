package provider

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// MaxBodyBytes caps a provider's answer (a whole JSON reply, or one SSE
// line). A bigger answer is a permanent error: retrying gets the same one.
const MaxBodyBytes = 16 << 20

// RedirectError is a provider answering a chat request with a redirect. A
// redirected POST would turn into a GET (301, 302) or leave for another
// host, so no redirect is followed: base_url must name the final URL.
type RedirectError struct {
	// Status is the redirect's HTTP status.
	Status int
	// From is the URL requested; To is where the provider sent it.
	From, To string
}

// Error names the URL to configure instead.
func (e *RedirectError) Error() string {
	return fmt.Sprintf("HTTP %d redirects %s to %s; requests are not redirected: set base_url to the final URL", e.Status, RedactURL(e.From), RedactURL(e.To))
}

// refuseRedirects is the provider's http.Client CheckRedirect: it follows
// no redirect at all (which also refuses every cross-host one) and says
// which base_url to fix.
func refuseRedirects(req *http.Request, via []*http.Request) error {
	status := 0
	if req.Response != nil {
		status = req.Response.StatusCode
	}
	from := ""
	if len(via) > 0 {
		from = via[len(via)-1].URL.String()
	}
	return &RedirectError{Status: status, From: from, To: req.URL.String()}
}

// permanentTransportError explains a transport failure that no retry can
// fix (a redirect, TLS against a plain-HTTP server, a certificate the
// system does not trust, an unknown host), or returns "".
func permanentTransportError(err error, baseURL string) string {
	var re *RedirectError
	var rhe tls.RecordHeaderError
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var he x509.HostnameError
	var cie x509.CertificateInvalidError
	var dnse *net.DNSError
	switch {
	case errors.As(err, &re):
		return re.Error()
	case errors.Is(err, http.ErrSchemeMismatch), errors.As(err, &rhe):
		return fmt.Sprintf("base_url %s uses https but the server answered in plain HTTP: use http:// or the server's TLS port", baseURL)
	case errors.As(err, &cve), errors.As(err, &uae), errors.As(err, &he), errors.As(err, &cie):
		return fmt.Sprintf("the TLS certificate of base_url %s is not trusted (%v): check base_url's host", baseURL, err)
	case errors.As(err, &dnse) && dnse.IsNotFound:
		return fmt.Sprintf("the host of base_url %s does not exist: check base_url", baseURL)
	}
	return ""
}

// retryableNetErr reports whether a transport error may pass on retry: a
// connection refused, reset or cut, or a network timeout. A *url.Error is
// looked into, not taken as one (it satisfies net.Error whatever it wraps).
func retryableNetErr(err error) bool {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// PoolStats describes requests waiting for one of max_connections.
type PoolStats struct {
	// Waiting is how many requests wait for a connection now.
	Waiting int64
	// Waits counts the requests that got a connection; WaitSeconds is the
	// time they spent waiting for it, in total.
	Waits       uint64
	WaitSeconds float64
}

// poolWaits counts the time requests spend waiting for a pooled
// connection: that wait is not part of the provider's timeout.
type poolWaits struct {
	waiting atomic.Int64
	mu      sync.Mutex
	waits   uint64
	total   time.Duration
}

func (p *poolWaits) stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{Waiting: p.waiting.Load(), Waits: p.waits, WaitSeconds: p.total.Seconds()}
}

// connWait is one request's wait for a connection: start it before the
// request, and call got once it has a connection (httptrace GotConn) or
// gave up; only the first call counts.
type connWait struct {
	pool  *poolWaits
	start time.Time
	once  sync.Once
}

func (p *poolWaits) begin() *connWait {
	p.waiting.Add(1)
	return &connWait{pool: p, start: time.Now()}
}

// done ends the wait; connected says a connection was got (and the wait is
// counted).
func (w *connWait) done(connected bool) {
	w.once.Do(func() {
		w.pool.waiting.Add(-1)
		if connected {
			w.pool.mu.Lock()
			w.pool.waits++
			w.pool.total += time.Since(w.start)
			w.pool.mu.Unlock()
		}
	})
}

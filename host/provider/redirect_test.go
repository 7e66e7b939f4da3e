package provider

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A provider that redirects to another host must not get the configured
// headers (which may carry keys) sent there: Go's client copies every header
// but Authorization and Cookie to a redirect target. (Providers follow no
// redirect at all: refuseRedirects.)
func TestOpenAIDoesNotFollowRedirectsToAnotherHost(t *testing.T) {
	var leaked atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "" || r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/v1/chat/completions", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()

	p, err := NewOpenAI(Config{Name: "redir", Type: "openai", BaseURL: redirector.URL + "/v1",
		APIKey: testKey, Timeout: 5 * time.Second, MaxConnections: 2,
		Headers: map[string]string{"X-Api-Key": "header-secret"}}, &Options{Retry: RetryPolicy{MaxAttempts: 1, BaseDelay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Complete(context.Background(), userReq("hi"))
	var re *RedirectError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *RedirectError", err)
	}
	if n := leaked.Load(); n != 0 {
		t.Fatalf("the redirect target got the key or configured headers %d times", n)
	}
	if strings.Contains(err.Error(), "header-secret") || strings.Contains(err.Error(), testKey) {
		t.Fatalf("error shows a secret: %v", err)
	}

	// The error names the redirect, but never credentials in base_url.
	withCreds := strings.Replace(redirector.URL, "http://", "http://keyuser:keypass@", 1) + "/v1?key=querysecret"
	p2, err := NewOpenAI(Config{Name: "redir2", Type: "openai", BaseURL: withCreds, Timeout: 5 * time.Second, MaxConnections: 1},
		&Options{Retry: RetryPolicy{MaxAttempts: 1, BaseDelay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	_, err = p2.Complete(context.Background(), userReq("hi"))
	if err == nil {
		t.Fatal("a redirect was followed")
	}
	for _, secret := range []string{"keyuser", "keypass", "querysecret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the redirect error shows %q: %v", secret, err)
		}
	}
}

// A base_url carrying credentials is never printed in a transport error
// (config.Provider's printing is checked in host/config).
func TestBaseURLCredentialsAreNeverPrinted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: the request fails with a connection error
	base := "http://keyuser:keypass@" + addr + "/v1?api-key=querysecret"
	pc := Config{Name: "creds", Type: "openai", BaseURL: base, Timeout: 2 * time.Second, MaxConnections: 1}
	p, err := NewOpenAI(pc, &Options{Retry: RetryPolicy{MaxAttempts: 1, BaseDelay: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Complete(context.Background(), userReq("hi"))
	if err == nil {
		t.Fatal("a request to a closed port succeeded")
	}
	for _, shown := range []string{err.Error(), RedactURL(base)} {
		for _, secret := range []string{"keyuser", "keypass", "querysecret"} {
			if strings.Contains(shown, secret) {
				t.Errorf("%q shows %q", shown, secret)
			}
		}
	}
	if !strings.Contains(RedactURL(base), addr) {
		t.Errorf("the redacted URL lost its host: %s", RedactURL(base))
	}
}

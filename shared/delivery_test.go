package shared_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/plughost/gateway/shared"
)

func TestSendDeliveryErrorCrossesTheWire(t *testing.T) {
	want := &shared.DeliveryError{Reason: shared.DeliveryRateLimited, Message: "rate limited by Discord for 60 s",
		RetryAfter: 60 * time.Second, Posted: 2, Err: errors.New("cause stays in the plugin")}
	c := shared.TestPlatform(t, &shared.FakePlatform{
		SendFunc: func(context.Context, shared.Reply) ([]string, error) {
			return nil, fmt.Errorf("posting: %w", want) // wrapped: still classified
		},
	})
	_, err := c.Send(context.Background(), shared.Reply{Text: "x"})
	var de *shared.DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("Send error = %v (%T), want *DeliveryError", err, err)
	}
	if de.Reason != want.Reason || de.Message != want.Message || de.RetryAfter != want.RetryAfter || de.Posted != 2 {
		t.Errorf("got %+v, want %+v", de, want)
	}
}

func TestSendPlainErrorIsNotADeliveryError(t *testing.T) {
	c := shared.TestPlatform(t, &shared.FakePlatform{
		SendFunc: func(context.Context, shared.Reply) ([]string, error) { return nil, errors.New("boom") },
	})
	_, err := c.Send(context.Background(), shared.Reply{Text: "x"})
	var de *shared.DeliveryError
	if err == nil || errors.As(err, &de) {
		t.Fatalf("Send error = %v, want a plain error", err)
	}
}

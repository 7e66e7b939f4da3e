package adapter

import (
	"errors"
	"testing"
	"time"

	"github.com/plughost/gateway/shared"
)

func TestIdentifyBudgetWindow(t *testing.T) {
	b := newIdentifyBudget(2)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 2 {
		if err := b.take(t0.Add(time.Duration(i) * time.Minute)); err != nil {
			t.Fatalf("identify %d: %v", i+1, err)
		}
	}
	var fe *shared.FatalError
	if err := b.take(t0.Add(30 * time.Minute)); !errors.As(err, &fe) || fe.Code != CodeIdentifyBudget {
		t.Fatalf("third identify within the hour = %v, want fatal %s", err, CodeIdentifyBudget)
	}
	if err := b.take(t0.Add(time.Hour)); err != nil {
		t.Fatalf("an hour after the first identify the budget has room again: %v", err)
	}
}

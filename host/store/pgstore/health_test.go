package pgstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/host/store/pgstore"
	"github.com/plughost/gateway/host/store/pgtest"
)

// A server that goes away makes writes fail with the reason and the store
// "failing"; it is "ok" again by itself once the server is back (the probe),
// and the writes after that commit.
func TestHealthFailsAndRecovers(t *testing.T) {
	db := pg.CreateDatabase(t)
	proxy := pgtest.NewProxy(t, pg.SocketPath())
	s, err := pgstore.Open(context.Background(), pg.DSNVia(proxy.Addr(), db), &pgstore.Options{ProbeInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	u := store.Message{Role: "user", Content: "a", Time: time.Now()}
	if err := s.AppendTurn(ctx, "k", 0, u); err != nil {
		t.Fatal(err)
	}
	proxy.Refuse()
	if err := s.AppendTurn(ctx, "k", 0, u); err == nil {
		t.Fatal("a write with the server gone succeeded")
	}
	if h := s.Health(); h.State != store.StateFailing || h.LastError == "" {
		t.Fatalf("health with the server gone = %+v", h)
	}
	proxy.Restore()
	deadline := time.Now().Add(20 * time.Second)
	for s.Health().State != store.StateOK {
		if time.Now().After(deadline) {
			t.Fatalf("still %+v after the server came back", s.Health())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.AppendTurn(ctx, "k", 0, u); err != nil {
		t.Fatal(err)
	}
	if _, hist, err := s.History("k", 10); err != nil || len(hist) != 2 || !strings.HasPrefix(hist[1].Content, "a") {
		t.Fatalf("history = %+v, %v; want the two committed turns", hist, err)
	}
}

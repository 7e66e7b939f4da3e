package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// A turn marked undelivered stays in the transcript, flagged, and is left
// out of the history; the limit counts delivered messages only.
func TestMarkUndeliveredLeavesTheTurnOutOfHistory(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	ctx := context.Background()
	base := time.Now()
	for i, text := range []string{"one", "two", "three"} {
		at := base.Add(time.Duration(i) * time.Second)
		if err := s.AppendTurn(ctx, "k", 0, Message{Role: "user", Content: text, Time: at}, Message{Role: "assistant", Content: "re: " + text, Time: at}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkUndelivered(ctx, "k", 0, base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_, hist, err := s.History("k", 4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range hist {
		got = append(got, m.Content)
	}
	if want := []string{"one", "re: one", "three", "re: three"}; len(got) != len(want) || got[0] != want[0] || got[2] != want[2] || got[3] != want[3] {
		t.Fatalf("history = %q, want %q", got, want)
	}
	all, err := s.Transcript("k", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 || !all[2].Undelivered || !all[3].Undelivered || all[0].Undelivered || all[4].Undelivered {
		t.Fatalf("transcript = %+v, want turn two (only) flagged", all)
	}
	// An unknown turn is left alone.
	if err := s.MarkUndelivered(ctx, "k", 0, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestHealthIsOKWithFreeSpace(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), FileName))
	defer s.Close()
	h := s.Health()
	if h.State != StateOK || h.LastError != "" || h.FreeBytes == 0 {
		t.Fatalf("fresh store health = %+v", h)
	}
}

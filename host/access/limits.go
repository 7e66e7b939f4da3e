package access

import (
	"fmt"
	"math"
	"time"

	"github.com/plughost/gateway/host/router"
	"github.com/plughost/gateway/shared"
)

// userKey is one user of one platform, talking to one agent: what limits
// and usage are counted by.
type userKey struct {
	platform, agent, user string
}

// userState is the live counting state of one user.
type userState struct {
	// recent holds the times of the messages admitted in the last minute.
	recent []time.Time
	// day is the UTC day tokens counts, "2006-01-02".
	day    string
	tokens int64
	// quietUntil: no further limit notice before then (one notice per
	// refusal, not one per message).
	quietUntil time.Time
}

func utcDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// tokensToday returns the tokens counted on now's UTC day.
func (s *userState) tokensToday(now time.Time) int64 {
	if s.day != utcDay(now) {
		s.day, s.tokens = utcDay(now), 0
	}
	return s.tokens
}

// state returns k's state, creating it; g.mu must be held.
func (g *Gate) state(k userKey) *userState {
	s := g.users[k]
	if s == nil {
		s = &userState{}
		g.users[k] = s
	}
	return s
}

// withinLimits counts m against its user's limits and reports whether it
// may go on. Chat commands are never refused (a user past a limit can still
// /stop or /new) nor counted: they do not reach the provider.
func (g *Gate) withinLimits(platform string, pol Policy, m *shared.Message) bool {
	if m.UserID == "" || router.IsCommand(m.Text) {
		return true
	}
	now := g.opts.Now()
	g.mu.Lock()
	agent := pol.Agent
	lim := g.limits[agent]
	if lim == (Limits{}) {
		g.mu.Unlock()
		return true
	}
	g.sweep(now)
	s := g.state(userKey{platform, agent, m.UserID})
	var notice, reason string
	switch {
	case lim.TokensPerDay > 0 && s.tokensToday(now) >= lim.TokensPerDay:
		reason = "tokens"
		if pol.AnswerEvery || !now.Before(s.quietUntil) {
			next := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
			notice = fmt.Sprintf("You have used today's allowance of %d tokens. Try again after 00:00 UTC (in %s).",
				lim.TokensPerDay, roundDuration(next.Sub(now).Truncate(time.Minute)+time.Minute))
			s.quietUntil = now.Add(time.Minute)
		}
	case lim.MessagesPerMinute > 0:
		cut := 0
		for cut < len(s.recent) && now.Sub(s.recent[cut]) >= time.Minute {
			cut++
		}
		s.recent = s.recent[cut:]
		if len(s.recent) < lim.MessagesPerMinute {
			s.recent = append(s.recent, now)
			break
		}
		reason = "rate"
		free := s.recent[0].Add(time.Minute)
		if pol.AnswerEvery || !now.Before(s.quietUntil) {
			wait := int(math.Ceil(free.Sub(now).Seconds()))
			notice = fmt.Sprintf("Slow down: at most %d messages a minute. Try again in %d s.", lim.MessagesPerMinute, max(wait, 1))
			s.quietUntil = free
		}
	}
	g.mu.Unlock()
	if reason == "" {
		return true
	}
	g.metrics.refused(platform, reason)
	g.log.Debug("message over a limit", "platform", platform, "user", shared.LogValue(m.UserID), "limit", reason)
	if notice != "" {
		// Busy: "send it again later" (the HTTP API answers 429).
		r := noticeTo(m, notice)
		r.Kind = shared.KindBusy
		g.notify(platform, r)
	}
	return false
}

// sweepEvery is how often idle users' counting state is dropped.
const sweepEvery = 10 * time.Minute

// sweep drops the state of users with nothing left to count (no message in
// the last minute, no tokens today, no notice pending), so the map holds
// today's active users, not everyone ever seen; g.mu must be held.
func (g *Gate) sweep(now time.Time) {
	if now.Sub(g.lastSweep) < sweepEvery {
		return
	}
	g.lastSweep = now
	for k, s := range g.users {
		idle := len(s.recent) == 0 || now.Sub(s.recent[len(s.recent)-1]) >= time.Minute
		if idle && s.tokensToday(now) == 0 && !now.Before(s.quietUntil) {
			delete(g.users, k)
		}
	}
}

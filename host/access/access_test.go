package access

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plughost/gateway/host/provider"
	"github.com/plughost/gateway/host/router"
	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/shared"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sent records the notices the gate sends.
type sent struct {
	mu      sync.Mutex
	replies []shared.Reply
}

func (s *sent) Send(_ context.Context, _ string, r shared.Reply) ([]string, error) {
	s.mu.Lock()
	s.replies = append(s.replies, r)
	s.mu.Unlock()
	return []string{"m"}, nil
}

func (s *sent) all() []shared.Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]shared.Reply(nil), s.replies...)
}

type fixture struct {
	t     testing.TB
	path  string
	st    *store.Store
	clock *clock
	sent  *sent
	gate  *Gate
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{t: t, path: filepath.Join(t.TempDir(), "s.db"),
		clock: &clock{t: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}, sent: &sent{}}
	f.open()
	t.Cleanup(f.close)
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	st, err := store.Open(f.path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	g, err := New(Options{Store: st, Sender: f.sent, Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	f.st, f.gate = st, g
}

func (f *fixture) close() {
	if f.gate == nil {
		return
	}
	f.gate.Close()
	_ = f.st.Close()
	f.gate = nil
}

// restart closes the gate and store and opens them again, as a host restart.
func (f *fixture) restart(platforms map[string]Policy, limits map[string]Limits) {
	f.close()
	f.open()
	f.gate.Configure(platforms, limits)
}

// settle waits for the gate's notices and writes in flight.
func (f *fixture) settle() { f.gate.work.Wait() }

func dm(user, text string) *shared.Message {
	return &shared.Message{ID: "m-" + text, ConversationID: "D-" + user, UserID: user, UserName: "n-" + user, Direct: true, Text: text}
}

func group(user, text string) *shared.Message {
	return &shared.Message{ID: "g-" + text, ConversationID: "C1", GuildID: "G1", UserID: user, Text: text}
}

// codeIn returns the code a pairing notice carries.
func codeIn(t testing.TB, text string) string {
	t.Helper()
	const marker = "gateway pairing approve "
	i := strings.Index(text, marker)
	if i < 0 {
		t.Fatalf("no approve instruction in %q", text)
	}
	return text[i+len(marker) : i+len(marker)+codeLen]
}

var pairing = map[string]Policy{"discord": {DM: DMPairing}}

func TestUnknownDMGetsOneCodePerHour(t *testing.T) {
	f := newFixture(t)
	f.gate.Configure(pairing, nil)
	if f.gate.Admit("discord", dm("u1", "hi")) {
		t.Fatal("an unknown user's DM was admitted under pairing")
	}
	f.settle()
	notices := f.sent.all()
	if len(notices) != 1 || notices[0].ConversationID != "D-u1" || notices[0].Kind != shared.KindNotice {
		t.Fatalf("notices = %+v, want one pairing notice in D-u1", notices)
	}
	code := codeIn(t, notices[0].Text)
	f.clock.Add(59 * time.Minute)
	if f.gate.Admit("discord", dm("u1", "again")) {
		t.Fatal("second DM admitted")
	}
	f.settle()
	if n := len(f.sent.all()); n != 1 {
		t.Fatalf("%d notices within the hour, want 1", n)
	}
	p, err := f.gate.List()
	if err != nil || len(p.Pending) != 1 || p.Pending[0].Code != code || p.Pending[0].UserName != "n-u1" {
		t.Fatalf("pending = %+v, %v; want code %s", p.Pending, err, code)
	}
	// After the hour: the first code expired, a new one is sent.
	f.clock.Add(time.Minute)
	f.gate.Admit("discord", dm("u1", "third"))
	f.settle()
	notices = f.sent.all()
	if len(notices) != 2 || codeIn(t, notices[1].Text) == code {
		t.Fatalf("notices = %+v, want a second, new code after an hour", notices)
	}
	if _, err := f.gate.Approve(context.Background(), code); !errors.Is(err, store.ErrUnknownCode) {
		t.Fatalf("approving the replaced code: %v, want unknown", err)
	}
}

func TestApproveAnnouncesSurvivesRestartAndRevokeStops(t *testing.T) {
	f := newFixture(t)
	f.gate.Configure(pairing, nil)
	f.gate.Admit("discord", dm("u1", "hi"))
	f.settle()
	code := codeIn(t, f.sent.all()[0].Text)
	a, err := f.gate.Approve(context.Background(), " "+strings.ToLower(code)+"\n")
	if err != nil || a.Platform != "discord" || a.UserID != "u1" {
		t.Fatalf("Approve = %+v, %v", a, err)
	}
	f.settle()
	if n := f.sent.all(); len(n) != 2 || n[1].ConversationID != "D-u1" || !strings.Contains(n[1].Text, "approved") {
		t.Fatalf("notices = %+v, want the approval announced in D-u1", n)
	}
	if !f.gate.Admit("discord", dm("u1", "now")) {
		t.Fatal("approved user not admitted")
	}
	// Approval is per platform.
	f.gate.Configure(map[string]Policy{"discord": {DM: DMPairing}, "tg": {DM: DMPairing}}, nil)
	if f.gate.Admit("tg", dm("u1", "other platform")) {
		t.Fatal("approval on discord admitted the user on another platform")
	}
	f.restart(pairing, nil)
	if !f.gate.Admit("discord", dm("u1", "after restart")) {
		t.Fatal("approval did not survive a restart")
	}
	if _, err := f.gate.Approve(context.Background(), code); !errors.Is(err, store.ErrUnknownCode) {
		t.Fatalf("approving a used code: %v, want unknown", err)
	}
	p, _ := f.gate.List()
	if len(p.Approved) != 1 || p.Approved[0].UserID != "u1" {
		t.Fatalf("approved = %+v", p.Approved)
	}
	if err := f.gate.Revoke(context.Background(), "discord", "u1"); err != nil {
		t.Fatal(err)
	}
	if f.gate.Admit("discord", dm("u1", "revoked")) {
		t.Fatal("revoked user admitted")
	}
	if err := f.gate.Revoke(context.Background(), "discord", "u1"); !errors.Is(err, store.ErrNotPaired) || !IsPairingError(err) {
		t.Fatalf("second revoke: %v, want not paired", err)
	}
}

func TestExpiredAndUnknownCodes(t *testing.T) {
	f := newFixture(t)
	f.gate.Configure(pairing, nil)
	f.gate.Admit("discord", dm("u1", "hi"))
	f.settle()
	code := codeIn(t, f.sent.all()[0].Text)
	f.clock.Add(time.Hour)
	_, err := f.gate.Approve(context.Background(), code)
	var exp *store.ExpiredCodeError
	if !errors.As(err, &exp) || !strings.Contains(err.Error(), "expired") || !IsPairingError(err) {
		t.Fatalf("approving an expired code: %v", err)
	}
	if f.gate.Admit("discord", dm("u1", "still")) {
		// (A new code is sent now, since the hour is over.)
		t.Fatal("expired code approved the user anyway")
	}
	if _, err := f.gate.Approve(context.Background(), "ZZZZZZZZ"); !errors.Is(err, store.ErrUnknownCode) || !strings.Contains(err.Error(), "ZZZZZZZZ") {
		t.Fatalf("unknown code: %v", err)
	}
	p, _ := f.gate.List()
	for _, c := range p.Pending {
		if c.Code == code {
			t.Fatal("an expired code is listed as pending")
		}
	}
}

func TestPoliciesAndAllowedUsers(t *testing.T) {
	f := newFixture(t)
	f.gate.Configure(map[string]Policy{
		"open":  {DM: DMOpen},
		"allow": {DM: DMAllowlist, AllowedUsers: []string{"friend"}},
		"pair":  {DM: DMPairing, AllowedUsers: []string{"friend"}},
	}, nil)
	f.gate.SetPluginAllowed("plug", []string{"listed"})
	cases := []struct {
		platform, user string
		want           bool
	}{
		{"open", "anyone", true},
		{"allow", "friend", true},
		{"allow", "stranger", false},
		{"pair", "friend", true},
		{"plug", "listed", true}, // unconfigured platform: pairing, but the plugin's list allows
		{"plug", "stranger", false},
	}
	for _, c := range cases {
		if got := f.gate.Admit(c.platform, dm(c.user, "x")); got != c.want {
			t.Errorf("%s/%s: admitted %v, want %v", c.platform, c.user, got, c.want)
		}
	}
	// Group chats are not the DM policy's business.
	if !f.gate.Admit("allow", group("stranger", "hello")) {
		t.Error("a group message was refused by the DM policy")
	}
	// A DM without a user id cannot be paired.
	if f.gate.Admit("pair", &shared.Message{ConversationID: "D", Direct: true, Text: "x"}) {
		t.Error("a DM without a user id was admitted under pairing")
	}
	f.settle()
	// Only the stranger under pairing got a code; allowlist stays silent.
	if n := f.sent.all(); len(n) != 1 || n[0].ConversationID != "D-stranger" || !strings.Contains(n[0].Text, "pairing code") {
		t.Errorf("notices = %+v, want one pairing code (plug/stranger)", n)
	}
}

func TestMessagesPerMinute(t *testing.T) {
	f := newFixture(t)
	f.gate.Configure(map[string]Policy{"d": {DM: DMOpen}}, map[string]Limits{DefaultAgent: {MessagesPerMinute: 3}})
	for i := 0; i < 3; i++ {
		if !f.gate.Admit("d", dm("u", "m")) {
			t.Fatalf("message %d refused", i+1)
		}
		f.clock.Add(10 * time.Second)
	}
	if f.gate.Admit("d", dm("u", "fourth")) {
		t.Fatal("the 4th message within a minute was admitted")
	}
	f.settle()
	n := f.sent.all()
	if len(n) != 1 || n[0].Text != "Slow down: at most 3 messages a minute. Try again in 30 s." || n[0].ReplyToID != "m-fourth" || n[0].Kind != shared.KindBusy {
		t.Fatalf("notices = %+v", n)
	}
	// Commands go through and are not counted; a fifth message is refused
	// without a second notice.
	if !f.gate.Admit("d", dm("u", "/stop")) {
		t.Fatal("a command was refused by the rate limit")
	}
	if f.gate.Admit("d", dm("u", "fifth")) {
		t.Fatal("5th admitted")
	}
	// Another user is counted apart.
	if !f.gate.Admit("d", dm("v", "mine")) {
		t.Fatal("another user was limited")
	}
	f.settle()
	if len(f.sent.all()) != 1 {
		t.Fatalf("notices = %+v, want only one", f.sent.all())
	}
	f.clock.Add(30 * time.Second)
	if !f.gate.Admit("d", dm("u", "later")) {
		t.Fatal("refused once the oldest message left the minute")
	}
}

func TestTokensPerDayFromRecordedUsageAcrossRestartAndMidnight(t *testing.T) {
	f := newFixture(t)
	policies := map[string]Policy{"d": {DM: DMOpen}}
	limits := map[string]Limits{DefaultAgent: {TokensPerDay: 100}}
	f.gate.Configure(policies, limits)
	ctx := router.WithOrigin(context.Background(), router.Origin{Platform: "d", UserID: "u", Direct: true})
	f.gate.RecordTurn(ctx, "d:D-u", provider.Usage{PromptTokens: 60, CompletionTokens: 39})
	if !f.gate.Admit("d", dm("u", "under")) {
		t.Fatal("refused under the limit")
	}
	f.gate.RecordTurn(ctx, "d:D-u", provider.Usage{PromptTokens: 1, CompletionTokens: 0})
	if f.gate.Admit("d", dm("u", "over")) {
		t.Fatal("admitted at the daily limit")
	}
	f.settle()
	if n := f.sent.all(); len(n) != 1 || !strings.Contains(n[0].Text, "00:00 UTC (in 12h1m)") {
		t.Fatalf("notices = %+v", n)
	}
	f.restart(policies, limits)
	if f.gate.Admit("d", dm("u", "after restart")) {
		t.Fatal("today's tokens were forgotten by a restart")
	}
	u, err := f.gate.Report(f.clock.Now().Add(-time.Hour), 0)
	if err != nil || u.Total.TotalTokens != 100 || len(u.Users) != 1 || u.Users[0].UserID != "u" ||
		u.Users[0].PromptTokens != 61 || u.Users[0].Turns != 2 || len(u.ByAgent) != 1 || u.ByAgent[0].Agent != DefaultAgent {
		t.Fatalf("Report = %+v, %v", u, err)
	}
	f.clock.Add(12 * time.Hour)
	if !f.gate.Admit("d", dm("u", "next day")) {
		t.Fatal("still refused on the next UTC day")
	}
	if u, _ := f.gate.Report(f.clock.Now().Add(-time.Hour), 0); u.Total.Turns != 0 {
		t.Fatalf("since excludes nothing: %+v", u)
	}
}

func TestReportTopUsers(t *testing.T) {
	f := newFixture(t)
	f.gate.Configure(map[string]Policy{"d": {DM: DMOpen}}, nil)
	for i, user := range []string{"a", "b", "c"} {
		ctx := router.WithOrigin(context.Background(), router.Origin{Platform: "d", UserID: user})
		f.gate.RecordTurn(ctx, "k", provider.Usage{PromptTokens: int64(10 * (i + 1))})
	}
	// A turn without an origin (a test agent, a tool) is not accounted.
	f.gate.RecordTurn(context.Background(), "k", provider.Usage{PromptTokens: 1000})
	f.settle()
	u, err := f.gate.Report(time.Time{}, 2)
	if err != nil || len(u.Users) != 2 || u.Users[0].UserID != "c" || u.Users[1].UserID != "b" || u.UsersOmitted != 1 || u.Total.TotalTokens != 60 {
		t.Fatalf("Report = %+v, %v", u, err)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	if s, err := ParseSince("", now); err != nil || !s.Equal(now.Add(-24*time.Hour)) {
		t.Errorf("default: %v %v", s, err)
	}
	if s, err := ParseSince("90m", now); err != nil || !s.Equal(now.Add(-90*time.Minute)) {
		t.Errorf("90m: %v %v", s, err)
	}
	if s, err := ParseSince("2026-01-01T00:00:00Z", now); err != nil || !s.Equal(now.Add(-24*time.Hour)) {
		t.Errorf("RFC 3339: %v %v", s, err)
	}
	for _, bad := range []string{"yesterday", "-1h", "0s"} {
		if _, err := ParseSince(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestIdleUsersAreSwept(t *testing.T) {
	f := newFixture(t)
	f.gate.Configure(map[string]Policy{"d": {DM: DMOpen}}, map[string]Limits{DefaultAgent: {MessagesPerMinute: 5}})
	for _, u := range []string{"a", "b", "c"} {
		f.gate.Admit("d", dm(u, "x"))
	}
	f.clock.Add(sweepEvery)
	f.gate.Admit("d", dm("z", "x"))
	f.gate.mu.Lock()
	n := len(f.gate.users)
	f.gate.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d users kept after the sweep, want only the active one", n)
	}
}

// On a platform where each message waits for its answer (HTTP), every
// refusal is answered.
func TestAnswerEveryRefusal(t *testing.T) {
	f := newFixture(t)
	f.gate.Configure(map[string]Policy{
		"web":   {DM: DMOpen, AnswerEvery: true},
		"pair":  {DM: DMPairing, AnswerEvery: true},
		"allow": {DM: DMAllowlist, AnswerEvery: true},
	}, map[string]Limits{DefaultAgent: {MessagesPerMinute: 1}})
	f.gate.Admit("web", dm("u", "one"))
	for _, text := range []string{"two", "three"} {
		if f.gate.Admit("web", dm("u", text)) {
			t.Fatalf("%s admitted", text)
		}
	}
	f.gate.Admit("pair", dm("p", "one"))
	f.gate.Admit("pair", dm("p", "two"))
	f.gate.Admit("allow", dm("a", "one"))
	f.settle()
	got := map[string]string{}
	for _, r := range f.sent.all() {
		got[r.ConversationID+"/"+r.ReplyToID] = r.Text
	}
	for id, want := range map[string]string{
		"D-u/m-two": "Slow down", "D-u/m-three": "Slow down", "D-p/m-one": "I don't know you yet",
		"D-p/m-two": "Your pairing code is waiting", "D-a/m-one": "You are not allowed",
	} {
		if !strings.HasPrefix(got[id], want) {
			t.Errorf("answer to %s = %q, want %q…", id, got[id], want)
		}
	}
	n := len(got)
	if len(f.sent.all()) != 5 || n != 5 {
		t.Fatalf("notices = %+v; want 2 slow-downs, a code, a waiting notice, a refusal", f.sent.all())
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/plughost/gateway/host/provider/providertest"
	"github.com/plughost/gateway/plugins/discord/fakediscord"
)

// accessConfig is the fake OpenAI provider, an agent block with limits, and
// a Discord platform with an access block.
func accessConfig(ai *providertest.Server, fake *fakediscord.Server, limits, access string, pluginExtra ...string) string {
	return fmt.Sprintf(`
provider "openai" {
  type     = "openai"
  base_url = %q
  api_key  = "sk-test-key"
}
agent {
  model = "openai/test-model"
  limits {
    %s
  }
}
platform "discord" {
  plugin = "discord"
  access {
    %s
  }
  config {
    token   = %q
    api_url = %q
    %s
  }
  restart {
    initial_backoff = "50ms"
    max_backoff     = "200ms"
  }
}
`, ai.URL, limits, access, fakediscord.DefaultToken, fake.APIURL, strings.Join(pluginExtra, "\n"))
}

// directMessage is a Discord DM: no guild id.
func directMessage(user, text string) *discordgo.Message {
	return &discordgo.Message{
		ChannelID: "D" + user,
		Author:    &discordgo.User{ID: user, Username: "user" + user},
		Content:   text,
	}
}

// postedIn returns the messages the bot posted in channel.
func postedIn(fake *fakediscord.Server, channel string) []string {
	var out []string
	for _, m := range fake.Messages() {
		if m.ChannelID == channel {
			out = append(out, m.Content)
		}
	}
	return out
}

// pairingCode waits for the pairing notice in channel and returns its code.
func pairingCode(t *testing.T, fake *fakediscord.Server, channel string) string {
	t.Helper()
	const marker = "gateway pairing approve "
	m := fake.WaitMessage(t, 10*time.Second, "a pairing code in "+channel, func(m fakediscord.PostedMessage) bool {
		return m.ChannelID == channel && strings.Contains(m.Content, marker)
	})
	rest := m.Content[strings.Index(m.Content, marker)+len(marker):]
	code, _, _ := strings.Cut(rest, "`")
	if len(code) != 8 {
		t.Fatalf("no 8-character code in %q", m.Content)
	}
	return code
}

// adminGet GETs path from the admin endpoint and decodes the JSON answer.
func adminGet(t *testing.T, e *env, path string, out any) {
	t.Helper()
	resp, err := http.Get("http://" + e.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

func TestDiscordDMPairing(t *testing.T) {
	t.Parallel()
	ai := newFakeOpenAI(t)
	fake := fakediscord.New(t)
	e := newEnv(t)
	e.install("discord", "discord")
	e.writeConfig(accessConfig(ai, fake, "", `allowed_users = ["900"]`))
	h := e.start()
	e.waitPlatform("discord", 20*time.Second, inState("running"))

	// An unknown DM gets a code; the provider is not called.
	fake.InjectMessage(directMessage("100", "hello"))
	code := pairingCode(t, fake, "D100")
	// A second DM within the hour gets no second code (and no answer).
	fake.InjectMessage(directMessage("100", "hello again"))
	// A user in allowed_users is answered without pairing; once that
	// answer is out, the DM before it has been handled too.
	fake.InjectMessage(directMessage("900", "trusted"))
	waitPosted(t, fake, "D900", "turns=1 last=trusted")
	if got := postedIn(fake, "D100"); len(got) != 1 {
		t.Fatalf("posted in D100: %q; want the one pairing notice", got)
	}
	if n := ai.Served(); n != 1 {
		t.Fatalf("the provider was called %d times; want once (for the allowed user only)", n)
	}

	var list struct {
		Pending []struct{ Code, Platform, UserID string } `json:"pending"`
	}
	out, stderr, exit := e.gw("pairing", "list", "-json")
	if exit != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Pending) != 1 || list.Pending[0].Code != code {
		t.Fatalf("pairing list -json: exit %d, %s %s", exit, out, stderr)
	}
	if out, _, exit := e.gw("pairing", "list"); exit != 0 || !strings.Contains(out, code) {
		t.Fatalf("pairing list: exit %d\n%s", exit, out)
	}

	// An unknown code exits 1 with the reason.
	if _, stderr, exit := e.gw("pairing", "approve", "WRONG234"); exit != 1 || !strings.Contains(stderr, "unknown pairing code WRONG234") {
		t.Fatalf("approve of an unknown code: exit %d, %q", exit, stderr)
	}
	out, stderr, exit = e.gw("pairing", "approve", code)
	if exit != 0 || !strings.Contains(out, "approved user 100") {
		t.Fatalf("approve: exit %d, %q %q", exit, out, stderr)
	}
	// The approval is announced in the user's DM; the code is used up.
	fake.WaitMessage(t, 10*time.Second, "the approval notice", func(m fakediscord.PostedMessage) bool {
		return m.ChannelID == "D100" && strings.Contains(m.Content, "approved")
	})
	if _, _, exit := e.gw("pairing", "approve", code); exit != 1 {
		t.Fatalf("approving a used code: exit %d, want 1", exit)
	}
	fake.InjectMessage(directMessage("100", "now"))
	waitPosted(t, fake, "D100", "turns=1 last=now")

	// The approval survives a restart.
	h.stop()
	e.start()
	e.waitPlatform("discord", 20*time.Second, inState("running"))
	fake.InjectMessage(directMessage("100", "after restart"))
	waitPosted(t, fake, "D100", "turns=2 last=after restart")

	var usage struct {
		Users []struct {
			Platform, Agent string
			UserID          string `json:"user_id"`
			Turns           int
			Prompt          int64 `json:"prompt_tokens"`
			Completion      int64 `json:"completion_tokens"`
		} `json:"users"`
	}
	adminGet(t, e, "/v1/usage?since=1h", &usage)
	var found bool
	for _, u := range usage.Users {
		if u.Platform == "discord" && u.UserID == "100" {
			found = true
			// The fake counts words: prompt "now" (1), then "now",
			// "turns=1 last=now", "after restart" (5); completions
			// "turns=1 last=now" (2) and "turns=2 last=after restart" (3).
			if u.Agent != "default" || u.Turns != 2 || u.Prompt != 6 || u.Completion != 5 {
				t.Errorf("usage of user 100 = %+v; want 2 turns, 6 prompt and 5 completion tokens", u)
			}
		}
	}
	if !found {
		t.Fatalf("/v1/usage has no line for user 100: %+v", usage)
	}
	if out, _, exit := e.gw("usage", "-since", "1h"); exit != 0 || !strings.Contains(out, "100") {
		t.Fatalf("gateway usage: exit %d\n%s", exit, out)
	}
	// Counters count since the process started: the turn after the restart.
	metrics := getBody(t, "http://"+e.admin+"/metrics")
	if !strings.Contains(metrics, `gateway_tokens_total{agent="default",kind="prompt",platform="discord"} 5`) {
		t.Errorf("metrics lack the prompt tokens of platform discord:\n%s", grepLines(metrics, "gateway_tokens_total"))
	}
	if strings.Contains(grepLines(metrics, "gateway_tokens_total"), `"100"`) {
		t.Error("a user id is a metrics label")
	}

	// Revoke stops the user again: no answer, no provider call.
	if _, stderr, exit := e.gw("pairing", "revoke", "discord", "100"); exit != 0 {
		t.Fatalf("revoke: exit %d %q", exit, stderr)
	}
	if _, stderr, exit := e.gw("pairing", "revoke", "discord", "100"); exit != 1 || !strings.Contains(stderr, "not approved") {
		t.Fatalf("second revoke: exit %d %q", exit, stderr)
	}
	served := ai.Served()
	fake.InjectMessage(directMessage("100", "revoked"))
	fake.InjectMessage(directMessage("900", "still trusted"))
	waitPosted(t, fake, "D900", "turns=2 last=still trusted")
	if n := ai.Served(); n != served+1 {
		t.Fatalf("provider calls went from %d to %d; want only the allowed user's", served, n)
	}
	for _, m := range postedIn(fake, "D100") {
		if strings.Contains(m, "revoked") {
			t.Fatalf("the revoked user was answered: %q", m)
		}
	}
}

// A user listed in the plugin's own allowed_users is allowed by the
// operator already: answered under the default pairing policy, no code.
func TestDiscordPluginAllowedUsersSkipPairing(t *testing.T) {
	t.Parallel()
	ai := newFakeOpenAI(t)
	fake := fakediscord.New(t)
	e := newEnv(t)
	e.install("discord", "discord")
	e.writeConfig(accessConfig(ai, fake, "", "", `allowed_users = ["300"]`))
	e.start()
	e.waitPlatform("discord", 20*time.Second, inState("running"))
	fake.InjectMessage(directMessage("300", "hi"))
	waitPosted(t, fake, "D300", "turns=1 last=hi")
	if got := postedIn(fake, "D300"); len(got) != 1 {
		t.Fatalf("posted in D300: %q; want only the answer", got)
	}
}

func TestDiscordMessagesPerMinute(t *testing.T) {
	t.Parallel()
	ai := newFakeOpenAI(t)
	fake := fakediscord.New(t)
	e := newEnv(t)
	e.install("discord", "discord")
	e.writeConfig(accessConfig(ai, fake, "messages_per_minute = 3", `dm = "open"`))
	e.start()
	e.waitPlatform("discord", 20*time.Second, inState("running"))

	for i := 1; i <= 3; i++ {
		fake.InjectMessage(directMessage("100", fmt.Sprint("m", i)))
		waitPosted(t, fake, "D100", fmt.Sprintf("turns=%d last=m%d", i, i))
	}
	fake.InjectMessage(directMessage("100", "m4"))
	notice := fake.WaitMessage(t, 10*time.Second, "the slow-down notice", func(m fakediscord.PostedMessage) bool {
		return m.ChannelID == "D100" && strings.HasPrefix(m.Content, "Slow down: at most 3 messages a minute. Try again in ")
	})
	if !strings.HasSuffix(notice.Content, " s.") {
		t.Errorf("notice %q does not say how many seconds", notice.Content)
	}
	// Another user's message, answered after the refusal, shows that the
	// refused one was handled; the provider saw only the three.
	fake.InjectMessage(directMessage("200", "other"))
	waitPosted(t, fake, "D200", "turns=1 last=other")
	if n := ai.Served(); n != 4 {
		t.Fatalf("provider calls = %d; want 3 for user 100 and 1 for user 200", n)
	}
	if r := ai.LastRequest(); r == nil || r.LastUser() != "other" {
		t.Fatal("the last provider request is not user 200's")
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// On the HTTP platform (dm "open" by default) each request waits for its
// answer: every request over messages_per_minute is answered at once with
// 429 and the reason, never left to time out.
func TestHTTPMessagesPerMinuteAnswers429(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(`
agent {
  limits {
    messages_per_minute = 1
  }
}
` + httpPlatform("web", web, `timeout = "60s"`))
	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	if code, body := post(t, web, `{"session":"alice","text":"one"}`); code != 200 || body["reply"] != "echo: one" {
		t.Fatalf("first: %d %v", code, body)
	}
	for _, text := range []string{"two", "three"} {
		code, body := post(t, web, `{"session":"alice","text":"`+text+`"}`)
		if msg, _ := body["error"].(string); code != 429 || !strings.HasPrefix(msg, "Slow down: at most 1 messages a minute.") {
			t.Fatalf("%s: %d %v; want 429 with the slow-down notice", text, code, body)
		}
	}
	// Another caller (session) is counted apart.
	if code, body := post(t, web, `{"session":"bob","text":"hi"}`); code != 200 || body["reply"] != "echo: hi" {
		t.Fatalf("bob: %d %v", code, body)
	}
}

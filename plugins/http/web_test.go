package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/plughost/gateway/shared"
)

// chromium returns Debian's chromium, installing it when missing; it fails
// the test (never skips) when that is impossible.
func chromium(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Log("chromium not found: installing Debian's chromium (apt-get install -y chromium)")
	out, err := exec.Command("apt-get", "install", "-y", "chromium").CombinedOutput()
	if err != nil {
		t.Fatalf("the web page test needs chromium and installing it failed (run `apt-get install -y chromium` as root): %v\n%s", err, out)
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("apt-get installed chromium but it is not on PATH: %v", err)
	}
	return p
}

// TestWebPageInChromium drives the page in a real headless chromium: type,
// send, see the streamed reply, reload, see the conversation again, and an
// injected <img onerror> in a message and a reply stays text.
func TestWebPageInChromium(t *testing.T) {
	bin := chromium(t)
	h := start(t, nil)
	opts := append(chromedp.DefaultExecAllocatorOptions[:0:0],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	url := "http://" + h.addr + "/"
	const evil = `<img src=x onerror="document.title='pwned'">`
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible("#input")); err != nil {
		t.Fatalf("opening the page: %v", err)
	}
	sendText := func(text string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.SetValue("#input", text), chromedp.Click("#send")); err != nil {
			t.Fatalf("sending %q: %v", text, err)
		}
	}
	sendText("hello " + evil)
	m := h.nextMessage()
	if m.Text != "hello "+evil || !strings.HasPrefix(m.ConversationID, "web-") {
		t.Fatalf("message = %+v", m)
	}
	reply := "hi " + evil + "\n```go\nfmt.Println(1)\n```"
	if _, err := h.client.Send(context.Background(), shared.Reply{ReplyToID: m.ID, Text: reply, Kind: shared.KindReply}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		err := chromedp.Do(ctx, chromedp.WaitVisible(`#log .assistant pre code`))
		var log, code, title string
		var imgs int
		if err == nil {
			log, err = chromedp.Run(ctx, chromedp.Text("#log"))
		}
		if err == nil {
			code, err = chromedp.Run(ctx, chromedp.Text(`#log .assistant pre code`))
		}
		if err == nil {
			imgs, err = chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#log img").length`))
		}
		if err == nil {
			title, err = chromedp.Run(ctx, chromedp.Title())
		}
		if err != nil {
			t.Fatalf("%s: reading the page: %v", when, err)
		}
		if !strings.Contains(log, "hello "+evil) || !strings.Contains(log, "hi "+evil) || strings.TrimSpace(code) != "fmt.Println(1)" {
			t.Errorf("%s: conversation = %q, code = %q", when, log, code)
		}
		if imgs != 0 || title == "pwned" {
			t.Errorf("%s: HTML in a message became markup (%d img, title %q)", when, imgs, title)
		}
	}
	check("after the reply")
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible("#input")); err != nil {
		t.Fatalf("reloading: %v", err)
	}
	check("after a reload")

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// testdata/out is ignored by git (plugins/http/.gitignore).
	dir := filepath.Join("testdata", "out")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path, _ := filepath.Abs(filepath.Join(dir, "webpage.png"))
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

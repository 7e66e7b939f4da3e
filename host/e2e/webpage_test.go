package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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

// browser starts a headless chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:0:0],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// TestWebPageStreamsAndRestoresFromTheHost drives the web page in a real
// headless chromium against the real host and the fake provider: type,
// send, see the reply stream in (part of it shown while the provider still
// holds the rest), reload with the browser's copy of the conversation
// gone, see the conversation as the host keeps it; an injected
// <img onerror> stays text throughout. The screenshot is saved in
// testdata/out.
func TestWebPageStreamsAndRestoresFromTheHost(t *testing.T) {
	ai := newFakeOpenAI(t)
	// The provider holds its stream after the first chunk until the test
	// has seen that chunk on the page.
	gate := holdStreams(t, ai)
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	e.writeConfig(openAIConfig(ai, "sk-test-key", "") + httpPlatform("web", web, ""))
	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))

	ctx := browser(t)
	const evil = `<img src=x onerror="document.title='pwned'">`
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+web+"/"), chromedp.WaitVisible("#input"),
		chromedp.WaitReady(`body[data-restored]`)); err != nil {
		t.Fatalf("opening the page: %v", err)
	}
	text := "hello " + evil + " ```go\nfmt.Println(1)\n```"
	if err := chromedp.Do(ctx, chromedp.SetValue("#input", text), chromedp.Click("#send")); err != nil {
		t.Fatalf("sending: %v", err)
	}
	// The first word of the reply is on the page while the provider holds
	// the rest: the page shows the provider's stream as it arrives.
	want := "turns=1 last=" + text
	var partial string
	eventually(t, 30*time.Second, "the first streamed words on the page", func() bool {
		partial, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("#log .assistant")||{}).textContent||""`))
		return strings.HasPrefix(partial, "turns=1")
	})
	if partial == want || strings.Contains(partial, "hello") {
		t.Fatalf("the page shows %q while the provider still holds the rest of %q", partial, want)
	}
	gate.release()

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
		if !strings.Contains(log, "hello "+evil) || !strings.Contains(log, "turns=1 last=hello "+evil) || strings.TrimSpace(code) != "fmt.Println(1)" {
			t.Errorf("%s: conversation = %q, code = %q", when, log, code)
		}
		if imgs != 0 || title == "pwned" {
			t.Errorf("%s: HTML in a message became markup (%d img, title %q)", when, imgs, title)
		}
	}
	check("after the reply")

	// Forget the browser's copy of the conversation (the session id
	// stays): what the page shows after the reload comes from the host.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(() => {
		let n = 0;
		for (const k of Object.keys(localStorage)) if (k.startsWith("gateway.transcript.")) { localStorage.removeItem(k); n++; }
		return n;
	})()`)); err != nil {
		t.Fatalf("clearing localStorage: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible("#input")); err != nil {
		t.Fatalf("reloading: %v", err)
	}
	var restored string
	eventually(t, 20*time.Second, "the page restored from the host", func() bool {
		restored, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.restored||""`))
		return restored != ""
	})
	if restored != "host" {
		t.Fatalf("the page restored its conversation from %q, want the host", restored)
	}
	check("after a reload")

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// testdata/out is ignored by git (.gitignore). Quality 100 makes a PNG.
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

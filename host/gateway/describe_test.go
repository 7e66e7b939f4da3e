package gateway

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/shared"
)

// A binary is described once per version: again only when it is replaced
// (new inode) or rewritten (size, mtime); a missing one is not started.
func TestDescriberAsksEachBinaryVersionOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gateway-plugin-x")
	if err := os.WriteFile(path, []byte("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	d := newDescriber(func(context.Context, supervisor.Binary) (shared.Description, error) {
		calls.Add(1)
		return shared.Description{Name: "x"}, nil
	})
	ctx := context.Background()
	for range 3 {
		if _, err := d.describe(ctx, supervisor.Binary{Path: path, Dir: dir}); err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("described %d times, want once", n)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := d.describe(ctx, supervisor.Binary{Path: path, Dir: dir}); err != nil || calls.Load() != 2 {
		t.Fatalf("a touched binary: %v, %d calls; want it described again", err, calls.Load())
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if _, err := d.describe(ctx, supervisor.Binary{Path: path, Dir: dir}); err != nil || calls.Load() != 3 {
		t.Fatalf("a replaced binary: %v, %d calls; want it described again", err, calls.Load())
	}
	if _, err := d.describe(ctx, supervisor.Binary{Path: filepath.Join(dir, "gateway-plugin-none"), Dir: dir}); !errors.Is(err, fs.ErrNotExist) || calls.Load() != 3 {
		t.Fatalf("a missing binary: %v, %d calls", err, calls.Load())
	}
}

// checkPlatforms reports a typo in an enabled platform's block at its
// position, skips disabled platforms and missing binaries, and lets a
// binary that cannot describe itself through (the supervisor reports it).
func TestCheckPlatformsReportsSchemaErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := load(t, dir, `
platform "web" {
  plugin = "http"
  config {
    timeuot = "5s"
  }
}
platform "off" {
  plugin  = "http"
  enabled = false
  config {
    nonsense = 1
  }
}
platform "gone" {
  plugin = "missing"
  config {
    nonsense = 1
  }
}
platform "broken" {
  plugin = "broken"
}
`)
	for _, name := range []string{"http", "broken"} {
		if err := os.MkdirAll(cfg.Gateway.PluginDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg.Gateway.PluginDir, "gateway-plugin-"+name), []byte(name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := newDescriber(func(_ context.Context, b supervisor.Binary) (shared.Description, error) {
		if strings.HasSuffix(b.Path, "broken") {
			return shared.Description{}, errors.New("it crashed")
		}
		return shared.Description{Name: "http", Schema: []shared.Attribute{{Name: "timeout", Type: shared.TypeDuration}}}, nil
	})
	diags := d.checkPlatforms(context.Background(), cfg, hclog.NewNullLogger())
	got := config.FormatDiagnostics(diags)
	want := filepath.Join(dir, "config.hcl") + `:12:5: Unsupported argument: The plugin "http" has no setting named "timeuot". Did you mean "timeout"?`
	if got != want {
		t.Fatalf("diagnostics:\n%s\nwant:\n%s", got, want)
	}
}

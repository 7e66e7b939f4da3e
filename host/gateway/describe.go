package gateway

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/plughost/gateway/host/config"
	"github.com/plughost/gateway/host/supervisor"
	"github.com/plughost/gateway/shared"
)

// describeTimeout bounds how long a plugin may take to describe itself.
const describeTimeout = 15 * time.Second

// describer asks plugin binaries for their description (their config
// schema), once per version of each binary: a reload checks every
// platform's config block against its plugin's schema before anything
// changes, and starts only the binaries it has not described yet (new
// ones, or ones replaced since).
type describer struct {
	// inspect starts the binary just long enough to describe it, after the
	// checks every plugin start makes (supervisor.Inspect).
	inspect func(ctx context.Context, b supervisor.Binary) (shared.Description, error)

	mu      sync.Mutex
	entries map[supervisor.Binary]described // by path, plugin_dir and sha256 pin
}

// described is one binary's description and the version it belongs to.
type described struct {
	version binaryVersion
	desc    shared.Description
}

// binaryVersion tells versions of a binary apart: `mv` over it gives a new
// inode, rewriting it in place a new size or mtime.
type binaryVersion struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

func newDescriber(inspect func(ctx context.Context, b supervisor.Binary) (shared.Description, error)) *describer {
	return &describer{inspect: inspect, entries: map[supervisor.Binary]described{}}
}

// describe returns the description of the binary b, asking the binary only
// when this version of it has not been described yet. A missing binary is
// an fs.ErrNotExist error.
func (d *describer) describe(ctx context.Context, b supervisor.Binary) (shared.Description, error) {
	v, err := versionOf(b.Path)
	if err != nil {
		return shared.Description{}, err
	}
	d.mu.Lock()
	e, ok := d.entries[b]
	d.mu.Unlock()
	if ok && e.version == v {
		return e.desc, nil
	}
	ctx, cancel := context.WithTimeout(ctx, describeTimeout)
	defer cancel()
	desc, err := d.inspect(ctx, b)
	if err != nil {
		return shared.Description{}, err
	}
	// A binary replaced while it described itself is described again next
	// time: the entry is keyed by the version seen before asking.
	d.mu.Lock()
	d.entries[b] = described{version: v, desc: desc}
	d.mu.Unlock()
	return desc, nil
}

func versionOf(path string) (binaryVersion, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return binaryVersion{}, err
	}
	v := binaryVersion{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		v.dev, v.ino = uint64(st.Dev), st.Ino //nolint:unconvert // Dev is not uint64 everywhere
	}
	return v, nil
}

// checkPlatforms decodes the config block of every enabled platform of cfg
// against its plugin's schema, as `gateway validate` does, and returns the
// error diagnostics. A platform whose binary is missing or does not
// describe itself is not checked here: the supervisor shows why it cannot
// run, and that does not block the rest of a reload.
func (d *describer) checkPlatforms(ctx context.Context, cfg *config.Config, logger hclog.Logger) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, p := range cfg.Platforms {
		if !p.Enabled {
			continue
		}
		path := cfg.PluginPath(p)
		desc, err := d.describe(ctx, supervisor.Binary{Path: path, Dir: cfg.Gateway.PluginDir, SHA256: p.SHA256})
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			logger.Warn("plugin did not describe itself; its config block was not checked", "platform", p.Name, "path", path, "error", err)
			continue
		}
		_, pdiags := cfg.DecodePlatformConfig(p, desc.Schema)
		for _, diag := range pdiags {
			if diag.Severity == hcl.DiagError {
				diags = append(diags, diag)
			}
		}
	}
	return diags
}

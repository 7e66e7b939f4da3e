package supervisor

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// PluginPrefix starts the file name of every plugin binary.
const PluginPrefix = "gateway-plugin-"

// WatchDir watches the plugin folder until ctx ends: a binary that appears
// for a platform waiting in state missing starts it at once; a binary
// replaced in place (a new inode, size, mtime or mode) restarts the
// platforms that run it, and only those. Changes are acted on once the
// file has stayed unchanged for settleTime, so a half-written binary is
// never executed. Without a watcher (fsnotify failed) missing binaries are
// still found by polling.
func (s *Supervisor) WatchDir(ctx context.Context, dir string) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		return err
	}
	go s.watchLoop(ctx, w)
	return nil
}

func (s *Supervisor) watchLoop(ctx context.Context, w *fsnotify.Watcher) {
	defer w.Close()
	var mu sync.Mutex
	timers := map[string]*time.Timer{}
	defer func() {
		mu.Lock()
		for _, t := range timers {
			t.Stop()
		}
		mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			s.logger.Warn("watching plugin_dir", "error", err)
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			base := filepath.Base(ev.Name)
			plugin, found := strings.CutPrefix(base, PluginPrefix)
			if !found || strings.HasSuffix(plugin, ".tmp") {
				continue
			}
			// Debounce: every event pushes the check back by settleTime.
			mu.Lock()
			if t, ok := timers[plugin]; ok {
				t.Reset(settleTime)
			} else {
				timers[plugin] = time.AfterFunc(settleTime, func() {
					mu.Lock()
					delete(timers, plugin)
					mu.Unlock()
					if ctx.Err() == nil {
						s.binaryChanged(plugin)
					}
				})
			}
			mu.Unlock()
		}
	}
}

// binaryChanged acts on a settled change to the binary of plugin.
func (s *Supervisor) binaryChanged(plugin string) {
	s.mu.Lock()
	var affected []*platform
	for _, p := range s.platforms {
		if p.spec.Plugin == plugin && p.spec.Enabled {
			affected = append(affected, p)
		}
	}
	s.mu.Unlock()
	for _, p := range affected {
		id, err := statID(p.spec.Path)
		if err != nil {
			continue // removed: a running plugin keeps running; a restart finds it missing
		}
		st := p.snapshot()
		p.mu.Lock()
		started := p.binary
		p.mu.Unlock()
		switch {
		case st.State == StateMissing:
			p.logger.Info("plugin binary appeared; starting", "path", p.spec.Path)
			s.Poke(p.spec.Name)
		case id != started && started != (binaryID{}):
			p.logger.Info("plugin binary replaced; restarting this platform", "path", p.spec.Path)
			s.Restart(p.spec.Name)
		}
	}
}

package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckBinary(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "plugins")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path string, mode os.FileMode) string {
		t.Helper()
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write(filepath.Join(dir, "gateway-plugin-good"), 0o755)
	open := write(filepath.Join(dir, "gateway-plugin-open"), 0o775)
	noexec := write(filepath.Join(dir, "gateway-plugin-noexec"), 0o644)
	outside := write(filepath.Join(root, "outside"), 0o755)
	link := filepath.Join(dir, "gateway-plugin-link")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	inLink := filepath.Join(dir, "gateway-plugin-inlink")
	if err := os.Symlink(good, inLink); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		path string
		want string // "" for accepted
	}{
		{good, ""},
		{inLink, ""},
		{open, "writable by group or others"},
		{noexec, "not executable"},
		{link, "outside plugin_dir"},
	} {
		err := checkBinary(dir, tc.path)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", filepath.Base(tc.path), err)
			}
			continue
		}
		var ie *InsecureError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want an InsecureError saying %q", filepath.Base(tc.path), err, tc.want)
		}
	}

	// A group-writable plugin_dir taints every binary in it.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := checkBinary(dir, good); err == nil || !strings.Contains(err.Error(), "plugin_dir is writable") {
		t.Errorf("open plugin_dir: err = %v", err)
	}
}

package safepath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckDir(t *testing.T) {
	root := t.TempDir() // under /tmp: a sticky world-writable ancestor is fine
	mk := func(path string, mode os.FileMode) string {
		t.Helper()
		if err := os.MkdirAll(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := mk(filepath.Join(root, "good", "state"), 0o700)
	open := mk(filepath.Join(root, "open"), 0o777)
	underOpen := mk(filepath.Join(open, "state"), 0o700)
	sticky := mk(filepath.Join(root, "sticky"), os.ModeSticky|0o777)
	underSticky := mk(filepath.Join(sticky, "state"), 0o700)
	foreign := mk(filepath.Join(root, "foreign"), 0o755)
	underForeign := mk(filepath.Join(foreign, "state"), 0o700)
	if err := os.Chown(foreign, 65534, 65534); err != nil { // as root: make "another user"
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
	}{
		{good, ""},
		{link, ""},
		{underSticky, ""},
		{open, "writable by group or others"},
		{underOpen, "inside " + open + ", which is writable by group or others"},
		{underForeign, "inside " + foreign + ", which is owned by uid 65534"},
		{sticky, "writable by group or others"},
	} {
		err := CheckDir(tc.path, "state_dir")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.path, err)
		case tc.want != "" && (!IsInsecure(err) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want %q", tc.path, err, tc.want)
		}
	}
}

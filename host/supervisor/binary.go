package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// InsecureError is returned when a plugin binary or its folder could be
// changed by someone other than the operator; such a binary is never run.
type InsecureError struct {
	Path   string
	Reason string
}

func (e *InsecureError) Error() string {
	return fmt.Sprintf("refusing to run plugin %s: %s", e.Path, e.Reason)
}

// binaryID identifies one version of a plugin binary: a binary replaced by
// `mv` has a new inode, one rewritten in place a new size or mtime, one
// re-permissioned a new mode.
type binaryID struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
	mode     fs.FileMode
}

func statID(path string) (binaryID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return binaryID{}, err
	}
	id := binaryID{size: fi.Size(), mtime: fi.ModTime(), mode: fi.Mode()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino //nolint:unconvert // Dev is not uint64 everywhere
	}
	return id, nil
}

// checkBinary refuses a plugin binary that resolves (through symlinks)
// outside dir, that is not a regular executable file, or that — like dir
// itself — is writable by group or others or owned by a user other than
// root or the one running the host.
func checkBinary(dir, path string) error {
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("resolving plugin_dir %s: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("resolving plugin %s: %w", path, err)
	}
	if rel, err := filepath.Rel(realDir, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return &InsecureError{Path: path, Reason: fmt.Sprintf("it resolves to %s, outside plugin_dir %s", real, realDir)}
	}
	if err := checkOwner(realDir, "plugin_dir"); err != nil {
		return err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &InsecureError{Path: path, Reason: "it is not a regular file"}
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return &InsecureError{Path: path, Reason: "it is not executable (chmod 0755 it)"}
	}
	return checkOwner(real, "the binary")
}

func checkOwner(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return &InsecureError{Path: path, Reason: fmt.Sprintf("%s is writable by group or others (mode %04o; chmod go-w it)", what, perm)}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
		return &InsecureError{Path: path, Reason: fmt.Sprintf("%s is owned by uid %d, neither root nor the gateway's user", what, uid)}
	}
	return nil
}

// isInsecure reports whether err is an *InsecureError.
func isInsecure(err error) bool {
	var ie *InsecureError
	return errors.As(err, &ie)
}

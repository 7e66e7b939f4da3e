// Package safepath decides whether the host may trust a path: a folder it
// keeps state in, a folder it creates a socket in, a plugin binary. A path
// is trusted when nobody but root and the host's own user can change it.
package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// InsecureError is returned for a path that someone other than root or the
// host's user could change, so the host refuses to use it.
type InsecureError struct {
	Path   string
	Reason string
}

func (e *InsecureError) Error() string {
	return fmt.Sprintf("refusing to use %s: %s", e.Path, e.Reason)
}

// Untrusted returns why a file with info fi, described as what, could be
// changed by someone other than root or the host's user, or "" if it cannot.
func Untrusted(fi fs.FileInfo, what string) string {
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Sprintf("%s is writable by group or others (mode %04o; chmod go-w it)", what, perm)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
		return fmt.Sprintf("%s is owned by uid %d, neither root nor the gateway's user (uid %d)", what, uid, os.Geteuid())
	}
	return ""
}

// CheckDir returns an *InsecureError when the folder at path (symlinks
// resolved) is not a folder or could be changed by someone other than root
// or the host's user, or when a folder above it could be: whoever can
// rename an ancestor can swap the whole path for a link to anywhere. A
// world-writable ancestor with the sticky bit (/tmp) is fine: others
// cannot rename what is not theirs in it. what names the folder in the
// message ("state_dir").
func CheckDir(path, what string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for a := filepath.Dir(abs); ; a = filepath.Dir(a) {
		fi, err := os.Lstat(a)
		if err != nil {
			return err
		}
		if reason := untrustedAncestor(fi); reason != "" {
			return &InsecureError{Path: path, Reason: fmt.Sprintf("%s is inside %s, which %s", what, a, reason)}
		}
		if a == filepath.Dir(a) {
			break
		}
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("resolving %s %s: %w", what, path, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &InsecureError{Path: path, Reason: what + " is not a folder"}
	}
	if reason := Untrusted(fi, what); reason != "" {
		return &InsecureError{Path: path, Reason: reason}
	}
	return nil
}

// untrustedAncestor says why a folder (or link) above a trusted one could
// be changed by someone other than root or the host's user, or "".
func untrustedAncestor(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
			return fmt.Sprintf("is owned by uid %d, neither root nor the gateway's user", uid)
		}
	}
	if fi.IsDir() && fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return fmt.Sprintf("is writable by group or others (mode %04o; chmod go-w it)", fi.Mode().Perm())
	}
	return ""
}

// IsInsecure reports whether err is an *InsecureError.
func IsInsecure(err error) bool {
	var ie *InsecureError
	return errors.As(err, &ie)
}

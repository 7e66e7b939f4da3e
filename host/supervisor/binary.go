package supervisor

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/plughost/gateway/host/safepath"
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

// Binary names a plugin binary and what it must satisfy to be run.
type Binary struct {
	// Path is the binary, plugin_dir/gateway-plugin-NAME.
	Path string
	// Dir is plugin_dir: Path must resolve inside it.
	Dir string
	// SHA256 is the expected hex checksum of the binary; empty for none.
	SHA256 string
}

// afterVerify, when set by a test, runs between verifying a binary and
// executing it: the window in which a swapped binary must not run.
var afterVerify func(path string)

// openBinary is the one gate every plugin start goes through (run, reload,
// validate, plugins): it refuses a binary that resolves (through symlinks)
// outside its plugin_dir, that is not a regular executable file, that —
// like plugin_dir itself — is writable by group or others or owned by a
// user other than root or the one running the host, or that does not match
// its sha256. It returns the binary open: the caller executes that open
// file (see startProcess), so what runs is exactly what was checked, even
// if the path is replaced in between.
func openBinary(b Binary) (*os.File, error) {
	realDir, err := filepath.EvalSymlinks(b.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolving plugin_dir %s: %w", b.Dir, err)
	}
	if err := safepath.CheckDir(b.Dir, "plugin_dir"); err != nil {
		var ie *safepath.InsecureError
		if errors.As(err, &ie) {
			return nil, &InsecureError{Path: b.Path, Reason: ie.Reason}
		}
		return nil, err
	}
	real, err := filepath.EvalSymlinks(b.Path)
	if err != nil {
		return nil, fmt.Errorf("resolving plugin %s: %w", b.Path, err)
	}
	if !inside(realDir, real) {
		return nil, &InsecureError{Path: b.Path, Reason: fmt.Sprintf("it resolves to %s, outside plugin_dir %s", real, realDir)}
	}
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening plugin %s: %w", b.Path, err)
	}
	if err := checkOpenBinary(f, b, realDir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkOpenBinary checks the file openBinary opened: its place (a folder
// renamed under us would show here), type, mode, owner and checksum.
func checkOpenBinary(f *os.File, b Binary, realDir string) error {
	if at, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); err == nil && !inside(realDir, at) {
		return &InsecureError{Path: b.Path, Reason: fmt.Sprintf("it was opened at %s, outside plugin_dir %s", at, realDir)}
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &InsecureError{Path: b.Path, Reason: "it is not a regular file"}
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return &InsecureError{Path: b.Path, Reason: "it is not executable (chmod 0755 it)"}
	}
	if err := checkInfo(f.Name(), fi, "the binary"); err != nil {
		return err
	}
	if b.SHA256 == "" {
		return nil
	}
	want, err := hex.DecodeString(b.SHA256)
	if err != nil {
		return fmt.Errorf("sha256 %q is not hex: %w", b.SHA256, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size())); err != nil {
		return fmt.Errorf("checking sha256 of %s: %w", b.Path, err)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("%s (sha256 %x): %w", b.Path, h.Sum(nil), ErrChecksum)
	}
	return nil
}

// inside reports whether path is dir or below it.
func inside(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// checkBinary runs openBinary's checks without a checksum.
func checkBinary(dir, path string) error {
	f, err := openBinary(Binary{Path: path, Dir: dir})
	if err != nil {
		return err
	}
	return f.Close()
}

// checkInfo refuses a file that someone other than root or the host's own
// user could change.
func checkInfo(path string, fi fs.FileInfo, what string) error {
	if reason := safepath.Untrusted(fi, what); reason != "" {
		return &InsecureError{Path: path, Reason: reason}
	}
	return nil
}

// isInsecure reports whether err is an *InsecureError.
func isInsecure(err error) bool {
	var ie *InsecureError
	return errors.As(err, &ie)
}

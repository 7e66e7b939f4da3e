package pidlock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Record is the JSON PID record written after the lock is held.
type Record struct {
	PID       int       `json:"pid"`
	StartTime uint64    `json:"start_time"` // field 22 of /proc/PID/stat (clock ticks since boot)
	Argv      []string  `json:"argv"`
	Config    string    `json:"config"`
	Admin     string    `json:"admin"`
	StartedAt time.Time `json:"started_at"`
	// LockDev and LockIno name the inode the holder locked, so that a start which finds
	// gateway.lock deleted or replaced can still see the holder's lock in /proc/locks.
	LockDev uint64 `json:"lock_dev,omitempty"`
	LockIno uint64 `json:"lock_ino,omitempty"`
}

// clone returns a deep copy of r.
func (r Record) clone() Record {
	r.Argv = append([]string(nil), r.Argv...)
	return r
}

// tempPrefix starts the names of the temporary files a record is written through.
const tempPrefix = ".gateway.pid.tmp-"

// readRecord reads the PID file. A missing file returns an error matching
// fs.ErrNotExist. A file holding just a number (the format older gateways wrote) gives a
// Record with only PID set.
func readRecord(path string) (*Record, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	f.Close()
	if err != nil {
		return nil, err
	}
	var rec Record
	if jerr := json.Unmarshal(data, &rec); jerr == nil {
		if rec.PID <= 0 {
			return nil, fmt.Errorf("PID file %s: no valid pid", path)
		}
		return &rec, nil
	}
	if pid, perr := strconv.Atoi(string(bytes.TrimSpace(data))); perr == nil && pid > 0 {
		return &Record{PID: pid}, nil
	}
	return nil, fmt.Errorf("PID file %s is neither a JSON record nor a pid", path)
}

// writeRecord replaces dir/gateway.pid atomically: a reader sees the old record or the
// new one, never a partial one, and a crash leaves at most a temporary file behind.
func writeRecord(dir string, rec Record) (err error) {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	hook(stageRecordWritten)
	if err = os.Rename(tmp.Name(), filepath.Join(dir, PIDFileName)); err != nil {
		return err
	}
	// Make the rename durable so that a power loss leaves the new record, not none.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeStaleTemps deletes temporary record files left by a holder that died while
// writing. Only a lock holder may call it: nobody else can be writing.
func removeStaleTemps(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

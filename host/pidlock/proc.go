package pidlock

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// userHZ is USER_HZ, the unit of the start time in /proc/PID/stat. The kernel fixes it at
// 100 for the /proc ABI on every architecture Go supports.
const userHZ = 100

// fileID identifies an inode.
type fileID struct {
	dev uint64
	ino uint64
}

func fdID(fd int) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileID{}, err
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, nil //nolint:unconvert // Dev is uint32 on some arches
}

// pathNames reports whether path currently names the inode id.
func pathNames(path string, id fileID) (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	return uint64(st.Dev) == id.dev && st.Ino == id.ino, nil //nolint:unconvert
}

// procStartTime returns field 22 of /proc/PID/stat: when the process started, in clock
// ticks since boot. Together with the PID it names one process; a recycled PID has a
// different start time.
func procStartTime(pid int) (uint64, error) {
	st, err := readProcStat(pid)
	return st.startTime, err
}

// pfExiting is PF_EXITING in the kernel's per-task flags: set when the task starts
// exiting, before its files (and so its locks) are released.
const pfExiting = 0x4

// procStat is what this package needs from /proc/PID/stat.
type procStat struct {
	startTime uint64 // field 22
	exiting   bool   // PF_EXITING in field 9
}

func readProcStat(pid int) (procStat, error) {
	if pid <= 0 {
		return procStat{}, fmt.Errorf("invalid pid %d", pid)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (procStat, error) {
	// The command name (field 2) is in parentheses and may itself contain spaces and
	// parentheses, so count fields from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat: no command name")
	}
	fields := strings.Fields(string(b[i+1:]))
	const first = 3 // fields[0] is field 3 (state)
	if len(fields) <= 22-first {
		return procStat{}, errors.New("malformed /proc stat: too few fields")
	}
	flags, err := strconv.ParseUint(fields[9-first], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat flags: %w", err)
	}
	start, err := strconv.ParseUint(fields[22-first], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc stat start time: %w", err)
	}
	return procStat{startTime: start, exiting: flags&pfExiting != 0}, nil
}

// procExiting reports whether pid is dying: it has started exiting, or a SIGKILL is
// pending for it. Either way it may still hold its locks for a moment.
func procExiting(pid int) bool {
	if st, err := readProcStat(pid); err == nil && st.exiting {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	return err == nil && sigkillPending(b)
}

// sigkillPending reads the pending-signal masks (hex, bit N-1 for signal N) of a
// /proc/PID/status file.
func sigkillPending(status []byte) bool {
	const sigkillBit = 1 << (9 - 1)
	for line := range strings.SplitSeq(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "SigPnd" && k != "ShdPnd") {
			continue
		}
		if mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && mask&sigkillBit != 0 {
			return true
		}
	}
	return false
}

// procAlive reports whether pid is still the process that started at startTime.
func procAlive(pid int, startTime uint64) bool {
	st, err := procStartTime(pid)
	return err == nil && startTime != 0 && st == startTime
}

// procStartWall converts a process start time to wall-clock time, for messages only.
func procStartWall(pid int) time.Time {
	ticks, err := procStartTime(pid)
	if err != nil {
		return time.Time{}
	}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			btime, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}
			}
			return time.Unix(btime, 0).Add(time.Duration(ticks) * time.Second / userHZ)
		}
	}
	return time.Time{}
}

// procLocksPath is the kernel's lock table; tests point it elsewhere to run as on a
// system where it cannot be read.
var procLocksPath = "/proc/locks"

// lockEntry is one line of /proc/locks.
type lockEntry struct {
	kind    string // FLOCK, POSIX, OFDLCK, LEASE, ...
	write   bool
	blocked bool // a waiter ("->"), not a holder
	pid     int
	major   uint32
	minor   uint32
	ino     uint64
}

// parseProcLocks parses lines such as
//
//	1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF
//	1: -> FLOCK  ADVISORY  WRITE 1235 08:01:5678 0 EOF
//
// where the device is major:minor in hex and the inode is decimal. Lines it does not
// understand are skipped.
func parseProcLocks(data []byte) []lockEntry {
	var out []lockEntry
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		f = f[1:] // "N:"
		var e lockEntry
		if f[0] == "->" {
			e.blocked = true
			f = f[1:]
		}
		if len(f) < 5 {
			continue
		}
		e.kind = f[0]
		e.write = f[2] == "WRITE"
		pid, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		e.pid = pid
		parts := strings.Split(f[4], ":")
		if len(parts) != 3 {
			continue
		}
		maj, err1 := strconv.ParseUint(parts[0], 16, 32)
		mnr, err2 := strconv.ParseUint(parts[1], 16, 32)
		ino, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		e.major, e.minor, e.ino = uint32(maj), uint32(mnr), ino
		out = append(out, e)
	}
	return out
}

// flockHolder returns the PID that holds an exclusive flock on id according to the
// kernel (/proc/locks), or 0 when that cannot be told. Some filesystems (btrfs
// subvolumes, overlayfs) report a different device in stat than in /proc/locks, so when
// no line matches device and inode, a single FLOCK line on the inode alone is accepted.
func flockHolder(id fileID) int {
	data, err := os.ReadFile(procLocksPath)
	if err != nil {
		return 0
	}
	return flockHolderIn(parseProcLocks(data), id)
}

func flockHolderIn(entries []lockEntry, id fileID) int {
	maj, mnr := unix.Major(id.dev), unix.Minor(id.dev)
	inoOnly, inoOnlyCount := 0, 0
	for _, e := range entries {
		if e.kind != "FLOCK" || !e.write || e.blocked || e.ino != id.ino || e.pid <= 0 {
			continue
		}
		if e.major == maj && e.minor == mnr {
			return e.pid
		}
		inoOnly = e.pid
		inoOnlyCount++
	}
	if inoOnlyCount == 1 {
		return inoOnly
	}
	return 0
}

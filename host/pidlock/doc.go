// Package pidlock makes sure only one gateway host runs per state directory.
//
// The lock is a non-blocking exclusive flock(2) on STATE_DIR/gateway.lock, held by an
// O_CLOEXEC file descriptor for the life of the process. The kernel drops it when the
// process dies, however it dies, so the lock is the only thing ever trusted to say "a
// host is running". The PID record (STATE_DIR/gateway.pid, JSON) is written after the
// lock is held and is used for messages and signals only: a PID file left by a crashed
// host is stale by definition and is taken over, and a PID is signalled only after
// checking that the process is still the one holding the lock.
//
// Why gateway.lock is never unlinked: flock locks an inode, not a name. If Release
// removed the file, a starter that had already opened the old inode could lock it
// (nobody holds it any more) while a third process creates and locks a fresh inode under
// the same name: two hosts, each holding "the" lock. Keeping the file keeps the
// name-to-inode mapping stable. What we do not control (an operator's rm, a tmpfiles
// rule, a restore from backup) is handled twice over: after locking, Acquire checks that
// the name still points at the inode it locked and starts over if not; and the record
// names the inode its holder locked, so a start that finds the lock file deleted or
// replaced under a live holder sees that inode still locked in /proc/locks and refuses.
package pidlock

package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/plughost/gateway/shared"
)

// maxKeyLen is the longest session key: the longest whose message keys
// (len ‖ key ‖ epoch ‖ seq) bbolt still takes. A longer one is refused
// before it is queued (ErrInvalidKey), never inside a group commit.
const maxKeyLen = bolt.MaxKeySize - 2 - 16

// msgKey is len(key) ‖ key ‖ epoch ‖ seq. The length prefix keeps one
// session's range from running into another whose key it prefixes.
func msgKey(key string, epoch, seq uint64) []byte {
	k := make([]byte, 0, 2+len(key)+16)
	k = binary.BigEndian.AppendUint16(k, uint16(len(key)))
	k = append(k, key...)
	k = binary.BigEndian.AppendUint64(k, epoch)
	return binary.BigEndian.AppendUint64(k, seq)
}

// lastInRange positions c on the last message of (key, epoch) and returns it,
// or nil keys when the range is empty.
func lastInRange(c *bolt.Cursor, key string, epoch uint64) (prefix, k, v []byte) {
	end := msgKey(key, epoch, ^uint64(0))
	prefix = end[:len(end)-8]
	k, v = c.Seek(end)
	switch {
	case k == nil:
		k, v = c.Last()
	case !bytes.Equal(k, end):
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return prefix, nil, nil
	}
	return prefix, k, v
}

// nextSeq returns the sequence number after the last message of (key, epoch).
func nextSeq(b *bolt.Bucket, key string, epoch uint64) uint64 {
	prefix, k, _ := lastInRange(b.Cursor(), key, epoch)
	if k == nil {
		return 0
	}
	return binary.BigEndian.Uint64(k[len(prefix):]) + 1
}

// maxPrealloc bounds the capacity readTail allocates up front, so that a huge
// history limit does not cost a huge allocation for a short transcript.
const maxPrealloc = 1024

// readTail returns the last limit messages of an epoch that were delivered,
// oldest first (all of them when limit < 0). A turn marked undelivered is
// skipped: the model never sees it as answered.
func readTail(tx *bolt.Tx, key string, epoch uint64, limit int) ([]Message, error) {
	if limit == 0 || key == "" || len(key) > maxKeyLen {
		return nil, nil
	}
	c := tx.Bucket(bucketMessages).Cursor()
	prefix, k, v := lastInRange(c, key, epoch)
	if k == nil {
		return []Message{}, nil
	}
	// Walk back from the newest message into one slice sized for the whole
	// tail, then reverse it in place: one allocation instead of two.
	var msgs []Message
	if limit > 0 {
		msgs = make([]Message, 0, min(limit, maxPrealloc))
	}
	for ; k != nil && bytes.HasPrefix(k, prefix) && (limit < 0 || len(msgs) < limit); k, v = c.Prev() {
		msgs = append(msgs, Message{})
		if err := json.Unmarshal(v, &msgs[len(msgs)-1]); err != nil {
			return nil, fmt.Errorf("session %s: corrupt message %d: %w", shared.LogValue(key), binary.BigEndian.Uint64(k[len(prefix):]), err)
		}
		if msgs[len(msgs)-1].Undelivered && limit >= 0 {
			msgs = msgs[:len(msgs)-1]
		}
	}
	slices.Reverse(msgs)
	return msgs, nil
}

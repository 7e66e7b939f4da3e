package adapter

import (
	"context"
	"sync"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// rooms remembers what the adapter learned about each joined room: how many
// members it has (two means a direct chat) and whether it is encrypted.
type rooms struct {
	mu    sync.Mutex
	known map[id.RoomID]*roomInfo
}

type roomInfo struct {
	members   int // joined members; 0 = unknown, ask the homeserver
	encrypted bool
	checked   bool // the room's encryption state was read from the homeserver
	warned    bool // the encrypted-room warning was logged
}

func (r *rooms) get(roomID id.RoomID) *roomInfo {
	if r.known == nil {
		r.known = map[id.RoomID]*roomInfo{}
	}
	info := r.known[roomID]
	if info == nil {
		info = &roomInfo{}
		r.known[roomID] = info
	}
	return info
}

// learn updates a room from its part of a /sync answer: the summary's member
// count, membership changes (which make the count stale) and encryption.
func (r *rooms) learn(roomID id.RoomID, room *mautrix.SyncJoinedRoom) {
	r.mu.Lock()
	defer r.mu.Unlock()
	info := r.get(roomID)
	changed := false
	for _, list := range [][]*event.Event{room.State.Events, room.Timeline.Events} {
		for _, evt := range list {
			switch evt.Type {
			case event.StateEncryption:
				info.encrypted = true
			case event.StateMember:
				changed = true
			}
		}
	}
	if room.StateAfter != nil {
		for _, evt := range room.StateAfter.Events {
			if evt.Type == event.StateEncryption {
				info.encrypted = true
			}
		}
	}
	switch {
	case room.Summary.JoinedMemberCount != nil:
		info.members = *room.Summary.JoinedMemberCount
	case changed:
		info.members = 0
	}
}

func (r *rooms) forget(roomID id.RoomID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.known, roomID)
}

// encrypted reports whether roomID is end-to-end encrypted. A room first
// seen after a restart (its m.room.encryption event predates the sync token)
// is asked about once; a failed lookup is retried next time.
func (r *rooms) encrypted(ctx context.Context, client *mautrix.Client, roomID id.RoomID) bool {
	r.mu.Lock()
	info := r.get(roomID)
	known, enc := info.checked || info.encrypted, info.encrypted
	r.mu.Unlock()
	if known {
		return enc
	}
	var content event.EncryptionEventContent
	err := client.StateEvent(ctx, roomID, event.StateEncryption, "", &content)
	if err != nil && classify(err).errcode != "M_NOT_FOUND" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	info = r.get(roomID)
	info.checked = true
	info.encrypted = info.encrypted || err == nil
	return info.encrypted
}

// warnEncrypted marks roomID encrypted and reports whether this is the
// first time, so the warning is logged once per room.
func (r *rooms) warnEncrypted(roomID id.RoomID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	info := r.get(roomID)
	info.encrypted = true
	first := !info.warned
	info.warned = true
	return first
}

// direct reports whether roomID is a direct chat: two joined members, the
// bot and one person. An unknown count is asked for once and remembered
// until the membership changes; if that fails the room counts as a group,
// where only mentions are answered.
func (r *rooms) direct(ctx context.Context, client *mautrix.Client, roomID id.RoomID) bool {
	r.mu.Lock()
	n := r.get(roomID).members
	r.mu.Unlock()
	if n == 0 {
		resp, err := client.JoinedMembers(ctx, roomID)
		if err != nil {
			return false
		}
		n = len(resp.Joined)
		r.mu.Lock()
		r.get(roomID).members = n
		r.mu.Unlock()
	}
	return n > 0 && n <= 2
}

// sentEvents remembers the ids of the bot's recent messages, so a reply to
// one of them counts as addressing the bot.
type sentEvents struct {
	mu    sync.Mutex
	ids   map[id.EventID]struct{}
	order []id.EventID
}

const maxSentEvents = 4096

func (s *sentEvents) add(ids ...id.EventID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[id.EventID]struct{}{}
	}
	for _, e := range ids {
		if _, ok := s.ids[e]; ok {
			continue
		}
		s.ids[e] = struct{}{}
		s.order = append(s.order, e)
	}
	for len(s.order) > maxSentEvents {
		delete(s.ids, s.order[0])
		s.order = s.order[1:]
	}
}

func (s *sentEvents) has(e id.EventID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.ids[e]
	return ok
}

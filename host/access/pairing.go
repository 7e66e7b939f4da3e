package access

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/plughost/gateway/host/store"
	"github.com/plughost/gateway/shared"
)

// codeAlphabet has no 0/O, 1/I/L: a code is read aloud and typed.
const codeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

// codeLen characters of codeAlphabet: 31^8 ≈ 8.5e11 codes.
const codeLen = 8

func newCode() string {
	b := make([]byte, codeLen)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	for i := range b {
		b[i] = codeAlphabet[int(b[i])%len(codeAlphabet)]
	}
	return string(b)
}

// NormalizeCode makes a code as typed by the operator comparable to the
// issued one: surrounding space dropped, upper case.
func NormalizeCode(code string) string { return strings.ToUpper(strings.TrimSpace(code)) }

// pair handles a direct message from a user who is not allowed yet under
// the pairing policy: it reports whether they are approved and, if they are
// not, sends them a code, at most once per CodeInterval.
func (g *Gate) pair(platform string, pol Policy, m *shared.Message) bool {
	u, _, err := g.opts.Store.PairingUser(platform, m.UserID)
	if err != nil {
		g.log.Error("could not read pairing state; refusing the message", "platform", platform, "error", err)
		return false
	}
	if u.IsApproved() {
		return true
	}
	g.pairMu.Lock()
	defer g.pairMu.Unlock()
	// Read again: a DM that arrived at the same time may have been sent a
	// code already, or the operator approved the user meanwhile.
	if u, _, err = g.opts.Store.PairingUser(platform, m.UserID); err != nil {
		g.log.Error("could not read pairing state; refusing the message", "platform", platform, "error", err)
		return false
	}
	if u.IsApproved() {
		return true
	}
	g.metrics.refused(platform, "pairing")
	now := g.opts.Now()
	if !u.CodeSent.IsZero() && now.Sub(u.CodeSent) < g.opts.CodeInterval {
		if pol.AnswerEvery {
			g.notify(platform, noticeTo(m, "Your pairing code is waiting for the operator's approval."))
		}
		return false
	}
	c := store.PairingCode{
		Code: newCode(), Platform: platform, UserID: m.UserID, UserName: m.UserName,
		ConversationID: m.ConversationID, Created: now, Expires: now.Add(g.opts.CodeTTL),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.opts.Store.IssuePairingCode(ctx, c); err != nil {
		g.log.Error("could not record a pairing code", "platform", platform, "error", err)
		return false
	}
	g.metrics.codes.WithLabelValues(platform).Inc()
	g.log.Info("sent a pairing code to an unknown user", "platform", platform,
		"user", shared.LogValue(m.UserID), "code", c.Code)
	g.notify(platform, noticeTo(m, fmt.Sprintf(
		"I don't know you yet. Your pairing code is %s: ask the operator to run `gateway pairing approve %s`. It expires in %s.",
		c.Code, c.Code, roundDuration(g.opts.CodeTTL))))
	return false
}

// Approval is an approved pairing code: who was approved.
type Approval struct {
	Platform string `json:"platform"`
	UserID   string `json:"user_id"`
	UserName string `json:"user_name,omitempty"`
}

// Approve approves the user code was issued to and announces it to them in
// their DM conversation. It fails with store.ErrUnknownCode or a
// *store.ExpiredCodeError.
func (g *Gate) Approve(ctx context.Context, code string) (Approval, error) {
	code = NormalizeCode(code)
	c, err := g.opts.Store.ApprovePairingCode(ctx, code, g.opts.Now())
	if errors.Is(err, store.ErrUnknownCode) {
		return Approval{}, fmt.Errorf("%w %s: it was never issued, or was used already", err, code)
	}
	if err != nil {
		return Approval{}, err
	}
	g.log.Info("approved a user", "platform", c.Platform, "user", shared.LogValue(c.UserID))
	g.notify(c.Platform, shared.Reply{ConversationID: c.ConversationID, Kind: shared.KindNotice,
		Text: "The operator approved you: you can talk to me now."})
	return Approval{Platform: c.Platform, UserID: c.UserID, UserName: c.UserName}, nil
}

// Revoke withdraws a user's approval; their next DM is treated as a
// stranger's. It fails with store.ErrNotPaired when they are not approved.
func (g *Gate) Revoke(ctx context.Context, platform, user string) error {
	if err := g.opts.Store.RevokePairing(ctx, platform, user); err != nil {
		return err
	}
	g.log.Info("revoked a user", "platform", platform, "user", shared.LogValue(user))
	return nil
}

// PendingCode is a pairing code waiting for approval, as listed.
type PendingCode struct {
	Code     string    `json:"code"`
	Platform string    `json:"platform"`
	UserID   string    `json:"user_id"`
	UserName string    `json:"user_name,omitempty"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
}

// ApprovedUser is an approved user, as listed.
type ApprovedUser struct {
	Platform string    `json:"platform"`
	UserID   string    `json:"user_id"`
	UserName string    `json:"user_name,omitempty"`
	Approved time.Time `json:"approved"`
}

// Pairing is what `gateway pairing list` shows.
type Pairing struct {
	Pending  []PendingCode  `json:"pending"`
	Approved []ApprovedUser `json:"approved"`
}

// List returns the codes still valid and the approved users, oldest first.
func (g *Gate) List() (Pairing, error) {
	codes, err := g.opts.Store.PairingCodes()
	if err != nil {
		return Pairing{}, err
	}
	users, err := g.opts.Store.ApprovedUsers()
	if err != nil {
		return Pairing{}, err
	}
	now := g.opts.Now()
	out := Pairing{Pending: []PendingCode{}, Approved: []ApprovedUser{}}
	for _, c := range codes {
		if now.Before(c.Expires) {
			out.Pending = append(out.Pending, PendingCode{Code: c.Code, Platform: c.Platform, UserID: c.UserID,
				UserName: c.UserName, Created: c.Created.UTC(), Expires: c.Expires.UTC()})
		}
	}
	for _, u := range users {
		out.Approved = append(out.Approved, ApprovedUser{Platform: u.Platform, UserID: u.UserID,
			UserName: u.UserName, Approved: u.Approved.UTC()})
	}
	sort.Slice(out.Pending, func(i, j int) bool { return out.Pending[i].Created.Before(out.Pending[j].Created) })
	sort.Slice(out.Approved, func(i, j int) bool { return out.Approved[i].Approved.Before(out.Approved[j].Approved) })
	return out, nil
}

// IsPairingError reports whether err is the operator's mistake (unknown or
// expired code, user not approved) rather than a failure of the host.
func IsPairingError(err error) bool {
	var exp *store.ExpiredCodeError
	return errors.Is(err, store.ErrUnknownCode) || errors.Is(err, store.ErrNotPaired) || errors.As(err, &exp)
}

// roundDuration prints d the way a user reads it: "1h0m0s" becomes "1h".
func roundDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

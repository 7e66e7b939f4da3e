package kit

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Unit is how a platform measures the length of a message.
type Unit int

const (
	// CodePoints counts Unicode code points (Discord's 2,000 and Slack's
	// 4,000 "characters").
	CodePoints Unit = iota
	// UTF16 counts UTF-16 code units: a character outside the Basic
	// Multilingual Plane, such as most emoji, counts 2 (Telegram's 4,096).
	UTF16
	// Bytes counts UTF-8 bytes (Matrix, whose limit is on the event size).
	Bytes
)

// MinChunkLimit is the smallest limit Chunk accepts: room for a reopened
// code fence, its closing fence and the widest character.
const MinChunkLimit = 16

// fence is a Markdown code fence.
const fence = "```"

// closeFence is what a chunk that ends inside a code block gets appended.
const closeFence = "\n" + fence

// Length is the length of s measured in unit. Invalid UTF-8 counts as
// U+FFFD, which Chunk replaces it with.
func Length(s string, unit Unit) int {
	switch unit {
	case Bytes:
		return len(s)
	case UTF16:
		n := 0
		for _, r := range s {
			n += utf16.RuneLen(r)
		}
		return n
	default:
		return utf8.RuneCountInString(s)
	}
}

func runeLength(r rune, unit Unit) int {
	switch unit {
	case Bytes:
		return utf8.RuneLen(r)
	case UTF16:
		return utf16.RuneLen(r)
	default:
		return 1
	}
}

// Chunk splits a reply into messages of at most limit (measured in unit),
// preferring to break between paragraphs, then lines, then words, and only
// then inside a word; never inside a UTF-8 sequence or a UTF-16 surrogate
// pair, nor before a combining mark. A chunk that ends inside a fenced code
// block is closed with a fence and the next chunk reopens it with the same
// info string ("```go"), so every chunk renders on its own.
//
// The whitespace a break falls on is dropped (platforms trim it anyway), and
// so are leading and trailing whitespace; apart from that and the fences it
// adds, the chunks joined are the text. Invalid UTF-8 is replaced with
// U+FFFD. Blank text yields no chunks. A limit below MinChunkLimit panics:
// it is a programming error.
func Chunk(text string, limit int, unit Unit) []string {
	pieces := split(text, limit, unit)
	out := make([]string, len(pieces))
	for i, p := range pieces {
		out[i] = p.String()
	}
	return out
}

// piece is one chunk as Chunk builds it: the fence it reopens, the part of
// the text it carries, and the fence it closes.
type piece struct {
	reopen, body, close string
}

func (p piece) String() string { return p.reopen + p.body + p.close }

func split(text string, limit int, unit Unit) []piece {
	if limit < MinChunkLimit {
		panic(fmt.Sprintf("kit.Chunk: limit %d is below the minimum of %d", limit, MinChunkLimit))
	}
	text = strings.TrimSpace(strings.ToValidUTF8(text, "\uFFFD"))
	var pieces []piece
	reopen := "" // the fence line the next chunk starts with, if any
	for strings.TrimSpace(text) != "" {
		if Length(reopen+text, unit) <= limit {
			pieces = append(pieces, piece{reopen: reopen, body: strings.TrimRightFunc(text, unicode.IsSpace)})
			break
		}
		budget := limit - Length(reopen, unit)
		if reopen != "" || strings.Contains(text, fence) {
			budget -= Length(closeFence, unit) // room to close a fence
		}
		head, rest := cut(text, budget, unit)
		p := piece{reopen: reopen, body: head}
		info, open := openFence(reopen + head)
		if open {
			p.close = closeFence
			reopen = fence + info + "\n"
			if Length(reopen, unit) > max(limit/4, min(32, limit/2)) { // an absurd info string: drop it
				reopen = fence + "\n"
			}
		} else {
			reopen = ""
			rest = strings.TrimLeft(rest, "\n")
		}
		if strings.TrimSpace(head) != "" {
			pieces = append(pieces, p)
		}
		text = rest
	}
	return pieces
}

// cut splits text into a head of at most budget units and the rest, at the
// best boundary it finds. The separator it breaks at is dropped.
func cut(text string, budget int, unit Unit) (head, rest string) {
	end := prefixWithin(text, budget, unit)
	if end >= len(text) {
		return text, ""
	}
	// Paragraph and line breaks only if the chunk stays at least half full;
	// a space anywhere; otherwise a hard cut. A separator right after the
	// part that fits counts: it is dropped, not sent.
	for _, sep := range []string{"\n\n", "\n", " "} {
		minLen := end / 2
		if sep == " " {
			minLen = 1
		}
		window := text[:min(end+len(sep), len(text))]
		if i := strings.LastIndex(window, sep); i >= minLen && strings.TrimSpace(text[:i]) != "" {
			return strings.TrimRight(text[:i], " \t"), text[i+len(sep):]
		}
	}
	return text[:end], text[end:]
}

// prefixWithin returns the byte length of the longest prefix of text that
// fits in budget units, ends on a rune boundary, is not followed by a
// combining mark or joiner (which would detach from its base), and holds at
// least one rune so that splitting always progresses.
func prefixWithin(text string, budget int, unit Unit) int {
	n, end := 0, 0
	for i, r := range text {
		w := runeLength(r, unit)
		if n+w > budget {
			break
		}
		n += w
		end = i + utf8.RuneLen(r)
	}
	if end >= len(text) {
		return len(text)
	}
	fits := end
	for end > 0 {
		next, _ := utf8.DecodeRuneInString(text[end:])
		if !clings(next) {
			return end
		}
		_, size := utf8.DecodeLastRuneInString(text[:end])
		end -= size
	}
	if fits == 0 { // not even one rune fits: take one anyway
		_, fits = utf8.DecodeRuneInString(text)
	}
	return fits // one cluster longer than the budget: split it
}

// clings reports whether r belongs to the character before it.
func clings(r rune) bool {
	return unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) ||
		r == '\u200d' || unicode.Is(unicode.Variation_Selector, r) ||
		(r >= 0x1F3FB && r <= 0x1F3FF) // skin tone modifiers
}

// openFence reports whether text ends inside a fenced code block, and the
// info string of that block. A line that starts with ``` opens or closes a
// block; "```x```" on one line does neither.
func openFence(text string) (info string, open bool) {
	for line := range strings.SplitSeq(text, "\n") {
		t := strings.TrimSpace(line)
		if !strings.HasPrefix(t, fence) {
			continue
		}
		if open {
			open, info = false, ""
			continue
		}
		after := t[len(fence):]
		if strings.Contains(after, fence) {
			continue // inline block on one line
		}
		open, info = true, strings.TrimSpace(after)
	}
	return info, open
}

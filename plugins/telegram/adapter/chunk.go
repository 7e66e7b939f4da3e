package adapter

// This file is the Discord plugin's splitter, parameterised by the limit; it
// goes once shared/kit's chunking lands on main.

import (
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// fence is a Markdown code fence.
const fence = "```"

// textLength is the length of s as Telegram measures it:
// UTF-16 code units.
func textLength(s string) int {
	n := 0
	for _, r := range s { // invalid UTF-8 decodes as U+FFFD, one unit
		n += utf16.RuneLen(r)
	}
	return n
}

// splitMessage splits text into chunks of at most limit units, preferring
// to break between paragraphs, then lines, then words, and only then inside
// a word (never inside a UTF-8 sequence or before a combining mark). A
// chunk that ends inside a fenced code block is closed with a fence and the
// next chunk reopens it with the same language, so every chunk renders on
// its own. Empty or blank text yields no chunks.
func splitMessage(text string, limit int) []string {
	text = strings.TrimSpace(text)
	var chunks []string
	reopen := "" // the fence line to start the next chunk with, if any
	for text != "" {
		if whole := reopen + text; textLength(whole) <= limit {
			chunks = append(chunks, whole)
			break
		}
		budget := limit - textLength(reopen)
		if reopen != "" || strings.Contains(text, fence) {
			budget -= textLength("\n" + fence) // room to close a fence
		}
		head, rest := cut(text, budget)
		chunk := reopen + head
		lang, open := openFence(chunk)
		if open {
			chunk += "\n" + fence
			reopen = fence + lang + "\n"
			if textLength(reopen) > limit/4 && textLength(reopen) > 32 { // absurd info string: drop it
				reopen = fence + "\n"
			}
		} else {
			reopen = ""
			rest = strings.TrimLeft(rest, "\n")
		}
		if strings.TrimSpace(head) != "" {
			chunks = append(chunks, chunk)
		}
		text = rest
		if open && strings.TrimSpace(text) == "" {
			break
		}
	}
	return chunks
}

// cut splits text into a head of at most budget units and the rest, at the
// best boundary it finds. The separator it breaks at is dropped.
func cut(text string, budget int) (head, rest string) {
	end := prefixWithin(text, budget)
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
func prefixWithin(text string, budget int) int {
	n, end := 0, 0
	for i, r := range text {
		w := textLength(string(r))
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
// language of that block. A line that starts with ``` opens or closes a
// block; "```x```" on one line does neither.
func openFence(text string) (lang string, open bool) {
	for line := range strings.SplitSeq(text, "\n") {
		t := strings.TrimSpace(line)
		if !strings.HasPrefix(t, fence) {
			continue
		}
		if open {
			open, lang = false, ""
			continue
		}
		after := t[len(fence):]
		if strings.Contains(after, fence) {
			continue // inline block on one line
		}
		open, lang = true, strings.TrimSpace(after)
	}
	return lang, open
}

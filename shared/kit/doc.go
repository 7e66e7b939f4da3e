// Package kit is the toolkit for platform plugins: everything a plugin needs
// that is not its platform's wire protocol, written and tested once.
//
//   - Chunk splits a reply at a platform's length limit (code points, UTF-16
//     units or bytes), keeping code fences balanced.
//   - Backoff is the capped, jittered exponential backoff for reconnects and
//     retries, and Sleep waits for one of its delays or the context.
//   - Budget is a per-conversation rate budget shared by sends, edits and
//     typing: it honours a platform's retry-after, never drops a final
//     message and skips interim updates when spent.
//   - Access is the access policy (allowlists, mention gating, self and
//     bots) with one meaning on every platform.
//   - Unauthorized, InvalidConfig and Fatal build the fatal errors that end a
//     platform for good, so every plugin classifies them alike.
//
// Helpers for a plugin's fake platform server live in kit/fakekit.
package kit

package provider

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
)

// sseStream decodes an OpenAI-style server-sent event stream:
// "data: {json}" lines separated by blank lines, ending with "data: [DONE]".
type sseStream struct {
	provider string
	body     io.ReadCloser
	sc       *bufio.Scanner
	release  func() // stops the attempt's timers and context
	onClose  func() // marks the request finished on the provider
	once     sync.Once
	done     bool
}

func newSSEStream(provider string, resp *http.Response, release func()) *sseStream {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	return &sseStream{provider: provider, body: resp.Body, sc: sc, release: release}
}

// Recv returns the next chunk with text or a finish reason, io.EOF at the end.
func (s *sseStream) Recv() (Chunk, error) {
	for !s.done {
		if !s.sc.Scan() {
			err := s.sc.Err()
			if err == nil {
				err = io.ErrUnexpectedEOF // the stream ended without [DONE]
			}
			s.done = true
			return Chunk{}, &Error{Provider: s.provider, Kind: KindUnavailable, Message: "stream interrupted", Err: err}
		}
		line := s.sc.Text()
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue // comments (": keep-alive"), event:, id:, blank separators
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			s.done = true
			break
		}
		var cr chatResponse
		if err := json.Unmarshal([]byte(data), &cr); err != nil {
			var ae apiError
			if json.Unmarshal([]byte(data), &ae) == nil && ae.Error.Message != "" {
				return Chunk{}, &Error{Provider: s.provider, Kind: KindUnavailable, Message: ae.Error.Message}
			}
			return Chunk{}, &Error{Provider: s.provider, Kind: KindBadResponse, Message: "undecodable event", Err: err}
		}
		if len(cr.Choices) == 0 {
			if cr.Usage != nil {
				return Chunk{Usage: cr.Usage}, nil
			}
			continue
		}
		c := Chunk{Delta: cr.Choices[0].Delta.Content, FinishReason: cr.Choices[0].FinishReason, Usage: cr.Usage}
		if c.Delta == "" && c.FinishReason == "" && c.Usage == nil {
			continue
		}
		return c, nil
	}
	return Chunk{}, io.EOF
}

// Close releases the connection; safe to call more than once.
func (s *sseStream) Close() error {
	var err error
	s.once.Do(func() {
		err = s.body.Close()
		if s.release != nil {
			s.release()
		}
		if s.onClose != nil {
			s.onClose()
		}
	})
	return err
}

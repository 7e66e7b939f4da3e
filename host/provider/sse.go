package provider

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
	// idle bounds the wait for the next line of the stream
	// (stream_idle_timeout); idled says it passed and ended the request.
	idle  time.Duration
	idled atomic.Bool
}

func newSSEStream(provider string, resp *http.Response, release func()) *sseStream {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), maxEventBytes)
	return &sseStream{provider: provider, body: resp.Body, sc: sc, release: release}
}

// maxEventBytes caps one line of the stream.
const maxEventBytes = 1 << 20

// Recv returns the next chunk with text or a finish reason, io.EOF at the end.
// A stream that sends nothing for stream_idle_timeout (headers arrived, then
// silence) ends with an error of kind KindTimeout.
func (s *sseStream) Recv() (Chunk, error) {
	var idle *time.Timer
	if s.idle > 0 && !s.done {
		idle = time.AfterFunc(s.idle, func() {
			s.idled.Store(true)
			if s.release != nil {
				s.release() // cancels the request: the blocked read returns
			}
		})
		defer idle.Stop()
	}
	for !s.done {
		if !s.sc.Scan() {
			err := s.sc.Err()
			if err == nil {
				err = io.ErrUnexpectedEOF // the stream ended without [DONE]
			}
			s.done = true
			switch {
			case s.idled.Load():
				return Chunk{}, &Error{Provider: s.provider, Kind: KindTimeout,
					Message: fmt.Sprintf("the stream stalled: nothing arrived for %s (stream_idle_timeout)", s.idle), Err: err}
			case errors.Is(err, bufio.ErrTooLong):
				return Chunk{}, &Error{Provider: s.provider, Kind: KindBadResponse,
					Message: fmt.Sprintf("a stream event is over %d MiB", maxEventBytes>>20), Err: err}
			}
			return Chunk{}, &Error{Provider: s.provider, Kind: KindUnavailable, Message: "stream interrupted", Err: err}
		}
		if idle != nil {
			idle.Reset(s.idle)
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

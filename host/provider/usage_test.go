package provider

import (
	"context"
	"io"
	"testing"

	"github.com/plughost/gateway/host/provider/providertest"
)

func TestOpenAICompleteReportsUsage(t *testing.T) {
	srv := providertest.New(t)
	srv.Usage = func(*providertest.Request, string) (int, int) { return 11, 7 }
	p := newTestProvider(t, srv, nil, RetryPolicy{})
	resp, err := p.Complete(context.Background(), userReq("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Usage != (Usage{PromptTokens: 11, CompletionTokens: 7}) || resp.Usage.Total() != 18 {
		t.Fatalf("usage = %+v, want 11 prompt + 7 completion", resp.Usage)
	}
	if srv.LastRequest().StreamOptions != nil {
		t.Fatal("a non-streamed request sent stream_options")
	}
}

func TestOpenAIStreamAsksForAndReportsUsage(t *testing.T) {
	srv := providertest.New(t)
	srv.Reply = func(*providertest.Request) string { return "one two" }
	srv.Usage = func(*providertest.Request, string) (int, int) { return 5, 2 }
	p := newTestProvider(t, srv, nil, RetryPolicy{})
	st, err := p.Stream(context.Background(), userReq("hi"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var usage *Usage
	for {
		c, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.Usage != nil {
			usage = c.Usage
		}
	}
	if so := srv.LastRequest().StreamOptions; so == nil || !so.IncludeUsage {
		t.Fatal("the streamed request did not set stream_options.include_usage")
	}
	if usage == nil || *usage != (Usage{PromptTokens: 5, CompletionTokens: 2}) {
		t.Fatalf("usage = %+v, want 5 prompt + 2 completion", usage)
	}
}

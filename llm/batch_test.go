package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestBatchRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	bw := NewBatchWriter(&buf)
	reqs := []ChatRequest{chatReq("one"), chatReq("two"), chatReq("three")}
	for i, r := range reqs {
		if err := bw.AddChat(fmt.Sprintf("r%d", i), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.AddChat("r0", reqs[0]); err == nil {
		t.Error("repeated custom_id accepted")
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"url":"/v1/chat/completions"`) || !strings.Contains(buf.String(), `"method":"POST"`) {
		t.Errorf("batch line shape: %s", buf.String())
	}
	lines, err := ReadBatchRequests(bytes.NewReader(buf.Bytes()), "in.jsonl")
	if err != nil || len(lines) != 3 {
		t.Fatalf("%d lines, %v", len(lines), err)
	}
	// Answer as a batch runner would: out of order, one failure, pretty bodies.
	var out bytes.Buffer
	for _, i := range []int{2, 0, 1} {
		var body ChatRequest
		json.Unmarshal(lines[i].Body, &body)
		res := BatchResult{ID: "b", CustomID: lines[i].CustomID}
		if i == 1 {
			res.Error = &BatchError{Code: "server_error", Message: "boom"}
		} else {
			b, _ := json.MarshalIndent(ChatResponse{Model: "m", Choices: []ChatChoice{{Message: Message{Role: "assistant", Content: "ans " + body.Messages[0].Content}, FinishReason: "stop"}}, Usage: Usage{PromptTokens: 7, CompletionTokens: 3}}, "", "  ")
			res.Response = &BatchResponse{StatusCode: 200, Body: b}
		}
		line, _ := json.Marshal(res)
		out.Write(line)
		out.WriteString("\n\n")
	}
	out.WriteString(`{"custom_id":"stray","response":{"status_code":200,"body":{}}}` + "\n")
	results, err := ReadBatchResults(&out, "out.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	cache, _ := NewDirCache(t.TempDir())
	acct := &Accounting{}
	st, err := ImportBatch(context.Background(), cache, acct, lines, results)
	if err != nil {
		t.Fatal(err)
	}
	if st.Imported != 2 || len(st.Failed) != 1 || !strings.Contains(st.Failed[0], "boom") || st.Unmatched != 1 || st.Missing != 0 {
		t.Errorf("import stats %+v", st)
	}
	if acct.Total().Requests != 2 || acct.Total().PromptTokens != 14 {
		t.Errorf("import usage %+v", acct.Total())
	}
	// A live run now finds the imported answers without sending them.
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1); chatAnswer(w, r) }))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Cache: cache}
	for i, want := range []string{"ans one", "echo: two", "ans three"} {
		r, err := c.Chat(context.Background(), reqs[i])
		if err != nil || r.Content() != want {
			t.Errorf("request %d: %v %q, want %q", i, err, r.Content(), want)
		}
	}
	if n.Load() != 1 {
		t.Errorf("server saw %d requests, want 1 (the failed batch line)", n.Load())
	}
}

func TestReadBatchErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}` + "\n" + `{"custom_id":"a","method":"POST","url":"/v1/x","body":{}}`, "in.jsonl:2: custom_id \"a\" repeated"},
		{`{"method":"POST","url":"/v1/x","body":{}}`, "in.jsonl:1: custom_id missing"},
		{`{"custom_id":"a","url":"/v1/x"}`, "in.jsonl:1: body missing"},
		{"\n\n{not json", "in.jsonl:3:"},
	}
	for _, tc := range tests {
		_, err := ReadBatchRequests(strings.NewReader(tc.in), "in.jsonl")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.want)
		}
	}
	if _, err := ReadBatchResults(strings.NewReader(`{"custom_id":"a"}`+"\n"+`{"custom_id":"a"}`), "out.jsonl"); err == nil || !strings.Contains(err.Error(), "out.jsonl:2") {
		t.Errorf("repeated result: %v", err)
	}
}

func TestParsePrices(t *testing.T) {
	p, err := ParsePrices("gpt-4o-mini=0.15/0.60, big=2.5/10")
	if err != nil || p["gpt-4o-mini"] != (Price{0.15, 0.60}) || p["big"] != (Price{2.5, 10}) {
		t.Errorf("%v %v", p, err)
	}
	for _, bad := range []string{"x", "x=1", "x=a/b", "=1/2", "x=-1/2"} {
		if _, err := ParsePrices(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

package llm

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func FuzzReadBatchResults(f *testing.F) {
	f.Add(`{"id":"b","custom_id":"a","response":{"status_code":200,"body":{"choices":[]}},"error":null}`)
	f.Add(`{"custom_id":"a","response":null,"error":{"code":"x","message":"m"}}` + "\n\n" + `{"custom_id":"b","response":{"status_code":500,"body":{"error":{"message":"e"}}}}`)
	f.Fuzz(func(t *testing.T, in string) {
		res, err := ReadBatchResults(strings.NewReader(in), "f")
		if err != nil {
			return
		}
		for id, r := range res {
			if id == "" || r.CustomID != id {
				t.Fatalf("result keyed %q has custom_id %q", id, r.CustomID)
			}
			if b, err := r.Body(); err == nil && (len(b) == 0 || b[0] != '{') {
				t.Fatalf("accepted body %q", b)
			}
		}
	})
}

func FuzzReadSSE(f *testing.F) {
	f.Add("data: {\"choices\":[]}\n\ndata: [DONE]\n\n")
	f.Add(": c\ndata: a\ndata: b\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		n := 0
		readSSE(&http.Response{Body: io.NopCloser(strings.NewReader(in))}, func(b []byte) error {
			if len(b) == 0 || string(b) == "[DONE]" {
				t.Fatalf("empty or [DONE] event delivered: %q", b)
			}
			n++
			return nil
		})
	})
}

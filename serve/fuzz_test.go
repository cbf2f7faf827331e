package serve

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequests posts arbitrary bodies to the generation endpoints: the
// server never panics or fails with 5xx, and every error is OpenAI-shaped.
func FuzzRequests(f *testing.F) {
	m, tok := stories(f)
	s, err := New(m, tok, Options{Name: "stories260K", Arch: m.Config.Arch, MaxContext: m.Config.MaxContext, MaxTokens: 3, MaxBodyBytes: 4096})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	h := s.Handler()
	for _, seed := range []string{
		`{"model":"stories260K","messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":2}`,
		`{"model":"stories260K","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"stream":true}`,
		`{"model":"stories260K","prompt":"Once","stop":["a","b"],"logprobs":2,"seed":-1}`,
		`{"model":"stories260K","prompt":[[1,2,3]],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"stories260K","prompt":[],"temperature":1e308,"top_p":-0}`,
		`{"model":null,"prompt":{"a":1}}`,
		`[]`, `null`, ``, `{"model":"stories260K","prompt":"\ud800"}`,
	} {
		f.Add("/v1/chat/completions", seed)
		f.Add("/v1/completions", seed)
	}
	f.Fuzz(func(t *testing.T, path, body string) {
		if path != "/v1/chat/completions" {
			path = "/v1/completions"
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		if w.Code >= 500 {
			t.Fatalf("%s %q: status %d: %s", path, body, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var e errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("%s %q: status %d: error body %q", path, body, w.Code, w.Body)
			}
		}
	})
}

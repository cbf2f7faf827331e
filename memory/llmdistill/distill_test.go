package llmdistill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersim/usersim/llm"
	"github.com/usersim/usersim/memory"
)

func TestHappyPath(t *testing.T) {
	f := &fakeLLM{}
	cfg := setup(t, f, "")
	var mu sync.Mutex
	var last, total int
	cfg.Progress = func(done, tot int) { mu.Lock(); last, total = done, tot; mu.Unlock() }
	ds, sp := testData(t)
	ps, ms, err := newDistiller(t, cfg).Distill(context.Background(), ds, sp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.count() != 6 || last != 6 || total != 6 {
		t.Errorf("%d requests, progress %d/%d; want 6 (2 batches × 3 users)", f.count(), last, total)
	}
	if len(ps) != 3 || len(ms) != 45 {
		t.Fatalf("%d profiles, %d interactions", len(ps), len(ms))
	}
	for i, p := range ps {
		if p.User != ds.Users[i].ID || p.Distiller != "llm:fake" || p.NumRatings != 15 || p.Traits.Activity != 15 || len(p.Revisions) != 2 {
			t.Errorf("profile %d: %+v", i, p)
		}
		if p.Description != p.Revisions[1].Description || p.Revisions[1].Reflection == "" {
			t.Errorf("profile %d: description is not the last revision", i)
		}
		for k := range 15 {
			m := ms[15*i+k]
			row := sp.Train[15*i+k]
			if m.User != p.User || m.Order != k || m.Item != ds.Items[ds.Ratings.Item[row]].ID || m.Rating != float64(ds.Ratings.Value[row]) || m.Time != ds.Ratings.Time[row] {
				t.Fatalf("interaction %d of %s: %+v", k, p.User, m)
			}
			if strings.HasSuffix(m.Reason, ".") || !strings.HasPrefix(m.Reason, "movie "+m.Item) {
				t.Errorf("reason %q not cleaned", m.Reason)
			}
		}
	}
	// Second batches carry the first batch's profile; the first carries none.
	// Only training rows reach a prompt: test-only movies never appear, and
	// item averages are training averages.
	for _, req := range f.reqs {
		body, _ := json.Marshal(req)
		if strings.Contains(string(body), "Leaky") || strings.Contains(string(body), `\"t1\"`) {
			t.Fatalf("a test row reached a prompt: %s", body)
		}
		if req.ResponseFormat == nil || req.ResponseFormat.Type != "json_schema" || req.ResponseFormat.JSONSchema == nil || *req.Temperature != 0 {
			t.Errorf("request without the schema or temperature: %+v", req)
		}
		user := req.Messages[1].Content
		first := strings.Contains(user, "batch 1 of 2")
		if first == strings.Contains(user, "MY PROFILE SO FAR") {
			t.Errorf("profile shown wrongly:\n%s", user)
		}
		if !first && !strings.Contains(user, "I am a viewer who has now seen") {
			t.Errorf("second batch lacks the revised profile:\n%s", user)
		}
	}
	// Every quoted average is the item's training-split average.
	sum, cnt := map[string]float64{}, map[string]float64{}
	for _, r := range sp.Train {
		id := ds.Items[ds.Ratings.Item[r]].ID
		sum[id] += float64(ds.Ratings.Value[r])
		cnt[id]++
	}
	avgLine := regexp.MustCompile(`item_id: "([^"]*)" .* average rating of ([0-9.]+)\. \|`)
	quoted := 0
	for _, req := range f.reqs {
		for _, g := range avgLine.FindAllStringSubmatch(req.Messages[1].Content, -1) {
			if want := fmt.Sprintf("%.2f", sum[g[1]]/cnt[g[1]]); g[2] != want {
				t.Errorf("item %s: prompt quotes average %s, training average %s", g[1], g[2], want)
			}
			quoted++
		}
	}
	if quoted != 45 {
		t.Errorf("%d item lines with averages, want 45", quoted)
	}
	u := cfg.Client.Usage.Total()
	if u.Requests != 6 || u.PromptTokens != 600 || !u.Priced || u.Cost != (600*1+120*4)/1e6 {
		t.Errorf("usage %+v", u)
	}
}

func TestTransientErrors(t *testing.T) {
	f := &fakeLLM{hook: func(call int, req *llm.ChatRequest, w http.ResponseWriter) bool {
		switch call {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			io.WriteString(w, `{"error":{"message":"rate limited"}}`)
		case 2:
			w.WriteHeader(500)
		default:
			return false
		}
		return true
	}}
	mustDistill(t, setup(t, f, ""))
	if f.count() != 8 {
		t.Errorf("%d requests, want 8 (6 + a 429 + a 500)", f.count())
	}
}

func TestTimeout(t *testing.T) {
	f := &fakeLLM{}
	// The first answer comes after the attempt's time limit.
	slow := make(chan struct{})
	f.hook = func(call int, req *llm.ChatRequest, w http.ResponseWriter) bool {
		if call == 1 {
			<-slow
		}
		return false
	}
	cfg := setup(t, f, "")
	cfg.Client.Retry.Timeout = 200 * time.Millisecond
	defer close(slow)
	mustDistill(t, cfg)
	if f.count() != 7 {
		t.Errorf("%d requests, want 7 (6 + the one that timed out)", f.count())
	}
}

func TestRepairs(t *testing.T) {
	tests := []struct {
		name    string
		first   func(req *llm.ChatRequest) (string, string)
		inRetry string // text the repair request must hold
	}{
		{"malformed JSON", func(*llm.ChatRequest) (string, string) { return `{"items": [oops`, "stop" }, "not a valid JSON object"},
		{"wrong rating", func(req *llm.ChatRequest) (string, string) {
			return strings.Replace(validContent(req), `"rating":`, `"rating":9`, 1), "stop"
		}, "but I rated it"},
		{"missing item", func(req *llm.ChatRequest) (string, string) {
			var a map[string]any
			json.Unmarshal([]byte(validContent(req)), &a)
			a["items"] = a["items"].([]any)[1:]
			b, _ := json.Marshal(a)
			return string(b), "stop"
		}, "is missing"},
		{"empty reason", func(req *llm.ChatRequest) (string, string) {
			return strings.Replace(validContent(req), `"reason":"movie`, `"reason":" ","x":"`, 1), "stop"
		}, "reason is empty"},
		{"truncated", func(req *llm.ChatRequest) (string, string) { return validContent(req)[:40], "length" }, "cut off"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeLLM{}
			f.content = func(call int, req *llm.ChatRequest) (string, string) {
				if call == 1 {
					return tc.first(req)
				}
				return validContent(req), "stop"
			}
			cfg := setup(t, f, "")
			cfg.Concurrency = 1
			mustDistill(t, cfg)
			if f.count() != 7 {
				t.Fatalf("%d requests, want 7", f.count())
			}
			retry := f.reqs[1]
			last := retry.Messages[len(retry.Messages)-1].Content
			if !strings.Contains(last, tc.inRetry) {
				t.Errorf("repair message %q lacks %q", last, tc.inRetry)
			}
			if tc.name == "truncated" {
				if retry.MaxTokens != 2*f.reqs[0].MaxTokens || len(retry.Messages) != 3 {
					t.Errorf("truncation retry: max_tokens %d→%d, %d messages", f.reqs[0].MaxTokens, retry.MaxTokens, len(retry.Messages))
				}
			} else if len(retry.Messages) != 4 || retry.Messages[2].Role != "assistant" {
				t.Errorf("repair conversation: %+v", retry.Messages)
			}
		})
	}
}

func TestRepairsExhausted(t *testing.T) {
	for _, skip := range []bool{false, true} {
		f := &fakeLLM{content: func(call int, req *llm.ChatRequest) (string, string) {
			if strings.Contains(req.Messages[1].Content, `item_id: "100"`) { // user-1's first batch
				return "I cannot answer in JSON.", "stop"
			}
			return validContent(req), "stop"
		}}
		cfg := setup(t, f, "")
		cfg.MaxRepairs = 2
		cfg.SkipFailed = skip
		ds, sp := testData(t)
		ps, ms, err := newDistiller(t, cfg).Distill(context.Background(), ds, sp, nil)
		if len(ps) != 2 || len(ms) != 30 || ps[0].User != "user-2" {
			t.Fatalf("skip=%v: %d profiles, %d interactions", skip, len(ps), len(ms))
		}
		if skip {
			if err != nil {
				t.Errorf("SkipFailed: %v", err)
			}
			continue
		}
		var fe *FailedUsersError
		if !errors.As(err, &fe) || len(fe.Users) != 1 || fe.Users[0].User != "user-1" || !errors.Is(err, ErrInvalidAnswer) ||
			!strings.Contains(err.Error(), "user user-1, batch 1: no valid answer after 3 attempt(s)") {
			t.Errorf("err = %v", err)
		}
		if f.count() != 3+4 {
			t.Errorf("%d requests, want 7 (3 tries for user-1, 2 batches of 2 others)", f.count())
		}
	}
}

func TestWordCap(t *testing.T) {
	f := &fakeLLM{}
	cfg := setup(t, f, "")
	cfg.MaxWords = 5 // the fake's profiles have 9 words
	ds, sp := testData(t)
	_, _, err := newDistiller(t, cfg).Distill(context.Background(), ds, sp, nil)
	var fe *FailedUsersError
	if !errors.As(err, &fe) || len(fe.Users) != 3 || !errors.Is(err, ErrProfileTooLong) || !strings.Contains(err.Error(), "the revised profile has 9 words, the cap is 5") {
		t.Fatalf("err = %v", err)
	}
	if f.count() != 3 {
		t.Errorf("%d requests: each user should stop after its first batch", f.count())
	}
}

func TestKillAndResume(t *testing.T) {
	want, _ := mustDistill(t, setup(t, &fakeLLM{}, ""))

	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	f1 := &fakeLLM{after: func(call int) {
		if call == 3 {
			cancel() // killed after the third answer went out
		}
	}}
	ds, sp := testData(t)
	_, _, err := newDistiller(t, setup(t, f1, dir)).Distill(ctx, ds, sp, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err = %v", err)
	}
	cached := cacheKeys(t, dir)
	if len(cached) == 0 || len(cached) >= 6 {
		t.Fatalf("%d answers cached by the interrupted run; want some but not all", len(cached))
	}

	f2 := &fakeLLM{}
	got, _ := mustDistill(t, setup(t, f2, dir))
	if f2.count() != 6-len(cached) {
		t.Errorf("resumed run sent %d requests, want %d (6 minus %d cached)", f2.count(), 6-len(cached), len(cached))
	}
	for key := range f2.bodies {
		if cached[key] {
			t.Errorf("request %s was answered before the kill and sent again", key[:12])
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("profile %d after resume differs:\n%s\n%s", i, got[i], want[i])
		}
	}
	f3 := &fakeLLM{}
	mustDistill(t, setup(t, f3, dir))
	if f3.count() != 0 {
		t.Errorf("third run sent %d requests, want 0", f3.count())
	}
}

// cacheKeys lists the keys in a DirCache directory.
func cacheKeys(t *testing.T, dir string) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") && !strings.HasPrefix(d.Name(), ".tmp") {
			keys[strings.TrimSuffix(d.Name(), ".json")] = true
		}
		return nil
	})
	return keys
}

func TestCacheKeyedByPrompt(t *testing.T) {
	dir := t.TempDir()
	mustDistill(t, setup(t, &fakeLLM{}, dir))

	prompts := t.TempDir()
	if err := WriteDefaultPrompts(prompts); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(prompts, BatchTemplate)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte("TASK:"), []byte("YOUR TASK:"), 1), 0o644)
	f := &fakeLLM{}
	cfg := setup(t, f, dir)
	cfg.PromptDir = prompts
	mustDistill(t, cfg)
	if f.count() != 6 {
		t.Errorf("changed prompt: %d requests, want 6 (every one a cache miss)", f.count())
	}
	if !strings.Contains(f.reqs[0].Messages[1].Content, "YOUR TASK:") {
		t.Error("the override template was not used")
	}
	f2 := &fakeLLM{}
	mustDistill(t, setup(t, f2, dir))
	if f2.count() != 0 {
		t.Errorf("original prompt again: %d requests, want 0", f2.count())
	}
}

func TestPromptDirErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "batch.tmpl"), []byte("{{.Nope"), 0o644)
	if _, err := New(Config{Client: &llm.Client{}, Model: "m", PromptDir: dir}); err == nil || !strings.Contains(err.Error(), "batch.tmpl") {
		t.Errorf("bad template: %v", err)
	}
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, "sytem.tmpl"), []byte("x"), 0o644)
	if _, err := New(Config{Client: &llm.Client{}, Model: "m", PromptDir: dir2}); err == nil || !strings.Contains(err.Error(), "unknown template sytem.tmpl") {
		t.Errorf("misspelt template: %v", err)
	}
}

func TestBatchRounds(t *testing.T) {
	want, _ := mustDistill(t, setup(t, &fakeLLM{}, ""))

	dir := t.TempDir()
	runner := &fakeLLM{} // plays vllm run-batch
	cfg := setup(t, runner, dir)
	d := newDistiller(t, cfg)
	ds, sp := testData(t)
	ctx := context.Background()
	var results map[string]llm.BatchResult
	for round := 1; ; round++ {
		var file bytes.Buffer
		st, err := d.Round(ctx, ds, sp, nil, results, &file)
		if err != nil {
			t.Fatal(err)
		}
		wantWritten := map[int]int{1: 3, 2: 3, 3: 0}[round]
		wantImported := map[int]int{1: 0, 2: 3, 3: 3}[round]
		if st.Written != wantWritten || st.Imported != wantImported || st.Unmatched != 0 || len(st.ResultErrors) != 0 {
			t.Fatalf("round %d: %+v", round, st)
		}
		if st.Written == 0 {
			if st.Complete != 3 {
				t.Fatalf("last round: %+v", st)
			}
			break
		}
		reqs, err := llm.ReadBatchRequests(&file, "round.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		// Every line is one user's batch `round`, in user order.
		var out bytes.Buffer
		for i, q := range reqs {
			if q.URL != "/v1/chat/completions" || !strings.HasPrefix(q.CustomID, "uuser-"+string(rune('1'+i))+"-b"+string(rune('0'+round-1))+"-a0-") {
				t.Fatalf("round %d line %d: %s %s", round, i, q.CustomID, q.URL)
			}
			resp, err := http.Post(cfg.Client.BaseURL+"/chat/completions", "application/json", bytes.NewReader(q.Body))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			line, _ := json.Marshal(llm.BatchResult{ID: "x", CustomID: q.CustomID, Response: &llm.BatchResponse{StatusCode: 200, Body: body}})
			out.Write(append(line, '\n'))
		}
		if results, err = llm.ReadBatchResults(&out, "results.jsonl"); err != nil {
			t.Fatal(err)
		}
	}
	// All answers are in the cache: a live run sends nothing.
	live := &fakeLLM{}
	got, _ := mustDistill(t, setup(t, live, dir))
	if live.count() != 0 {
		t.Errorf("live run after import sent %d requests", live.count())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("profile %d from batch rounds differs from a live run", i)
		}
	}
}

func TestValidate(t *testing.T) {
	b := &BatchData{Items: []ItemLine{{ID: "1", Rating: "4"}, {ID: "2", Rating: "2"}}}
	ratings := []float64{4, 2}
	tests := []struct {
		content string
		ok      bool
		want    string
	}{
		{`{"items":[{"item_id":"2","rating":2,"reason":"Because dull."},{"item_id":"1","rating":4,"reason":"I rated it 4 because fun"}],"reflection":"r","profile":"p"}`, true, ""},
		{"```json\n{\"items\":[{\"item_id\":1,\"rating\":\"4\",\"reason\":\"a\"},{\"item_id\":\"2\",\"rating\":2,\"reason\":\"b\"}],\"reflection\":\"r\",\"profile\":\"p\"}\n```", true, ""},
		{`{"items":[{"item_id":"1","rating":4,"reason":"a"},{"item_id":"1","rating":4,"reason":"a"},{"item_id":"3","rating":1,"reason":"c"}],"reflection":"r","profile":"p"}`, false, `appears more than once; items[2]: item_id "3" is not one of this batch's movies; item_id "2" (rated 2) is missing`},
		{`{"items":[{"item_id":"1","reason":"a"},{"item_id":"2","rating":2,"reason":"b"}],"reflection":"","profile":" "}`, false, `rating missing (it is 4); profile is empty; reflection is empty`},
		{`[]`, false, "not a valid JSON object"},
	}
	for _, tc := range tests {
		res, errs := validate(tc.content, b, ratings)
		if (res != nil) != tc.ok || !strings.Contains(strings.Join(errs, "; "), tc.want) {
			t.Errorf("%s:\n got %v %q\nwant ok=%v %q", tc.content, res, errs, tc.ok, tc.want)
		}
		if tc.ok && (res.Reasons[0] != "fun" || res.Reasons[1] != "dull") && (res.Reasons[0] != "a" || res.Reasons[1] != "b") {
			t.Errorf("reasons %q", res.Reasons)
		}
	}
}

var _ memory.Distiller = (*Distiller)(nil)

func TestServerErrors(t *testing.T) {
	// A 400 for one user's request (its prompt over the context length)
	// fails that user; a 401 stops the run.
	for _, tc := range []struct {
		status   int
		perUser  bool
		contains string
	}{
		{400, true, "This model's maximum context length is 4096 tokens"},
		{401, false, "401 Unauthorized: bad key"},
	} {
		f := &fakeLLM{hook: func(call int, req *llm.ChatRequest, w http.ResponseWriter) bool {
			if tc.status == 400 && !strings.Contains(req.Messages[1].Content, `item_id: "100"`) {
				return false
			}
			w.WriteHeader(tc.status)
			msg := map[int]string{400: "This model's maximum context length is 4096 tokens", 401: "bad key"}[tc.status]
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg}})
			return true
		}}
		ds, sp := testData(t)
		ps, _, err := newDistiller(t, setup(t, f, "")).Distill(context.Background(), ds, sp, nil)
		var fe *FailedUsersError
		if !strings.Contains(fmt.Sprint(err), tc.contains) || errors.As(err, &fe) != tc.perUser {
			t.Errorf("status %d: err = %v", tc.status, err)
		}
		if tc.perUser && (len(ps) != 2 || len(fe.Users) != 1 || fe.Users[0].User != "user-1") {
			t.Errorf("status %d: %d profiles, failed %v", tc.status, len(ps), fe)
		}
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(`{"items":[{"item_id":"1","rating":4,"reason":"a"},{"item_id":"2","rating":2,"reason":"b"}],"reflection":"r","profile":"p"}`)
	f.Add("```json\n{\"items\":[{\"item_id\":1,\"rating\":\"4\",\"reason\":\"I rated it because x.\"}]}\n```")
	f.Add(`{"items":null,"profile":null}`)
	b := &BatchData{Items: []ItemLine{{ID: "1", Rating: "4"}, {ID: "2", Rating: "2"}}}
	f.Fuzz(func(t *testing.T, content string) {
		res, errs := validate(content, b, []float64{4, 2})
		if (res == nil) == (len(errs) == 0) {
			t.Fatalf("result %v with problems %q", res, errs)
		}
		if res != nil {
			if len(res.Reasons) != 2 || res.Reasons[0] == "" || res.Reasons[1] == "" || res.Profile == "" || res.Reflection == "" {
				t.Fatalf("accepted an incomplete answer: %+v", res)
			}
		}
	})
}

func TestRequestFields(t *testing.T) {
	msgs := []llm.Message{{Role: "user", Content: "x"}}
	for _, tc := range []struct {
		cfg  Config
		want string
		not  string
	}{
		{Config{}, `"temperature":0,"max_tokens":4096,`, "max_completion_tokens"},
		{Config{Temperature: -1, MaxCompletionTokens: true, ResponseFormat: "json_object"}, `"max_completion_tokens":4096,"response_format":{"type":"json_object"}`, "temperature"},
		{Config{ResponseFormat: "none", Seed: llm.Ptr(int64(7))}, `"seed":7`, "response_format"},
	} {
		tc.cfg.Client, tc.cfg.Model = &llm.Client{}, "m"
		b, _ := json.Marshal(newDistiller(t, tc.cfg).request(msgs, 4096))
		if !strings.Contains(string(b), tc.want) || strings.Contains(string(b), tc.not) {
			t.Errorf("%+v: %s", tc.cfg, b)
		}
	}
}

package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/generate"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/tokenizer"
)

var (
	storiesOnce sync.Once
	storiesM    *slm.Model
	storiesTok  *tokenizer.Tokenizer
	storiesErr  error
)

// stories loads stories260K once for all tests (skipping when absent).
func stories(t testing.TB) (*slm.Model, *tokenizer.Tokenizer) {
	t.Helper()
	path := sharedtest.Path(t, "models", "stories260K", "stories260K.gguf")
	storiesOnce.Do(func() { storiesM, storiesTok, storiesErr = slm.Load(path) })
	if storiesErr != nil {
		t.Fatal(storiesErr)
	}
	return storiesM, storiesTok
}

// randomAdapter returns an adapter on q and v whose B is not zero, so that
// it changes the model's output.
func randomAdapter(t testing.TB, m *slm.Model, seed uint64) *lora.Adapter {
	t.Helper()
	a, err := lora.New(lora.NewConfig("stories260K", 4, 8, "q_proj", "v_proj", "down_proj"), m.Config.LoRABase(), seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, p := range a.Pairs() {
		for i := range p.B {
			p.B[i] = float32(rng.NormFloat64()) * 0.5
		}
	}
	return a
}

// gatedModel lets a test hold Forward calls: while hold is set, each call
// signals entered and waits for release; delay slows every call.
type gatedModel struct {
	Model
	hold    atomic.Bool
	entered chan struct{}
	release chan struct{}
	delay   time.Duration

	mu      sync.Mutex
	batches [][]int // tokens per sequence of each Forward
}

func newGated(m Model) *gatedModel {
	return &gatedModel{Model: m, entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (g *gatedModel) Forward(ctx context.Context, batch []slm.Sequence) ([][][]float32, error) {
	if g.hold.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
	if g.delay > 0 {
		time.Sleep(g.delay)
	}
	rows := make([]int, len(batch))
	for i, sq := range batch {
		rows[i] = len(sq.Tokens)
	}
	g.mu.Lock()
	g.batches = append(g.batches, rows)
	g.mu.Unlock()
	return g.Model.Forward(ctx, batch)
}

type testServer struct {
	s      *Server
	hs     *httptest.Server
	url    string
	client openai.Client
}

func start(t testing.TB, m Model, tok *tokenizer.Tokenizer, o Options, clientOpts ...option.RequestOption) *testServer {
	t.Helper()
	if o.Name == "" {
		o.Name = "stories260K"
	}
	if sm, ok := m.(*slm.Model); ok && o.MaxContext == 0 {
		o.MaxContext = sm.Config.MaxContext
		o.Arch = sm.Config.Arch
	}
	s, err := New(m, tok, o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	opts := append([]option.RequestOption{option.WithBaseURL(hs.URL + "/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0)}, clientOpts...)
	return &testServer{s: s, hs: hs, url: hs.URL, client: openai.NewClient(opts...)}
}

func golden(t *testing.T) (ids []int, text string) {
	t.Helper()
	b, err := os.ReadFile(sharedtest.Path(t, "golden", "stories260K", "generate_greedy_200.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		IDs  []int  `json:"ids"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g.IDs, g.Text
}

// TestCompletionsGolden: greedy completions from the empty prompt (BOS
// only) reproduce the reference text, whole and streamed.
func TestCompletionsGolden(t *testing.T) {
	m, tok := stories(t)
	ids, want := golden(t)
	ts := start(t, m, tok, Options{})
	ctx := context.Background()
	params := openai.CompletionNewParams{
		Model:       "stories260K",
		Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("")},
		Temperature: openai.Float(0),
		MaxTokens:   openai.Int(int64(len(ids))),
	}
	c, err := ts.client.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 1 || c.Choices[0].Text != want {
		t.Fatalf("text\n%q\nwant\n%q", c.Choices[0].Text, want)
	}
	if c.Choices[0].FinishReason != "length" || c.Usage.CompletionTokens != int64(len(ids)) || c.Usage.PromptTokens != 1 || c.Object != "text_completion" {
		t.Fatalf("finish %q usage %+v object %q", c.Choices[0].FinishReason, c.Usage, c.Object)
	}

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := ts.client.Completions.NewStreaming(ctx, params)
	var text strings.Builder
	chunks, finish := 0, ""
	var u openai.CompletionUsage
	for stream.Next() {
		ch := stream.Current()
		if len(ch.Choices) == 1 {
			text.WriteString(ch.Choices[0].Text)
			if ch.Choices[0].FinishReason != "" {
				finish = string(ch.Choices[0].FinishReason)
			}
			chunks++
		}
		if ch.Usage.TotalTokens > 0 {
			u = ch.Usage
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != want {
		t.Fatalf("streamed text\n%q\nwant\n%q", text.String(), want)
	}
	if chunks < len(ids)/2 || finish != "length" || u.CompletionTokens != int64(len(ids)) {
		t.Fatalf("%d chunks, finish %q, usage %+v", chunks, finish, u)
	}
}

// TestChatMatchesGenerate: a greedy chat completion, whole and streamed,
// equals slm/generate's output for the same templated prompt.
func TestChatMatchesGenerate(t *testing.T) {
	m, tok := stories(t)
	ts := start(t, m, tok, Options{})
	msgs := []chatMessage{{Role: "system", Content: json.RawMessage(`"You tell stories."`)}, {Role: "user", Content: json.RawMessage(`"Once upon a time"`)}}
	prompt, herr := ts.s.chatPrompt(msgs)
	if herr != nil {
		t.Fatal(herr)
	}
	var want strings.Builder
	st, err := generate.Generate(context.Background(), m, tok, prompt, generate.Options{MaxTokens: 30}, func(s string) error {
		want.WriteString(s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	params := openai.ChatCompletionNewParams{
		Model:       "stories260K",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You tell stories."), openai.UserMessage("Once upon a time")},
		Temperature: openai.Float(0),
		MaxTokens:   openai.Int(30),
	}
	c, err := ts.client.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Choices[0].Message.Content; got != want.String() || want.Len() == 0 {
		t.Fatalf("chat text\n%q\nwant\n%q", got, want.String())
	}
	if c.Usage.PromptTokens != int64(len(prompt)) || c.Usage.CompletionTokens != int64(len(st.Tokens)) || c.Object != "chat.completion" || c.Choices[0].Message.Role != "assistant" {
		t.Fatalf("usage %+v object %q role %q", c.Usage, c.Object, c.Choices[0].Message.Role)
	}
	stream := ts.client.Chat.Completions.NewStreaming(context.Background(), params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.Content; got != want.String() {
		t.Fatalf("streamed chat text\n%q\nwant\n%q", got, want.String())
	}
}

// TestLogprobs: chat logprobs are sorted, sum to at most one, and the
// chosen token's matches a direct Score; legacy completions logprobs agree.
func TestLogprobs(t *testing.T) {
	m, tok := stories(t)
	ts := start(t, m, tok, Options{})
	ctx := context.Background()
	const n = 12
	c, err := ts.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:       "stories260K",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("The cat")},
		Temperature: openai.Float(0),
		MaxTokens:   openai.Int(n),
		Logprobs:    openai.Bool(true),
		TopLogprobs: openai.Int(5),
	})
	if err != nil {
		t.Fatal(err)
	}
	prompt, _ := ts.s.chatPrompt([]chatMessage{{Role: "user", Content: json.RawMessage(`"The cat"`)}})
	st, err := generate.Generate(ctx, m, tok, prompt, generate.Options{MaxTokens: n}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lps := c.Choices[0].Logprobs.Content
	if len(lps) != len(st.Tokens) || len(lps) == 0 {
		t.Fatalf("%d logprobs for %d tokens", len(lps), len(st.Tokens))
	}
	var joined []byte
	for i, lp := range lps {
		if len(lp.TopLogprobs) != 5 {
			t.Fatalf("token %d: %d top logprobs, want 5", i, len(lp.TopLogprobs))
		}
		sum := 0.0
		for k, tl := range lp.TopLogprobs {
			sum += math.Exp(tl.Logprob)
			if k > 0 && tl.Logprob > lp.TopLogprobs[k-1].Logprob {
				t.Fatalf("token %d: top logprobs not sorted", i)
			}
		}
		if sum > 1+1e-6 {
			t.Fatalf("token %d: top probabilities sum to %v", i, sum)
		}
		// Greedy: the chosen token is the most likely one.
		if lp.Token != lp.TopLogprobs[0].Token || lp.Logprob != lp.TopLogprobs[0].Logprob {
			t.Fatalf("token %d: chosen %q %v, top %q %v", i, lp.Token, lp.Logprob, lp.TopLogprobs[0].Token, lp.TopLogprobs[0].Logprob)
		}
		ctxIDs := append(append([]int{}, prompt...), st.Tokens[:i]...)
		score, err := m.Score(ctx, nil, ctxIDs, [][]int{{st.Tokens[i]}})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(score[0]-lp.Logprob) > 1e-4 {
			t.Fatalf("token %d: logprob %v, Score %v", i, lp.Logprob, score[0])
		}
		if lp.Token != tok.TokenBytes(st.Tokens[i]) {
			t.Fatalf("token %d: %q, want %q", i, lp.Token, tok.TokenBytes(st.Tokens[i]))
		}
		for _, b := range lp.Bytes {
			joined = append(joined, byte(b))
		}
	}
	if len(joined) == 0 {
		t.Fatal("no token bytes")
	}

	cc, err := ts.client.Completions.New(ctx, openai.CompletionNewParams{
		Model:       "stories260K",
		Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("The cat")},
		Temperature: openai.Float(0),
		MaxTokens:   openai.Int(n),
		Logprobs:    openai.Int(3),
	})
	if err != nil {
		t.Fatal(err)
	}
	lg := cc.Choices[0].Logprobs
	if len(lg.Tokens) != int(cc.Usage.CompletionTokens) || len(lg.TokenLogprobs) != len(lg.Tokens) || len(lg.TopLogprobs) != len(lg.Tokens) || len(lg.TextOffset) != len(lg.Tokens) {
		t.Fatalf("legacy logprobs: %d tokens, %d logprobs, %d tops, %d offsets for %d completion tokens", len(lg.Tokens), len(lg.TokenLogprobs), len(lg.TopLogprobs), len(lg.TextOffset), cc.Usage.CompletionTokens)
	}
	for i := range lg.Tokens {
		top := lg.TopLogprobs[i]
		if len(top) == 0 || len(top) > 3 || top[lg.Tokens[i]] != lg.TokenLogprobs[i] {
			t.Fatalf("legacy token %d %q: logprob %v, top %v", i, lg.Tokens[i], lg.TokenLogprobs[i], top)
		}
		if i > 0 && lg.TextOffset[i] <= lg.TextOffset[i-1] {
			t.Fatalf("text offsets %v do not increase", lg.TextOffset)
		}
	}
}

// TestAdaptersConcurrent: requests of two adapters (and the base) batched
// together give the text each gives alone, and the adapters matter.
func TestAdaptersConcurrent(t *testing.T) {
	m, tok := stories(t)
	g := newGated(m)
	ts := start(t, g, tok, Options{
		Adapters: map[string]*lora.Adapter{"alpha": randomAdapter(t, m, 1), "beta": randomAdapter(t, m, 2)},
		MaxBatch: 4, MaxContext: m.Config.MaxContext, Arch: m.Config.Arch,
	})
	ctx := context.Background()
	names := []string{"alpha", "beta", "stories260K"}
	run := func(name string) string {
		c, err := ts.client.Completions.New(ctx, openai.CompletionNewParams{
			Model:       openai.CompletionNewParamsModel(name),
			Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
			Temperature: openai.Float(0),
			MaxTokens:   openai.Int(24),
		})
		if err != nil {
			t.Error(name, err)
			return ""
		}
		return c.Choices[0].Text
	}
	alone := map[string]string{}
	for _, n := range names {
		alone[n] = run(n)
	}
	if alone["alpha"] == alone["beta"] || alone["alpha"] == alone["stories260K"] {
		t.Fatalf("the adapters do not change the output: %q", alone)
	}

	// Hold the first forward pass until every request has arrived, so that
	// all three run in the same batches.
	g.hold.Store(true)
	together := make([]string, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { together[i] = run(n) })
		if i == 0 {
			<-g.entered
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(ts.s.sched.queue) < len(names)-1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	g.hold.Store(false)
	close(g.release)
	wg.Wait()
	for i, n := range names {
		if together[i] != alone[n] {
			t.Errorf("%s in a batch: %q, alone: %q", n, together[i], alone[n])
		}
	}
	var buf bytes.Buffer
	ts.s.metrics.write(&buf)
	if !regexp.MustCompile(`usersim_serve_batch_size_bucket\{le="2"\} \d+\n`).MatchString(buf.String()) {
		t.Fatal("no batch size histogram")
	}
	// Some forward pass ran all three sequences.
	if h := ts.s.metrics.batchSize; h.counts[2] == 0 { // bucket (2, 4]
		t.Fatalf("no batch of 3: %v", h.counts)
	}
}

func apiErr(t *testing.T, err error, status int, code string) {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v, want an API error %d", err, status)
	}
	if e.StatusCode != status || (code != "" && e.Code != code) {
		t.Fatalf("status %d code %q (%v), want %d %q", e.StatusCode, e.Code, e, status, code)
	}
}

func TestAuth(t *testing.T) {
	m, tok := stories(t)
	ts := start(t, m, tok, Options{APIKey: "s3cret"})
	ctx := context.Background()
	_, err := ts.client.Models.List(ctx)
	apiErr(t, err, http.StatusUnauthorized, "invalid_api_key")
	good := openai.NewClient(option.WithBaseURL(ts.url+"/v1/"), option.WithAPIKey("s3cret"), option.WithMaxRetries(0))
	list, err := good.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Data) != 1 || list.Data[0].ID != "stories260K" {
		t.Fatalf("models %+v", list.Data)
	}
	for _, c := range []struct {
		header string
		status int
	}{{"bearer s3cret", 200}, {"Bearer  s3cret ", 200}, {"Basic s3cret", 401}, {"Bearer s3cre", 401}, {"Bearer s3cret2", 401}, {"s3cret", 401}, {"", 401}} {
		req, _ := http.NewRequest(http.MethodGet, ts.url+"/v1/models", nil)
		if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("Authorization %q: %d, want %d", c.header, resp.StatusCode, c.status)
		}
	}
	resp, err := http.Get(ts.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz without a key: %d", resp.StatusCode)
	}
	resp, err = http.Get(ts.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("metrics without a key: %d", resp.StatusCode)
	}
}

// post sends a raw body and returns the status and the decoded error.
func post(t *testing.T, url, body string) (int, http.Header, errorBody) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e errorBody
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
			t.Fatalf("status %d: error body %q is not OpenAI's shape", resp.StatusCode, b)
		}
	}
	return resp.StatusCode, resp.Header, e
}

// TestBadRequests: malformed, oversized and invalid requests get 4xx with
// OpenAI-shaped errors, and unknown models (paths included) 404.
func TestBadRequests(t *testing.T) {
	m, tok := stories(t)
	ts := start(t, m, tok, Options{MaxBodyBytes: 1024, Adapters: map[string]*lora.Adapter{"alpha": randomAdapter(t, m, 1)}})
	ctx := context.Background()

	_, err := ts.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "stories260K", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(strings.Repeat("long ", 400))},
	})
	apiErr(t, err, http.StatusRequestEntityTooLarge, "request_too_large")

	for _, name := range []string{"nope", "../../etc/passwd", "/tmp", "alpha/../stories260K"} {
		_, err := ts.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: name, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		apiErr(t, err, http.StatusNotFound, "model_not_found")
	}

	chat := ts.url + "/v1/chat/completions"
	for _, c := range []struct {
		name, url, body string
		status          int
	}{
		{"not json", chat, `{"model":`, 400},
		{"trailing", chat, `{"model":"stories260K","messages":[{"role":"user","content":"hi"}]} {}`, 400},
		{"no messages", chat, `{"model":"stories260K","messages":[]}`, 400},
		{"no model", chat, `{"messages":[{"role":"user","content":"hi"}]}`, 400},
		{"bad role", chat, `{"model":"stories260K","messages":[{"role":"tool","content":"hi"}]}`, 400},
		{"n=2", chat, `{"model":"stories260K","n":2,"messages":[{"role":"user","content":"hi"}]}`, 400},
		{"temperature", chat, `{"model":"stories260K","temperature":3,"messages":[{"role":"user","content":"hi"}]}`, 400},
		{"top_p", chat, `{"model":"stories260K","top_p":0,"messages":[{"role":"user","content":"hi"}]}`, 400},
		{"max_tokens", chat, `{"model":"stories260K","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}`, 400},
		{"top_logprobs", chat, `{"model":"stories260K","logprobs":true,"top_logprobs":21,"messages":[{"role":"user","content":"hi"}]}`, 400},
		{"stop type", chat, `{"model":"stories260K","stop":3,"messages":[{"role":"user","content":"hi"}]}`, 400},
		{"image part", chat, `{"model":"stories260K","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"file:///etc/passwd"}}]}]}`, 400},
		{"no prompt", ts.url + "/v1/completions", `{"model":"stories260K"}`, 400},
		{"two prompts", ts.url + "/v1/completions", `{"model":"stories260K","prompt":["a","b"]}`, 400},
		{"unknown route", ts.url + "/v1/embeddings", `{}`, 404},
		{"too large", chat, `{"model":"stories260K","messages":[{"role":"user","content":"` + strings.Repeat("x", 2000) + `"}]}`, 413},
	} {
		if status, _, e := post(t, c.url, c.body); status != c.status {
			t.Errorf("%s: status %d (%s), want %d", c.name, status, e.Error.Message, c.status)
		}
	}
	// A long prompt beyond the model's context.
	ts2 := start(t, m, tok, Options{MaxContext: 16})
	_, err = ts2.client.Completions.New(ctx, openai.CompletionNewParams{
		Model: "stories260K", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(strings.Repeat("the cat sat ", 10))},
	})
	apiErr(t, err, http.StatusBadRequest, "context_length_exceeded")
}

// TestQueueFull: with the one slot busy and the queue full, the next
// request gets 429 with Retry-After; the held ones then complete.
func TestQueueFull(t *testing.T) {
	m, tok := stories(t)
	g := newGated(m)
	ts := start(t, g, tok, Options{MaxBatch: 1, QueueSize: 1, MaxContext: m.Config.MaxContext})
	body := `{"model":"stories260K","prompt":"Once","max_tokens":4,"temperature":0}`
	g.hold.Store(true)
	statuses := make(chan int, 2)
	send := func() {
		status, _, _ := post(t, ts.url+"/v1/completions", body)
		statuses <- status
	}
	go send()
	<-g.entered // the first request runs and holds the model
	go send()
	deadline := time.Now().Add(5 * time.Second)
	for len(ts.s.sched.queue) < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	status, h, e := post(t, ts.url+"/v1/completions", body)
	if status != http.StatusTooManyRequests || h.Get("Retry-After") == "" || *e.Error.Code != "queue_full" {
		t.Fatalf("third request: %d, Retry-After %q, %+v", status, h.Get("Retry-After"), e)
	}
	_, err := ts.client.Completions.New(context.Background(), openai.CompletionNewParams{Model: "stories260K", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("x")}})
	apiErr(t, err, http.StatusTooManyRequests, "queue_full")
	g.hold.Store(false)
	close(g.release)
	for range 2 {
		if s := <-statuses; s != http.StatusOK {
			t.Fatalf("held request: %d", s)
		}
	}
	if ts.s.metrics.rejected.Load() != 2 {
		t.Fatalf("rejected %d, want 2", ts.s.metrics.rejected.Load())
	}
}

// TestCancelFreesSlot: a client that abandons a long stream frees the only
// batch slot; the next request is served at once.
func TestCancelFreesSlot(t *testing.T) {
	m, tok := stories(t)
	g := newGated(m)
	g.delay = 5 * time.Millisecond // 500 tokens would take 2.5 s
	ts := start(t, g, tok, Options{MaxBatch: 1, QueueSize: 1, MaxContext: m.Config.MaxContext, MaxTokens: 500})
	ctx, cancel := context.WithCancel(context.Background())
	stream := ts.client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
		Model: "stories260K", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once")},
		MaxTokens: openai.Int(500), Temperature: openai.Float(0),
	})
	if !stream.Next() {
		t.Fatal(stream.Err())
	}
	cancel()
	stream.Close()
	t0 := time.Now()
	c, err := ts.client.Completions.New(context.Background(), openai.CompletionNewParams{
		Model: "stories260K", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once")},
		MaxTokens: openai.Int(3), Temperature: openai.Float(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 1500*time.Millisecond || c.Usage.CompletionTokens != 3 {
		t.Fatalf("second request took %v (%d tokens): the abandoned one kept its slot", d, c.Usage.CompletionTokens)
	}
	if ts.s.metrics.cancelled.Load() != 1 {
		t.Fatalf("cancelled %d, want 1", ts.s.metrics.cancelled.Load())
	}
}

// TestTimeout: a request past its timeout gets 504 and frees its slot.
func TestTimeout(t *testing.T) {
	m, tok := stories(t)
	g := newGated(m)
	g.delay = 5 * time.Millisecond
	ts := start(t, g, tok, Options{MaxContext: m.Config.MaxContext, Timeout: 100 * time.Millisecond})
	_, err := ts.client.Completions.New(context.Background(), openai.CompletionNewParams{
		Model: "stories260K", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once")},
		MaxTokens: openai.Int(400), Temperature: openai.Float(0),
	})
	apiErr(t, err, http.StatusGatewayTimeout, "timeout")
	deadline := time.Now().Add(2 * time.Second)
	for ts.s.metrics.running.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if ts.s.metrics.running.Load() != 0 {
		t.Fatal("the timed-out generation still runs")
	}
}

// TestStop: a stop string ends generation before it, with finish "stop".
func TestStop(t *testing.T) {
	m, tok := stories(t)
	_, want := golden(t)
	ts := start(t, m, tok, Options{})
	stop := want[20:24]
	c, err := ts.client.Completions.New(context.Background(), openai.CompletionNewParams{
		Model: "stories260K", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("")},
		MaxTokens: openai.Int(100), Temperature: openai.Float(0),
		Stop: openai.CompletionNewParamsStopUnion{OfString: openai.String(stop)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Choices[0].Text; got != want[:strings.Index(want, stop)] || c.Choices[0].FinishReason != "stop" {
		t.Fatalf("text %q finish %q, want %q", got, c.Choices[0].FinishReason, want[:strings.Index(want, stop)])
	}
}

// TestMetrics: counters move with requests, in the text format.
func TestMetrics(t *testing.T) {
	m, tok := stories(t)
	ts := start(t, m, tok, Options{Adapters: map[string]*lora.Adapter{"alpha": randomAdapter(t, m, 1)}})
	ctx := context.Background()
	for range 2 {
		if _, err := ts.client.Completions.New(ctx, openai.CompletionNewParams{
			Model: "alpha", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once")}, MaxTokens: openai.Int(5), Temperature: openai.Float(0),
		}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := ts.client.Completions.New(ctx, openai.CompletionNewParams{Model: "nope", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("x")}})
	apiErr(t, err, http.StatusNotFound, "")
	list, err := ts.client.Models.List(ctx)
	if err != nil || len(list.Data) != 2 || list.Data[0].ID != "stories260K" || list.Data[1].ID != "alpha" {
		t.Fatalf("models %+v %v", list, err)
	}
	// The middleware counts a request after its handler returns, which may
	// be just after the client has the response: read until settled.
	want := []struct {
		metric string
		want   float64
	}{
		{`usersim_serve_requests_total{endpoint="/v1/completions",status="200"}`, 2},
		{`usersim_serve_requests_total{endpoint="/v1/completions",status="404"}`, 1},
		{`usersim_serve_requests_total{endpoint="/v1/models",status="200"}`, 1},
		{`usersim_serve_generated_tokens_total`, 10},
		{`usersim_serve_request_duration_seconds_count{endpoint="/v1/completions"}`, 3},
		{`usersim_serve_batch_size_count`, 10},
		{`usersim_serve_running`, 0},
	}
	var text string
	var bad []string
	for try := 0; try < 100; try++ {
		resp, err := http.Get(ts.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text, bad = string(b), nil
		for _, c := range want {
			mm := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(c.metric) + ` (\S+)$`).FindStringSubmatch(text)
			if mm == nil {
				bad = append(bad, c.metric+" missing")
				continue
			}
			if v, _ := strconv.ParseFloat(mm[1], 64); v != c.want {
				bad = append(bad, fmt.Sprintf("%s = %v, want %v", c.metric, v, c.want))
			}
		}
		if len(bad) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(bad) > 0 {
		t.Fatalf("%s\nin\n%s", strings.Join(bad, "\n"), text)
	}
	if !strings.Contains(text, "# TYPE usersim_serve_request_duration_seconds histogram") || !strings.Contains(text, `le="+Inf"`) {
		t.Fatal("histogram metadata missing")
	}
}

// TestClose: closing the server ends queued and running generations with
// 503 instead of leaving their clients waiting.
func TestClose(t *testing.T) {
	m, tok := stories(t)
	g := newGated(m)
	ts := start(t, g, tok, Options{MaxContext: m.Config.MaxContext})
	g.hold.Store(true)
	done := make(chan int, 1)
	go func() {
		status, _, _ := post(t, ts.url+"/v1/completions", `{"model":"stories260K","prompt":"Once","max_tokens":50}`)
		done <- status
	}()
	<-g.entered
	closed := make(chan struct{})
	go func() { ts.s.Close(); close(closed) }()
	g.hold.Store(false)
	close(g.release)
	<-closed
	if s := <-done; s != http.StatusServiceUnavailable && s != http.StatusOK {
		t.Fatalf("status %d after Close", s)
	}
}

func TestLogprobsOf(t *testing.T) {
	logits := []float32{1, 3, 2, 3, -1}
	lp, top := logprobsOf(logits, 2, 3)
	if len(top) != 3 || top[0].id != 1 || top[1].id != 3 || top[2].id != 2 || lp != top[2].logprob {
		t.Fatalf("top %+v lp %v", top, lp)
	}
	var sum float64
	for i := range logits {
		l, _ := logprobsOf(logits, i, 0)
		sum += math.Exp(l)
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Fatalf("probabilities sum to %v", sum)
	}
}

// TestPrefillBudget: queued prompts join the running batch at most
// MaxPrefillTokens at a time, and decodes go on meanwhile.
func TestPrefillBudget(t *testing.T) {
	m, tok := stories(t)
	g := newGated(m)
	ts := start(t, g, tok, Options{MaxBatch: 4, MaxPrefillTokens: 4, MaxContext: m.Config.MaxContext})
	prompt := "Once upon a time there was"
	n, _ := tok.Encode(prompt, tokenizer.EncodeOptions{AddBOS: tok.AddBOSDefault()})
	body := `{"model":"stories260K","prompt":"` + prompt + `","max_tokens":6,"temperature":0}`
	g.hold.Store(true)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if status, _, e := post(t, ts.url+"/v1/completions", body); status != http.StatusOK {
				t.Errorf("status %d: %s", status, e.Error.Message)
			}
		})
		if i == 0 {
			<-g.entered
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(ts.s.sched.queue) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	g.hold.Store(false)
	close(g.release)
	wg.Wait()
	p := len(n)
	want := [][]int{{p}, {1, p}, {1, 1, p}, {1, 1, 1}}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, w := range want {
		if i >= len(g.batches) || !slices.Equal(g.batches[i], w) {
			t.Fatalf("batches %v, want them to start %v", g.batches, want)
		}
	}
}

// TestTokenPrompt: a completions prompt of token ids is used as is, and
// known paths with the wrong method get 405.
func TestTokenPrompt(t *testing.T) {
	m, tok := stories(t)
	_, want := golden(t)
	ts := start(t, m, tok, Options{})
	c, err := ts.client.Completions.New(context.Background(), openai.CompletionNewParams{
		Model: "stories260K", Prompt: openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: []int64{int64(tok.BOS())}},
		MaxTokens: openai.Int(20), Temperature: openai.Float(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Choices[0].Text; !strings.HasPrefix(want, got) || len(got) < 20 {
		t.Fatalf("text %q is not a prefix of the golden text", got)
	}
	if status, _, _ := post(t, ts.url+"/v1/completions", `{"model":"stories260K","prompt":[1, 99999]}`); status != http.StatusBadRequest {
		t.Fatalf("out-of-vocabulary token: %d", status)
	}
	resp, err := http.Get(ts.url + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET chat: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// TestGracefulDrain: shutting the HTTP server down lets a running stream
// finish whole before Shutdown returns.
func TestGracefulDrain(t *testing.T) {
	m, tok := stories(t)
	g := newGated(m)
	g.delay = 2 * time.Millisecond
	ts := start(t, g, tok, Options{MaxContext: m.Config.MaxContext})
	hs := ts.hs
	stream := ts.client.Completions.NewStreaming(context.Background(), openai.CompletionNewParams{
		Model: "stories260K", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once")},
		MaxTokens: openai.Int(60), Temperature: openai.Float(0),
	})
	if !stream.Next() {
		t.Fatal(stream.Err())
	}
	shut := make(chan error, 1)
	go func() { shut <- hs.Config.Shutdown(context.Background()) }()
	finish := ""
	for stream.Next() {
		if ch := stream.Current(); len(ch.Choices) == 1 && ch.Choices[0].FinishReason != "" {
			finish = string(ch.Choices[0].FinishReason)
		}
	}
	if err := stream.Err(); err != nil || finish != "length" {
		t.Fatalf("stream during shutdown: finish %q, %v", finish, err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(ts.url + "/healthz"); err == nil {
		t.Fatal("the server still accepts requests after Shutdown")
	}
}

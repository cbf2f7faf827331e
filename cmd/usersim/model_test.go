package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersim/usersim/internal/sharedtest"
)

// runModel runs `usersim model ARGS...` and returns stdout and stderr.
func runModel(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := newModelCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func storiesGolden(t *testing.T) (gguf string, text string) {
	t.Helper()
	gguf = sharedtest.Path(t, "models/stories260K/stories260K.gguf")
	b, err := os.ReadFile(sharedtest.Path(t, "golden/stories260K/generate_greedy_200.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Steps int    `json:"steps"`
		Text  string `json:"text"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if g.Steps != 200 || !strings.HasPrefix(g.Text, "Once upon a time, there was a little girl named Lily") {
		t.Fatalf("unexpected golden file: %d steps, %.40q", g.Steps, g.Text)
	}
	return gguf, g.Text
}

// TestModelGenerateStories: greedy generation from BOS prints the known
// text, and reports speeds on stderr.
func TestModelGenerateStories(t *testing.T) {
	gguf, want := storiesGolden(t)
	out, errOut, err := runModel(t, "generate", gguf, "--temperature", "0", "--max-tokens", "200")
	if err != nil {
		t.Fatal(err)
	}
	if out != want+"\n" {
		t.Fatalf("generated\n%q\nwant\n%q", out, want)
	}
	for _, s := range []string{"prefill: 1 tokens", "decode:  199 tokens", "tokens/s", "stop: length"} {
		if !strings.Contains(errOut, s) {
			t.Errorf("stderr %q lacks %q", errOut, s)
		}
	}
	// A stop string ends the text before it.
	out, errOut, err = runModel(t, "generate", gguf, "-t", "0", "-n", "200", "--stop", "Lily", "-q")
	if err != nil {
		t.Fatal(err)
	}
	if out != "Once upon a time, there was a little girl named \n" || errOut != "" {
		t.Fatalf("with --stop: %q, stderr %q", out, errOut)
	}
	// A prompt continues greedily like the golden text from that point.
	out, _, err = runModel(t, "generate", gguf, "-t", "0", "-n", "5", "-p", "Once upon a time, there was a little girl named", "-q", "--echo")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "Once upon a time, there was a little girl named Lily. She") {
		t.Fatalf("with a prompt: %q", out)
	}
	// The same prompt from stdin.
	cmd := newModelCmd()
	var buf bytes.Buffer
	cmd.SetOut(&buf)
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetIn(strings.NewReader("Once upon a time, there was a little girl named"))
	cmd.SetArgs([]string{"generate", gguf, "-t", "0", "-n", "5", "-f", "-", "-q"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), " Lily. She") {
		t.Fatalf("prompt from stdin: %q", buf.String())
	}
	// Sampling is reproducible for a seed.
	a, _, err1 := runModel(t, "generate", gguf, "-t", "1", "-n", "30", "--seed", "7", "-q")
	b, _, err2 := runModel(t, "generate", gguf, "-t", "1", "-n", "30", "--seed", "7", "-q")
	c, _, err3 := runModel(t, "generate", gguf, "-t", "1", "-n", "30", "--seed", "8", "-q")
	if err1 != nil || err2 != nil || err3 != nil || a != b || a == c {
		t.Fatalf("seeded sampling: %q / %q / %q (%v %v %v)", a, b, c, err1, err2, err3)
	}
}

func TestModelChatStories(t *testing.T) {
	gguf, _ := storiesGolden(t)
	// stories260K has no chat template: a llama vocabulary with <s> gets
	// the Llama 2 format, whose <s> is parsed as the BOS token.
	out, _, err := runModel(t, "generate", gguf, "--chat", "-p", "hi", "--echo", "-t", "0", "-n", "3", "-q")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "<s>[INST] hi [/INST]") {
		t.Fatalf("chat prompt: %q", out)
	}
	// A Hugging Face directory's template from tokenizer_config.json; one
	// the engine cannot compile falls back to the built-in format.
	hf := filepath.Join(t.TempDir(), "hf")
	if _, _, err := runModel(t, "convert", gguf, hf); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(hf, "tokenizer_config.json")
	for _, tc := range []struct{ template, want string }{
		{"{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}", "<s><system>be nice<user>hi<assistant>"},
		{"{% for %}", "<s>[INST] <<SYS>>\nbe nice\n<</SYS>>\n\nhi [/INST]"},
	} {
		b, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		cfg["chat_template"] = tc.template
		b, _ = json.Marshal(cfg)
		if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, _, err := runModel(t, "generate", hf, "--chat", "--system", "be nice", "-p", "hi", "--echo", "-t", "0", "-n", "2", "-q")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out, tc.want) {
			t.Fatalf("template %q: prompt %q, want prefix %q", tc.template, out, tc.want)
		}
	}
}

func TestModelInfoAndConvert(t *testing.T) {
	gguf, want := storiesGolden(t)
	out, _, err := runModel(t, "info", "--json", gguf)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Arch   string `json:"arch"`
		Params int64  `json:"params"`
		Layers int    `json:"layers"`
		Vocab  int    `json:"vocab"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("info --json: %v in %q", err, out)
	}
	if info.Arch != "llama" || info.Layers != 5 || info.Vocab != 512 || info.Params < 200_000 {
		t.Fatalf("info %+v", info)
	}
	if out, _, err := runModel(t, "info", gguf); err != nil || !strings.Contains(out, "architecture   llama") {
		t.Fatalf("info: %q, %v", out, err)
	}

	dir := t.TempDir()
	hf := filepath.Join(dir, "hf")
	if _, _, err := runModel(t, "convert", gguf, hf); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(hf, f)); err != nil {
			t.Fatal(err)
		}
	}
	back := filepath.Join(dir, "back.gguf")
	if _, _, err := runModel(t, "convert", hf, back, "--dtype", "f32"); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{hf, back} {
		out, _, err := runModel(t, "generate", path, "-t", "0", "-n", "200", "-q")
		if err != nil {
			t.Fatal(err)
		}
		if out != want+"\n" {
			t.Fatalf("%s generated\n%q\nwant\n%q", path, out, want)
		}
	}
	// F16 keeps the model close: the first sentence survives.
	f16 := filepath.Join(dir, "f16")
	if _, _, err := runModel(t, "convert", gguf, f16, "--dtype", "f16"); err != nil {
		t.Fatal(err)
	}
	out, _, err = runModel(t, "generate", f16, "-t", "0", "-n", "16", "-q")
	if err != nil || !strings.HasPrefix(out, "Once upon a time, there was a little girl named Lily") {
		t.Fatalf("f16: %q, %v", out, err)
	}
}

func TestModelErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"info", "/nonexistent/model.gguf"}, "no such file"},
		{[]string{"generate", "/nonexistent/model.gguf"}, "no such file"},
		{[]string{"generate", "x", "--max-tokens", "-1"}, "--max-tokens"},
		{[]string{"generate", "x", "--top-p", "2"}, "--top-p"},
		{[]string{"convert", ".", "/tmp/x", "--dtype", "q3"}, "--dtype"},
		{[]string{"pull", "a/b/c"}, "bad repository id"},
		{[]string{"info"}, "accepts 1 arg"},
	} {
		_, _, err := runModel(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestModelPull runs `model pull` against a local server speaking the
// Hub's protocol, with the cache in HF_HOME.
func TestModelPull(t *testing.T) {
	const commit = "1111111111111111111111111111111111111111"
	files := map[string][]byte{"config.json": []byte(`{"model_type":"llama"}`), "model.safetensors": []byte("weights"), "README.md": []byte("x")}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/models/acme/m/revision/main" {
			fmt.Fprintf(w, `{"sha": %q, "siblings": [{"rfilename": "config.json"}, {"rfilename": "model.safetensors"}, {"rfilename": "README.md"}]}`, commit)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, "/acme/m/resolve/"+commit+"/")
		data, found := files[name]
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		sum := sha256.Sum256(data)
		w.Header().Set("X-Repo-Commit", commit)
		w.Header().Set("X-Linked-Etag", `"`+hex.EncodeToString(sum[:])+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(data)))
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		if r.Method == http.MethodGet {
			w.Write(data)
		}
	}))
	defer srv.Close()
	home := t.TempDir()
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_TOKEN", "")
	out, _, err := runModel(t, "pull", "acme/m")
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(home, "hub", "models--acme--m", "snapshots", commit)
	if strings.TrimSpace(out) != want {
		t.Fatalf("pull printed %q, want %q", out, want)
	}
	if b, err := os.ReadFile(filepath.Join(want, "model.safetensors")); err != nil || string(b) != "weights" {
		t.Fatalf("model.safetensors: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(want, "README.md")); err == nil {
		t.Fatal("README.md pulled without --include")
	}
	if _, _, err := runModel(t, "pull", "acme/m@main", "--include", "README.md"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(want, "README.md")); err != nil {
		t.Fatal(err)
	}
}

// TestModelConvertHFWithTokenizerModel: a Hugging Face directory with a
// SentencePiece tokenizer.model (no tokenizer.json) converts to GGUF and
// back, and the three forms report the same parameters.
func TestModelConvertHFWithTokenizerModel(t *testing.T) {
	src := sharedtest.Path(t, "golden/hf/llama")
	if _, err := os.Stat(filepath.Join(src, "tokenizer.model")); err != nil {
		t.Skip("no tokenizer.model in golden/hf/llama")
	}
	dir := t.TempDir()
	g := filepath.Join(dir, "llama.gguf")
	if _, _, err := runModel(t, "convert", src, g); err != nil {
		t.Fatal(err)
	}
	hf := filepath.Join(dir, "hf")
	if _, _, err := runModel(t, "convert", g, hf, "--dtype", "bf16"); err != nil {
		t.Fatal(err)
	}
	var infos []string
	for _, p := range []string{src, g, hf} {
		out, _, err := runModel(t, "info", "--json", p)
		if err != nil {
			t.Fatal(err)
		}
		var in struct {
			Params int64 `json:"params"`
			Vocab  int   `json:"vocab"`
		}
		if err := json.Unmarshal([]byte(out), &in); err != nil {
			t.Fatal(err)
		}
		infos = append(infos, fmt.Sprint(in.Params, in.Vocab))
	}
	if infos[0] != infos[1] || infos[1] != infos[2] {
		t.Fatalf("params/vocab differ: %v", infos)
	}
	// The converted GGUF runs with its tokenizer.
	if _, _, err := runModel(t, "generate", g, "-t", "0", "-n", "4", "-q"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runModel(t, "generate", hf, "-t", "0", "-n", "4", "-q", "-p", "hello"); err != nil {
		t.Fatal(err)
	}
}

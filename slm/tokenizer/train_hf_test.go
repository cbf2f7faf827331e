package tokenizer

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"
)

// hfCheckScript encodes and decodes texts with Hugging Face tokenizers (the
// Rust library, through its Node binding): argv is the module path, the
// tokenizer.json and a JSON file of texts; it prints, per text, the ids
// without and with the post-processor and the decoded text.
const hfCheckScript = `
const [mod, tokPath, textsPath] = process.argv.slice(1);
const { Tokenizer } = require(mod);
const fs = require('fs');
(async () => {
  const tok = Tokenizer.fromFile(tokPath);
  const texts = JSON.parse(fs.readFileSync(textsPath, 'utf8'));
  const out = [];
  for (const s of texts) {
    const plain = (await tok.encode(s, null, { addSpecialTokens: false })).getIds();
    const withSpecial = (await tok.encode(s, null, { addSpecialTokens: true })).getIds();
    const decoded = await tok.decode(plain, false);
    out.push({ plain, withSpecial, decoded });
  }
  process.stdout.write(JSON.stringify({ vocab: tok.getVocabSize(true), out }));
})().catch((e) => { console.error(e); process.exit(1); });
`

// TestHFTokenizersAgree loads the written tokenizer.json with Hugging Face
// tokenizers and compares ids and decoded text with this package. It needs
// Node.js and the npm package "tokenizers"; set USERSIM_HF_TOKENIZERS_NODE
// to the package directory (.../node_modules/tokenizers) to run it.
func TestHFTokenizersAgree(t *testing.T) {
	mod := os.Getenv("USERSIM_HF_TOKENIZERS_NODE")
	if mod == "" {
		t.Skip("USERSIM_HF_TOKENIZERS_NODE (path of the npm package tokenizers) is not set")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	plain := TrainOptions{VocabSize: 700, MinFrequency: 2, EOS: "<|endoftext|>", Forced: []string{"RATING:"}}
	for name, tr := range map[string]*Trained{
		"default": trainedSmall(t),
		"gpt2":    mustTrain(t, corpusDocs(genCorpus(11, 100_000), 3), plain),
	} {
		t.Run(name, func(t *testing.T) { checkHFTokenizers(t, node, mod, tr) })
	}
}

func checkHFTokenizers(t *testing.T, node, mod string, tr *Trained) {
	tok := tr.Tokenizer()
	dir := t.TempDir()
	if err := WriteHFDir(dir, tr); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, s := range sampleTexts() {
		if utf8.ValidString(s) { // JavaScript strings cannot hold invalid UTF-8
			texts = append(texts, s)
		}
	}
	data, err := json.Marshal(texts)
	if err != nil {
		t.Fatal(err)
	}
	textsPath := filepath.Join(dir, "texts.json")
	if err := os.WriteFile(textsPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "-e", hfCheckScript, mod, filepath.Join(dir, "tokenizer.json"), textsPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outData, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var res struct {
		Vocab int `json:"vocab"`
		Out   []struct {
			Plain       []int  `json:"plain"`
			WithSpecial []int  `json:"withSpecial"`
			Decoded     string `json:"decoded"`
		} `json:"out"`
	}
	if err := json.Unmarshal(outData, &res); err != nil {
		t.Fatal(err)
	}
	if res.Vocab != tok.VocabSize() {
		t.Errorf("Hugging Face vocabulary size %d, want %d", res.Vocab, tok.VocabSize())
	}
	nonEmpty := 0
	for i, s := range texts {
		r := res.Out[i]
		if len(r.Plain) > 0 {
			nonEmpty++
		}
		// Hugging Face always matches special tokens in the text.
		want := mustEncode(t, tok, s, EncodeOptions{ParseSpecial: true})
		if r.Plain == nil {
			r.Plain = []int{}
		}
		if !slices.Equal(r.Plain, want) {
			t.Errorf("%q: Hugging Face ids %v, want %v", s, r.Plain, want)
		}
		want = mustEncode(t, tok, s, EncodeOptions{ParseSpecial: true, AddBOS: tok.AddBOSDefault()})
		if !slices.Equal(r.WithSpecial, want) {
			t.Errorf("%q: Hugging Face ids with special tokens %v, want %v", s, r.WithSpecial, want)
		}
		if r.Decoded != s {
			t.Errorf("%q: Hugging Face decodes to %q", s, r.Decoded)
		}
	}
	t.Logf("%d texts, %d non-empty, agree with Hugging Face tokenizers", len(texts), nonEmpty)
}

package tokenizer

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
)

// TestConcurrentEncode encodes from several goroutines at once (the word
// cache is shared) and compares with serial results. Run with -race.
func TestConcurrentEncode(t *testing.T) {
	tok := sharedTok(t, "gpt2-files")
	var strs testStrings
	if err := json.Unmarshal(readShared(t, "golden", "tokenizers", "strings.json"), &strs); err != nil {
		t.Fatal(err)
	}
	want := make([][]int, len(strs.Strings))
	for i, s := range strs.Strings {
		want[i], _ = tok.Encode(s.Text, EncodeOptions{})
	}
	tok.model.cache = wordCache{}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for r := range 20 {
				i := (g*7 + r) % len(strs.Strings)
				got, err := tok.Encode(strs.Strings[i].Text, EncodeOptions{})
				if err != nil || !slices.Equal(got, want[i]) {
					t.Errorf("goroutine %d: %s: %v, %v", g, strs.Strings[i].ID, got, err)
				}
			}
		})
	}
	wg.Wait()
}

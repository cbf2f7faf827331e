package synth

import (
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
)

// TestTitlesArticleLast checks that generated titles put a moved article at
// the very end, after any sequel numeral ("Lonely Promise II, The", as
// MovieLens writes it), so that DisplayTitle gives "The Lonely Promise II".
func TestTitlesArticleLast(t *testing.T) {
	tl := newTitler(newRNG(1, streamTitles))
	sequelsWithArticle := 0
	for i := range 20000 {
		s := tl.title([]int{i % len(Genres)}, 1990)
		for _, a := range []string{"The", "A", "An"} {
			if strings.Contains(s, ", "+a+" ") {
				t.Fatalf("title %q: %q is not at the end", s, ", "+a)
			}
			base, ok := strings.CutSuffix(s, ", "+a)
			if !ok {
				continue
			}
			if got, want := (dataset.Item{Title: s}).DisplayTitle(), a+" "+base; got != want {
				t.Errorf("DisplayTitle(%q) = %q, want %q", s, got, want)
			}
			for _, q := range sequels {
				if strings.HasSuffix(base, " "+q) {
					sequelsWithArticle++
					break
				}
			}
		}
	}
	if sequelsWithArticle == 0 {
		t.Error("no sequel of a title with an article among 20000 titles; the test checks nothing")
	}
	if got := (dataset.Item{Title: "Lonely Promise II, The"}).DisplayTitle(); got != "The Lonely Promise II" {
		t.Errorf("DisplayTitle = %q, want %q", got, "The Lonely Promise II")
	}
}

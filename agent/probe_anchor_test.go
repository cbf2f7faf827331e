package agent

import (
	"testing"

	"github.com/usersim/usersim/train/raft"
)

func TestEditAnchor(t *testing.T) {
	pd := &raft.PromptData{Anchor: 3.2, HasAnchor: true}
	if err := (Edit{Field: Anchor, Value: 1, Relative: true}).Apply(pd); err != nil || pd.Anchor != 4.2 {
		t.Fatalf("relative anchor edit: %v, anchor %g, want 4.2", err, pd.Anchor)
	}
	if err := (Edit{Field: Anchor, Value: 1.5}).Apply(pd); err != nil || pd.Anchor != 1.5 {
		t.Fatalf("absolute anchor edit: %v, anchor %g, want 1.5", err, pd.Anchor)
	}
	if err := (Edit{Field: Anchor, Value: 1}).Apply(&raft.PromptData{}); err == nil {
		t.Fatal("anchor edit of a prompt without an anchor accepted")
	}
	if Anchor.String() != "anchor" {
		t.Errorf("String %q", Anchor.String())
	}
}

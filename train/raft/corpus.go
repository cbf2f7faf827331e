package raft

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"

	"github.com/usersim/usersim/internal/atomicfile"
	"github.com/usersim/usersim/memory"
)

// DefaultSeparator ends every corpus document: the end-of-sequence token of
// usersim's compact tokenizer (tokenizer.DefaultTrainOptions) on a line of
// its own.
const DefaultSeparator = "\n<|eos|>\n"

// DefaultCharsPerToken is the bytes per token assumed by the token estimate:
// the compact base's tokenizer (tokenizer.DefaultTrainOptions: 4,096 ids,
// single digits) trained on the default synthetic world's corpus encodes it
// at 4.02 bytes per token (BenchmarkCorpusTokens). A 2,048-id vocabulary
// gave about 2.6 in the prototype (notes/compact-base-prototype.md).
const DefaultCharsPerToken = 4.0

// CorpusOptions configure the pretraining corpus.
type CorpusOptions struct {
	// Options render the rating prompts (variant, templates, Ms only, ...)
	// exactly as Build does; their Users and Personas filters restrict
	// the corpus too.
	Options
	// Seed shuffles the documents.
	Seed uint64
	// PromptsOnly emits only the rating prompts with their answers, no
	// profile documents.
	PromptsOnly bool
	// PromptsPerUser, when positive, keeps at most this many rating
	// prompts per user (a seeded sample of the user's training ratings),
	// so that a small base can see every user's prompt format within one
	// pass; 0 keeps them all.
	PromptsPerUser int
	// MemoriesPerDoc cuts a user's profile document into chunks of this
	// many remembered interactions, each chunk starting with the profile
	// again (the system text); default 10, as the paper's batches.
	MemoriesPerDoc int
	// Separator ends every document; default DefaultSeparator.
	Separator string
	// ProfiledOnly lets the corpus cover only the profiled users. By
	// default every user with training rows (the training pool) must have
	// a profile and its interactions, since the base must see the exact
	// prompt format for every one of them.
	ProfiledOnly bool
	// CharsPerToken sets the token estimate; default DefaultCharsPerToken.
	CharsPerToken float64
}

// CorpusStats describe a written corpus.
type CorpusStats struct {
	Users         int   // users covered
	Unprofiled    int   // users with training rows left out (ProfiledOnly)
	ProfileDocs   int   // profile-and-memories documents
	PromptDocs    int   // rating prompts with answers
	Bytes         int64 // total, separators included
	MaxDocBytes   int   // the longest document
	MeanDocBytes  float64
	EstTokens     int64 // Bytes / CharsPerToken
	CharsPerToken float64
}

type docRef struct {
	user    int32
	profile bool
	k       int // profile: first memory of the chunk; prompt: order
}

// WriteCorpus writes the pretraining corpus of the compact base to w: for
// every user of the training pool, the profile documents (the system text
// with the traits and profile, then a chunk of the user's training history
// as the memory section quotes it: "MOVIE: ..." and "MY MEMORY: I rated movie
// X as r because ...") and every RAFT example's prompt followed by its answer
// ("...RATING: 4"), rendered by the same templates as Build. The documents
// are shuffled with opt.Seed; each ends with opt.Separator. Only training
// rows are read.
func WriteCorpus(ctx context.Context, w io.Writer, in Inputs, opt CorpusOptions) (CorpusStats, error) {
	b, err := NewBuilder(in, opt.Options)
	if err != nil {
		return CorpusStats{}, err
	}
	return b.WriteCorpus(ctx, w, opt)
}

// WriteCorpusFile writes the corpus to path atomically.
func WriteCorpusFile(ctx context.Context, path string, in Inputs, opt CorpusOptions) (CorpusStats, error) {
	var cs CorpusStats
	err := atomicfile.Write(path, 0, func(w io.Writer) error {
		var err error
		cs, err = WriteCorpus(ctx, w, in, opt)
		return err
	})
	return cs, err
}

// WriteCorpus writes the corpus of the builder's users (see the function
// WriteCorpus); the builder's options render the prompts.
func (b *Builder) WriteCorpus(ctx context.Context, w io.Writer, opt CorpusOptions) (CorpusStats, error) {
	if opt.MemoriesPerDoc == 0 {
		opt.MemoriesPerDoc = 10
	}
	if opt.MemoriesPerDoc < 0 {
		return CorpusStats{}, fmt.Errorf("raft: corpus: MemoriesPerDoc %d is negative", opt.MemoriesPerDoc)
	}
	if opt.Separator == "" {
		opt.Separator = DefaultSeparator
	}
	if opt.CharsPerToken == 0 {
		opt.CharsPerToken = DefaultCharsPerToken
	}
	if opt.PromptsPerUser < 0 {
		return CorpusStats{}, fmt.Errorf("raft: corpus: PromptsPerUser %d is negative", opt.PromptsPerUser)
	}
	if opt.CharsPerToken < 0 {
		return CorpusStats{}, fmt.Errorf("raft: corpus: CharsPerToken %v is negative", opt.CharsPerToken)
	}
	cs := CorpusStats{CharsPerToken: opt.CharsPerToken}
	filtered := b.opt.Users != nil || len(b.opt.Personas) > 0
	if !filtered {
		for _, u := range b.st.UsersWithTraining() {
			if b.profiles[u] != nil {
				continue
			}
			if !opt.ProfiledOnly {
				return cs, fmt.Errorf("raft: corpus: user %q has training ratings but no profile; distill every user with training rows (or set ProfiledOnly)", b.d.Users[u].ID)
			}
			cs.Unprofiled++
		}
	}
	var refs []docRef
	for _, u := range b.users {
		n := len(b.st.History(u))
		if n == 0 {
			continue
		}
		cs.Users++
		if !opt.PromptsOnly {
			for k := 0; k < n; k += opt.MemoriesPerDoc {
				refs = append(refs, docRef{user: u, profile: true, k: k})
			}
		}
		if opt.PromptsPerUser > 0 && opt.PromptsPerUser < n {
			urng := rand.New(rand.NewPCG(opt.Seed, uint64(u)))
			ks := urng.Perm(n)[:opt.PromptsPerUser]
			slices.Sort(ks)
			for _, k := range ks {
				refs = append(refs, docRef{user: u, k: k})
			}
		} else {
			for k := range n {
				refs = append(refs, docRef{user: u, k: k})
			}
		}
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x7261667463727073)) // "raftcrps"
	rng.Shuffle(len(refs), func(i, j int) { refs[i], refs[j] = refs[j], refs[i] })

	var buf bytes.Buffer
	for i, r := range refs {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return cs, err
			}
		}
		buf.Reset()
		if r.profile {
			if err := b.profileDoc(&buf, r.user, r.k, min(r.k+opt.MemoriesPerDoc, len(b.st.History(r.user)))); err != nil {
				return cs, err
			}
			cs.ProfileDocs++
		} else {
			row := b.st.History(r.user)[r.k]
			ex, err := b.example(r.user, b.d.Ratings.Item[row], r.k, memory.Before(r.k))
			if err != nil {
				return cs, err
			}
			buf.WriteString(ex.Prompt)
			buf.WriteString(" ")
			buf.WriteString(FormatRating(float64(b.d.Ratings.Value[row])))
			cs.PromptDocs++
		}
		cs.MaxDocBytes = max(cs.MaxDocBytes, buf.Len())
		buf.WriteString(opt.Separator)
		n, err := w.Write(buf.Bytes())
		cs.Bytes += int64(n)
		if err != nil {
			return cs, fmt.Errorf("raft: write corpus: %w", err)
		}
	}
	if docs := cs.ProfileDocs + cs.PromptDocs; docs > 0 {
		cs.MeanDocBytes = float64(cs.Bytes-int64(docs*len(opt.Separator))) / float64(docs)
	}
	cs.EstTokens = int64(float64(cs.Bytes) / opt.CharsPerToken)
	return cs, nil
}

// profileDoc renders user u's profile (the system text) followed by the
// memory section holding training interactions lo..hi-1.
func (b *Builder) profileDoc(buf *bytes.Buffer, u int32, lo, hi int) error {
	p := b.profiles[u]
	pd := &PromptData{
		Traits: p.Traits, Profile: p.Description, UserMean: p.MeanRating,
		UseMemory: true, Scale: b.scale,
	}
	for _, m := range b.mems[u][lo:hi] {
		mi, ok := b.d.ItemIndex(m.Item)
		if !ok {
			return fmt.Errorf("raft: corpus: user %q remembers unknown item %q", p.User, m.Item)
		}
		pd.Memories = append(pd.Memories, MemoryData{Item: itemData(b.d, b.st, mi), Rating: FormatRating(m.Rating), Reason: m.Reason})
	}
	sys, err := b.tmpl.block(string(b.tmpl.variant)+systemSuffix, pd)
	if err != nil {
		return err
	}
	mem, err := b.tmpl.block("memories", pd)
	if err != nil {
		return err
	}
	buf.WriteString(JoinPrompt(sys, mem))
	return nil
}

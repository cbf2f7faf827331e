// Package raft builds the training text of usersim's user agents (DESIGN.md
// §1, stage 3): retrieval-augmented fine-tuning (RAFT) examples, inference
// prompts, their JSONL exports, and the pretraining corpus of the compact base.
//
// # The rating prompt
//
// Prompts are Go text/template files embedded in the binary
// (templates/*.tmpl) and overridable from a directory (LoadTemplates,
// Options.TemplateDir). A variant renders {variant}_system.tmpl (role play,
// the three traits, the profile Ms) and {variant}_user.tmpl ("YOUR MEMORIES"
// with the retrieved Ml entry, the TASK, the target "MOVIE: ..." line and
// "RATING:"); movie.tmpl defines the shared blocks "movie", "memories" and
// "task". The templates see PromptData.
// LoadTemplates renders sample data through every built-in branch, so a
// reference to a field PromptData lacks fails there, naming the file; a
// reference in a branch the samples do not take fails when rendered.
//
// VariantPaper is the paper's prompt, word for word. VariantDefault is
// usersim's agent, built from what measured best on the synthetic world
// (NOTES.md): a short prompt — the profile Ms, each retrieved memory as
// "I rated TITLE (average <3.8>) 4." without its reason, the target movie,
// and a key-facts line next to the answer slot (PromptData.KeyFacts: the
// user's mean, the movie's average, the remembered rating and the
// collaborative anchor PromptData.Anchor, from Inputs.Anchor). It writes
// those numbers with the template function "bucket" as single tokens
// ("<3.7>", NumberBuckets), which the compact base's tokenizer keeps one
// token each. Against the paper's prompt it is about four times shorter,
// so it trains and rates about four times faster.
//
// Every number in a prompt comes from the training split (memory.Stats):
// an item rated only in test rows has "no historical average rating".
// The answer is the rating as scale text: "4", or "3.5" on half-star scales.
// Example.Prompt is the plain rendering (system text, blank line, user text,
// ending in "RATING:"); no chat template is applied here.
//
// # Retrieval
//
// A training example for the user's k-th training rating (oldest first)
// retrieves the top-1 memory among interactions 0..k-1 only
// (memory.Before(k)); the first rating has none, and its memory section
// says "None yet: this is the first movie you rate." With Options.NoMemory
// (Ms only) the memory section is left out entirely. An inference query
// (Builder.BuildQuery, Builder.Queries) retrieves among all the user's
// training interactions.
//
// # Corpus
//
// WriteCorpus writes, for every user of the training pool, profile
// documents (the system text and a chunk of the remembered history in the
// memory section's format) and every RAFT example's prompt with its answer,
// rendered by the same templates, shuffled by a seed. Everything is
// deterministic.
//
// Measured (go test ./train/raft -run X -bench . -benchtime 1x): the default
// synthetic world (600 users, random 80/20 split, stats distiller) has 67,282
// training examples; its corpus is 118.8 MB in 74,285 documents (mean 1,590
// bytes, prompts about 1,410) and 29.5 million tokens under the compact
// tokenizer (4.0 bytes per token). PromptsOnly gives 95.5 MB;
// PromptsPerUser 20 gives 40.0 MB with every user's prompt format kept.
package raft

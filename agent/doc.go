// Package agent is usersim's user agent (DESIGN.md §1, stage 3): one user's
// persona adapter, profile (Ms) and memories (Ml) behind a language-model
// Backend, answering "how would this user rate this item, and why?" and
// "which of these items would this user pick?".
//
// # Ratings
//
// Rate reads the rating as a distribution: the prompt (train/raft's
// templates, so exactly what the adapters were trained on) is followed by
// every value of the dataset's scale as a candidate continuation ("1".."5";
// "0.5".."5" on half-star scales), the model's probabilities of those
// continuations are renormalised over the scale, and the expected value and
// the argmax are read from it. Mass is the probability the scale's values got
// before renormalising: a model that wants to say something else has a low
// mass. RateGenerate instead lets the model generate freely (greedy) and
// parses the text strictly, as the paper measured its unrelated-response rate
// (URR): anything but exactly one scale value, with only whitespace around it,
// is invalid.
//
// Explain continues the prompt after the rating with " because" and returns
// the agent's reason. Choose offers a slate of up to 26 items, labelled
// "A".."Z", with "0" to leave (templates/choose.tmpl, overridable by
// Config.ChooseTemplate); the labels are scored as continuations and
// renormalised, exit included. Remember adds an interaction to the agent's
// long-term memory; later prompts retrieve among the grown memory.
//
// On half-star scales " 1" is a prefix of " 1.5": such a value is scored as
// the answer ending there (its probability times that of a next token not
// starting with "."), so the scale's values are disjoint events.
//
// # Backends
//
// A Backend scores candidate continuations of prompts and generates text.
// Local runs an slm model with a set of LoRA adapters: each user's shared
// prefix (the system text with persona and profile) is computed once and
// forked for every prompt, and one Score call batches prompts of different
// adapters in one forward pass over the shared base. Remote talks to any
// OpenAI-compatible server whose adapters are addressed by model name (vLLM
// --enable-lora) and reads the distribution from the completion's logprobs
// (or, with Remote.Chat, from the chat endpoint's top_logprobs).
//
// # Evaluation and diagnostics
//
// Predictor adapts a Pool of agents to eval.Predictor and eval.BatchPredictor
// (expected value, argmax, or strict generation for URR). Probe edits one
// number of a prompt (the profile's mean rating, the item's average, the
// remembered rating) and reports how far the expected rating moves.
package agent

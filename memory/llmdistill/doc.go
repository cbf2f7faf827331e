// Package llmdistill is the paper's LLM distiller: a frozen, larger
// language model behind any OpenAI-compatible chat endpoint reads each
// user's training history in time order, in batches of at most 10 ratings,
// and for every batch writes a first-person reason per rating (Ml), reflects
// on why the new ratings do or do not fit the profile so far (hierarchical
// self-reflection: asking why, not what) and returns the revised profile
// (Ms). The profile after each batch is kept as a memory.Revision.
//
// # Answers
//
// Each answer is one JSON object {"items":[{"item_id","rating","reason"}],
// "reflection","profile"}, asked for with a strict JSON Schema
// response_format (or json_object, or the prompt alone). It is validated:
// the item ids must be exactly the batch's, each once; the ratings echoed
// unchanged; reasons and the profile non-empty; a reflection from the second
// batch on. An invalid answer is sent back with the list of problems and
// asked for again, and an answer cut off at max_tokens is asked for again
// with a larger bound, at most Config.MaxRepairs times per batch. A profile
// over Config.MaxWords words (2,000, as the paper) fails that user with
// ErrProfileTooLong.
//
// # No leakage
//
// Prompts quote each item's training-split average rating and count
// (memory.Stats over the split's training rows): a test row never reaches a
// prompt.
//
// # Prompts
//
// The prompts are Go text/template files embedded in the package
// (prompts/*.tmpl); Config.PromptDir replaces any of them by a file of the
// same name, and WriteDefaultPrompts writes them out as a starting point.
//
// # Resuming, batch files
//
// The llm.Client's cache keeps every answer under a hash of its request, so
// a killed run resumes where it stopped: answered requests are not sent
// again. Round exports the job as OpenAI Batch / `vllm run-batch` JSONL and
// imports the results, round by round (see Round).
package llmdistill

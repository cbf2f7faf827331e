// Package slm is usersim's small-language-model engine: Llama-family
// transformers (Llama 2/3, Mistral, SmolLM/SmolLM2, TinyLlama, stories,
// Qwen2, Phi-3) in pure Go, float32, with a KV cache.
//
// # Model and formats
//
// A Model is a Go struct whose fields carry their tensor names (struct tags
// gguf and hf), their shapes in terms of the Config, and the config
// condition under which they exist. One table-driven loader reads GGUF files
// and Hugging Face directories (config.json + safetensors) through those
// tags, checking every tensor's presence, shape, type and finiteness, with
// errors that name the tensor; WriteGGUF and WriteHF walk the same tags.
// Architectures differ only by Config data: q/k/v biases (qwen2), fused
// qkv and gate_up projections (phi3), tied output, RoPE layout and scaling,
// sliding window.
//
// Weights are kept as float32, or as Q8_0, Q4_0, Q4_K or Q6_K blocks (GGUF
// files, or QuantizeQ8_0) whose matrix products use the quantized kernels.
// F16 and BF16 weights are converted to float32 once, when loaded
// (exactly: BF16 is bits<<16), so compute is always float32; this doubles
// the memory of F16 checkpoints, which is acceptable for the small models
// this engine is for. By default weights are copied out of the
// memory-mapped file, which is closed after loading; LoadOptions.Mmap keeps
// float32 and quantized matrices in the read-only mapping instead (zero
// copy; release with Model.Close). LoadOptions.QuantizeQ8_0 quantizes
// matrices while loading.
//
// # RoPE layouts
//
// Hugging Face checkpoints rotate dimension i of a head with i+d/2
// (rotate_half, RopeNeoX). llama.cpp's converter permutes the rows of Llama
// q and k projections so that GGUF llama files rotate adjacent pairs
// (2i, 2i+1) (RopeInterleaved); qwen2 and phi3 GGUF files are not permuted
// and stay NeoX. The loader records the layout in Config.RopeStyle and the
// forward pass follows it; the writers apply or undo the permutation
// (ropePerm, identical to convert_hf_to_gguf.py's permute) when a model
// moves between formats, so ConvertHFToGGUF and ConvertGGUFToHF preserve
// logits.
//
// # Forward pass
//
// Forward runs a batch of sequences, each appending new tokens to its own
// Cache (prefills and single-token decodes mixed), as matrix products over
// all the batch's tokens. Caches hold keys and values in blocks of 64
// positions; Fork shares the full blocks of a prefix, so a user's persona
// and profile are computed once and continued by many prompts. Score
// returns the log-probabilities of candidate continuations (a rating read
// as the distribution over "1".."5").
//
// Each layer type (Layer, Attention, MLP, RMSNorm) has a Forward and,
// right beside it, a Backward; in a training pass the activations of each
// layer are kept in a LayerActs that its Backward reads.
//
// # LoRA adapters and training
//
// Adapters (package lora, PEFT format) belong to caches: NewAdapterCache
// starts a sequence that runs with an adapter, on any subset of q, k, v, o,
// gate, up and down (Phi-3: the fused qkv_proj and gate_up_proj, as PEFT
// adapts them). One batch may mix sequences of different adapters and of
// the bare base: every base matrix product runs once over all the batch's
// rows, and each run of rows with an adapter adds its own s·(x·Aᵀ)·Bᵀ.
// MergeAdapter folds an adapter into the weights.
//
// LossAndGrad computes the cross-entropy of a batch's target tokens (the
// answers; prompts are masked as Hugging Face's labels = -100 do) and adds
// its gradient with respect to the adapters' A and B into their pairs'
// GA and GB. The backward differentiates activations only: the output
// layer (tied or untied), the final norm, each layer's SwiGLU MLP, the
// residuals, causal grouped-query attention (probabilities recomputed from
// the kept queries and keys, sliding window included), RoPE (both
// layouts), the input norms and the adapters, down to layer 0; the base
// weights are read, never differentiated or written (quantized bases
// train too, dequantized on the fly, as in QLoRA). lora_dropout is
// applied with per-sequence seeded masks; TrainOptions.Recompute keeps only
// each layer's input and recomputes the rest during the backward.
// LoRAObjective adapts all this to package train.
//
// The loss row (softmax and −log p of the target over the vocabulary) runs
// on the float32 vector exponential of package kernels, with the loss
// itself formed in float64 from the probabilities (within 1e-6 relative of
// a float64 logsumexp).
//
// # Pretraining
//
// The same backward, with base gradients switched on (TrainOptions.Base, a
// Grads from NewGrads), also differentiates the base: dW = dyᵀ·x for every
// projection (fused ones included), the q/k/v biases, the RMSNorm weights,
// the output layer and the embedding table (rows scatter-added by token;
// with tied embeddings the output's gradient adds into the same buffer).
// Float32 weights only. FullObjective trains all weights with package
// train; Pretrain packs a text corpus (documents at blank lines, a BOS
// before each) into sequences and runs it, with checkpoints that resume
// bit for bit; WritePretrained saves the result as a Hugging Face
// directory with the source model's tokenizer files.
package slm

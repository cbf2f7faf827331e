package train

// Param is one trainable tensor: its weights W and the gradient G of the
// same length, which an Objective adds into.
type Param struct {
	Name string
	W, G []float32
	// NoDecay excludes the tensor from weight decay (biases, norms).
	NoDecay bool
}

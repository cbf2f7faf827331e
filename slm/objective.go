package slm

import (
	"context"

	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/train"
)

// LoRAObjective trains one adapter on a frozen model: a train.Objective
// over Examples (their Adapter fields are ignored: every example runs with
// Adapter). Eval, when not nil, is the held-out set that EvalSet exposes as
// a train.Evaluator.
type LoRAObjective struct {
	Model    *Model
	Adapter  *lora.Adapter
	Examples []TrainSeq
	Eval     []TrainSeq
	// Options are passed to LossAndGradWith (activation recomputation).
	Options TrainOptions

	params []*train.Param
}

// Params returns the adapter's A and B matrices with their gradients
// (the same slices every call).
func (o *LoRAObjective) Params() []*train.Param {
	if o.params == nil {
		o.params = o.Adapter.Params()
	}
	return o.params
}

// Len is the number of training examples.
func (o *LoRAObjective) Len() int { return len(o.Examples) }

// LossAndGrad runs the batch's examples through the model with the adapter
// and adds the gradient of their summed loss into the adapter's gradients.
func (o *LoRAObjective) LossAndGrad(ctx context.Context, b train.Batch) (train.Loss, error) {
	o.Params()
	batch, err := o.pick(o.Examples, b)
	if err != nil {
		return train.Loss{}, err
	}
	sum, n, err := o.Model.LossAndGradWith(ctx, batch, o.Options)
	return train.Loss{Sum: sum, Tokens: n}, err
}

// EvalSet returns the held-out examples as a train.Evaluator.
func (o *LoRAObjective) EvalSet() train.Evaluator { return evalSet{o} }

type evalSet struct{ o *LoRAObjective }

func (e evalSet) Len() int { return len(e.o.Eval) }

func (e evalSet) Loss(ctx context.Context, b train.Batch) (train.Loss, error) {
	batch, err := e.o.pick(e.o.Eval, b)
	if err != nil {
		return train.Loss{}, err
	}
	sum, n, err := e.o.Model.Loss(ctx, batch)
	return train.Loss{Sum: sum, Tokens: n}, err
}

func (o *LoRAObjective) pick(set []TrainSeq, b train.Batch) ([]TrainSeq, error) {
	return pickSeqs(set, b, o.Adapter)
}

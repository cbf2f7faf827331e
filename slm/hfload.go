package slm

import "errors"

func loadHFDir(dir string) (*Model, error) { return nil, errors.New("hf: not yet") }

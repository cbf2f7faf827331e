package vec

import (
	"math"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name     string
		in, want []float32
	}{
		{"empty", nil, nil},
		{"zero", []float32{0, 0, 0}, []float32{0, 0, 0}},
		{"3-4-5", []float32{3, -4}, []float32{0.6, -0.8}},
		{"unit", []float32{0, 1, 0}, []float32{0, 1, 0}},
		{"tiny", []float32{1e-30, 1e-30}, []float32{1 / math.Sqrt2, 1 / math.Sqrt2}},
		{"huge", []float32{3e30, 4e30}, []float32{0.6, 0.8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := append([]float32(nil), tt.in...)
			Normalize(v)
			if len(v) != len(tt.want) {
				t.Fatalf("len %d, want %d", len(v), len(tt.want))
			}
			for i := range v {
				if math.Abs(float64(v[i]-tt.want[i])) > 1e-6 {
					t.Errorf("Normalize(%v) = %v, want %v", tt.in, v, tt.want)
					break
				}
			}
		})
	}
}

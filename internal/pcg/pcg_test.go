package pcg

import (
	"math/rand/v2"
	"testing"
)

// TestIntnGolden pins the values of a seed: splits and synthetic worlds are
// reproduced from their seeds, so these must never change.
func TestIntnGolden(t *testing.T) {
	src := New(42, 1)
	var got []int
	for _, n := range []int{1, 2, 3, 10, 1000, 1 << 40} {
		got = append(got, Intn(src, n))
	}
	want := goldenIntn
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Intn draws = %v, want %v", got, want)
		}
	}
}

var goldenIntn = []int{0, 0, 2, 2, 837, 168383799304}

func TestIntnRangeAndUniform(t *testing.T) {
	src := New(7, 2)
	const n, draws = 7, 70000
	var count [n]int
	for range draws {
		v := Intn(src, n)
		if v < 0 || v >= n {
			t.Fatalf("Intn(%d) = %d", n, v)
		}
		count[v]++
	}
	for v, c := range count {
		if c < draws/n*9/10 || c > draws/n*11/10 {
			t.Errorf("value %d drawn %d times of %d, want about %d", v, c, draws, draws/n)
		}
	}
}

// TestIntnRejects checks that the rejection step runs: with n = 3·2^61+1
// about a quarter of the raw draws fall in the biased zone and are redrawn.
func TestIntnRejects(t *testing.T) {
	n := 1<<62 + 1<<61 + 1
	redrawn := 0
	for seed := range int64(200) {
		a, b := New(seed, 3), New(seed, 3)
		v := Intn(a, n)
		if v < 0 || v >= n {
			t.Fatalf("Intn(%d) = %d", n, v)
		}
		b.Uint64()
		if a.Uint64() != b.Uint64() { // a consumed more than one value
			redrawn++
		}
	}
	if redrawn == 0 {
		t.Error("no draw was rejected in 200 seeds; the rejection loop never ran")
	}
}

func TestNewStreamsDiffer(t *testing.T) {
	if New(1, 1).Uint64() == New(1, 2).Uint64() {
		t.Error("streams 1 and 2 of seed 1 start with the same value")
	}
	stream := uint64(9)
	if a, b := New(5, stream), rand.NewPCG(5, stream*0x9e3779b97f4a7c15+0x632be59bd9b4e019); a.Uint64() != b.Uint64() {
		t.Error("New does not derive the stream as documented")
	}
}

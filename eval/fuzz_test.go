package eval

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"testing"

	"github.com/usersim/usersim/dataset"
)

// FuzzScore feeds arbitrary answers (NaN, infinities, out-of-scale values,
// any user ids) to Score and checks it neither panics nor breaks the
// metrics' invariants, and that the result marshals to JSON.
func FuzzScore(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24})
	f.Add([]byte{0xff, 0xf8, 0, 0, 0, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		const rec = 12 // 8 bytes prediction, 2 user, 2 truth
		n := len(b) / rec
		users := make([]int32, n)
		pred := make([]float64, n)
		truth := make([]float64, n)
		for k := range n {
			r := b[k*rec : (k+1)*rec]
			pred[k] = math.Float64frombits(binary.LittleEndian.Uint64(r))
			users[k] = int32(binary.LittleEndian.Uint16(r[8:])) % 7
			truth[k] = float64(1 + int(r[10])%5)
		}
		pr := Score(dataset.FiveStars, users, pred, truth, Options{Bootstrap: 20, Seed: 1})
		if u := float64(pr.URR); n > 0 && (u < 0 || u > 1) {
			t.Fatalf("URR %v", u)
		}
		if rm, ma := float64(pr.RMSE), float64(pr.MAE); !math.IsNaN(rm) && !math.IsInf(rm, 0) && rm < ma*(1-1e-12) {
			t.Fatalf("RMSE %v below MAE %v", rm, ma)
		}
		var sum int
		for _, c := range pr.Histogram.Pred {
			sum += c
		}
		if sum != pr.Valid {
			t.Fatalf("histogram holds %d answers, %d valid", sum, pr.Valid)
		}
		if _, err := json.Marshal(pr); err != nil {
			t.Fatal(err)
		}
	})
}

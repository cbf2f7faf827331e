package persona

import (
	"context"
	"math"
	"testing"
)

func TestAdjustedRand(t *testing.T) {
	for _, tc := range []struct {
		a, b []int
		want float64
	}{
		{[]int{0, 0, 1, 1}, []int{0, 0, 1, 1}, 1},
		{[]int{0, 0, 1, 1}, []int{1, 1, 0, 0}, 1},       // renamed
		{[]int{0, 0, 1, 1}, []int{0, 0, 1, 2}, 4.0 / 7}, // scikit-learn's documented 0.57
		{[]int{0, 0, 1, 2}, []int{0, 0, 1, 1}, 4.0 / 7}, // symmetric
		{[]int{0, 0, 0, 0}, []int{0, 1, 2, 3}, 0},       // one cluster vs singletons
		{[]int{0, 0, 1, 1}, []int{0, 1, 0, 1}, -0.5},    // worse than chance
		{[]int{0, 1, 2, 0, 1, 2}, []int{0, 0, 1, 1, 2, 2}, -0.25},
	} {
		got, err := AdjustedRand(tc.a, tc.b)
		if err != nil || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("ARI(%v, %v) = %v, %v; want %v", tc.a, tc.b, got, err, tc.want)
		}
	}
	if _, err := AdjustedRand([]int{0}, []int{0, 1}); err == nil {
		t.Error("length mismatch: no error")
	}
}

// naiveSilhouette is the textbook definition, for checking Silhouettes.
func naiveSilhouette(x [][]float32, lab []int, rows []int) float64 {
	k := 0
	for _, l := range lab {
		k = max(k, l+1)
	}
	var total float64
	for _, i := range rows {
		sum := make([]float64, k)
		cnt := make([]int, k)
		for j := range x {
			cnt[lab[j]]++
			if j != i {
				sum[lab[j]] += math.Sqrt(float64(sqDist(x[i], x[j])))
			}
		}
		if cnt[lab[i]] < 2 {
			continue
		}
		a := sum[lab[i]] / float64(cnt[lab[i]]-1)
		b := math.Inf(1)
		for c := range k {
			if c != lab[i] && cnt[c] > 0 {
				b = math.Min(b, sum[c]/float64(cnt[c]))
			}
		}
		total += (b - a) / math.Max(a, b)
	}
	return total / float64(len(rows))
}

func TestSilhouettes(t *testing.T) {
	x, y := blobs(300, 3, 4, 3, 5)
	bad := make([]int, len(y))
	for i := range bad {
		bad[i] = i % 3
	}
	single := append([]int(nil), y...)
	single[0] = 3 // a singleton cluster scores 0
	labelings := [][]int{y, bad, single}
	all := make([]int, len(x))
	for i := range all {
		all[i] = i
	}
	got, err := Silhouettes(context.Background(), x, labelings, nil, 4)
	if err != nil {
		t.Fatal(err)
	}
	for l, lab := range labelings {
		if want := naiveSilhouette(x, lab, all); math.Abs(got[l]-want) > 1e-9 {
			t.Errorf("labelling %d: silhouette %v, want %v", l, got[l], want)
		}
	}
	if got[0] < 0.3 || math.Abs(got[1]) > 0.1 {
		t.Errorf("true labels %v (want high), arbitrary labels %v (want about 0)", got[0], got[1])
	}
	sample := sampleRows(len(x), 50, 1)
	sub, err := Silhouettes(context.Background(), x, labelings[:1], sample, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := naiveSilhouette(x, y, sample); math.Abs(sub[0]-want) > 1e-9 {
		t.Errorf("sampled silhouette %v, want %v", sub[0], want)
	}
	if _, err := Silhouettes(context.Background(), x, [][]int{y[:10]}, nil, 1); err == nil {
		t.Error("short labelling: no error")
	}
}

func TestEtaSquared(t *testing.T) {
	for _, tc := range []struct {
		v    []float64
		l    []int
		want float64
	}{
		{[]float64{1, 1, 3, 3}, []int{0, 0, 1, 1}, 1},
		{[]float64{1, 3, 1, 3}, []int{0, 0, 1, 1}, 0},
		{[]float64{1, 2, 3, 4}, []int{0, 0, 1, 1}, 0.8}, // between 4 of total 5
		{[]float64{2, 2, 2, 2}, []int{0, 0, 1, 1}, 0},
		{[]float64{1, math.NaN(), 3, 3}, []int{0, 0, 1, 1}, 1},
	} {
		if got := EtaSquared(tc.v, tc.l, 2); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("EtaSquared(%v, %v) = %v, want %v", tc.v, tc.l, got, tc.want)
		}
	}
}

func TestElbow(t *testing.T) {
	ks := []int{2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		y    []float64
		want int
	}{
		{[]float64{100, 60, 25, 23, 21, 19.5, 18, 17, 16}, 4},
		{[]float64{100, 40, 35, 31, 28, 26, 24, 23, 22}, 3},
		{[]float64{90, 80, 70, 60, 50, 40, 30, 20, 10}, 0}, // a line has no elbow
		{[]float64{5, 5, 5, 5, 5, 5, 5, 5, 5}, 0},
	} {
		e := Elbow(ks, tc.y)
		got := 0
		if e >= 0 {
			got = ks[e]
		}
		if got != tc.want {
			t.Errorf("Elbow(%v) = K %d, want %d", tc.y, got, tc.want)
		}
	}
	if Elbow([]int{2, 3}, []float64{2, 1}) != -1 {
		t.Error("two points: want no elbow")
	}
}

func TestClusterSelection(t *testing.T) {
	x, y := blobs(400, 3, 6, 1.5, 11)
	c, sel, err := Cluster(context.Background(), x, Options{Seed: 1, KMin: 2, KMax: 8})
	if err != nil {
		t.Fatal(err)
	}
	if sel.K != 3 || sel.ElbowK != 3 || sel.SilhouetteK != 3 || sel.Method != "elbow" || len(sel.Table) != 7 || sel.SilhouetteSampled {
		t.Errorf("selection %+v", sel)
	}
	if ari, _ := AdjustedRand(c.Labels, y); ari != 1 {
		t.Errorf("ARI %v", ari)
	}
	for i := 1; i < len(sel.Table); i++ {
		if sel.Table[i].Inertia > sel.Table[i-1].Inertia {
			t.Errorf("inertia rises from K=%d to K=%d", sel.Table[i-1].K, sel.Table[i].K)
		}
	}
	// Beyond SilhouetteExact the silhouettes come from a sample.
	_, sampled, err := Cluster(context.Background(), x, Options{Seed: 1, KMin: 2, KMax: 4, SilhouetteExact: 100, SilhouetteSample: 120})
	if err != nil {
		t.Fatal(err)
	}
	if !sampled.SilhouetteSampled || sampled.SilhouetteK != 3 || math.Abs(sampled.Table[1].Silhouette-sel.Table[1].Silhouette) > 0.1 {
		t.Errorf("sampled selection %+v vs exact %+v", sampled, sel)
	}
	fixed, fsel, err := Cluster(context.Background(), x, Options{Seed: 1, K: 5})
	if err != nil || fixed.K != 5 || fsel.Method != "fixed" || len(fsel.Table) != 1 {
		t.Errorf("fixed K: %+v, %v", fsel, err)
	}
	for _, o := range []Options{{K: 401}, {KMin: 5, KMax: 3}, {KMin: 500, KMax: 600}} {
		if _, _, err := Cluster(context.Background(), x, o); err == nil {
			t.Errorf("options %+v: no error", o)
		}
	}
}

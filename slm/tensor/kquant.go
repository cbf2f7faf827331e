package tensor

import "math"

// This file holds the K-quant quantizers, following the algorithms of
// ggml's reference quantize_row_q4_K_ref and quantize_row_q6_K_ref: a
// weighted least-squares search for each sub-block's scale (and min), the
// sub-block scales then quantized to 6 or 8 bits against a super-block
// scale stored as F16.

const groupMaxEps = 1e-15

// makeQKX2Quants finds a scale and min for n values quantized to 0..nmax
// (ggml's make_qkx2_quants without MAD): it starts from the min/max grid
// and tries nstep+1 perturbed grids, keeping the one with the least
// weighted squared error. It returns the scale and -min.
func makeQKX2Quants(nmax int, x, weights []float32, L, Laux []uint8, rmin, rdelta float32, nstep int) (scale, negMin float32) {
	n := len(x)
	lo, hi := x[0], x[0]
	sumW := weights[0]
	sumX := sumW * x[0]
	for i := 1; i < n; i++ {
		lo = min(lo, x[i])
		hi = max(hi, x[i])
		w := weights[i]
		sumW += w
		sumX += w * x[i]
	}
	lo = min(lo, 0)
	if hi == lo {
		clear(L[:n])
		return 0, -lo
	}
	iscale := float32(nmax) / (hi - lo)
	scale = 1 / iscale
	var best float32
	for i := 0; i < n; i++ {
		l := max(0, min(nmax, nearestInt(iscale*(x[i]-lo))))
		L[i] = uint8(l)
		diff := scale*float32(l) + lo - x[i]
		best += weights[i] * diff * diff
	}
	for is := 0; is <= nstep; is++ {
		iscale = (rmin + rdelta*float32(is) + float32(nmax)) / (hi - lo)
		var sumL, sumL2, sumXL float32
		for i := 0; i < n; i++ {
			l := max(0, min(nmax, nearestInt(iscale*(x[i]-lo))))
			Laux[i] = uint8(l)
			w := weights[i]
			fl := float32(l)
			sumL += w * fl
			sumL2 += w * fl * fl
			sumXL += w * fl * x[i]
		}
		D := sumW*sumL2 - sumL*sumL
		if D <= 0 {
			continue
		}
		thisScale := (sumW*sumXL - sumX*sumL) / D
		thisMin := (sumL2*sumX - sumL*sumXL) / D
		if thisMin > 0 {
			thisMin = 0
			thisScale = sumXL / sumL2
		}
		var mad float32
		for i := 0; i < n; i++ {
			diff := thisScale*float32(Laux[i]) + thisMin - x[i]
			mad += weights[i] * diff * diff
		}
		if mad < best {
			copy(L[:n], Laux[:n])
			best = mad
			scale = thisScale
			lo = thisMin
		}
	}
	return scale, -lo
}

// quantQ4K quantizes one super-block of 256 values to Q4_K.
func quantQ4K(b []byte, x []float32) {
	var (
		L       [QK_K]uint8
		laux    [32]uint8
		weights [32]float32
		mins    [QK_K / 32]float32
		scales  [QK_K / 32]float32
	)
	var maxScale, maxMin float32
	for j := 0; j < QK_K/32; j++ {
		xs := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xs {
			sumX2 += v * v
		}
		avX := float32(math.Sqrt(float64(sumX2 / 32)))
		for l, v := range xs {
			weights[l] = avX + abs32(v)
		}
		scales[j], mins[j] = makeQKX2Quants(15, xs, weights[:], L[32*j:32*j+32], laux[:], -1, 0.1, 20)
		maxScale = max(maxScale, scales[j])
		maxMin = max(maxMin, mins[j])
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	sc := b[4:16]
	clear(sc)
	for j := 0; j < QK_K/32; j++ {
		ls := uint8(min(63, nearestInt(invScale*scales[j])))
		lm := uint8(min(63, nearestInt(invMin*mins[j])))
		if j < 4 {
			sc[j] = ls
			sc[j+4] = lm
		} else {
			sc[j+4] = ls&0xf | (lm&0xf)<<4
			sc[j-4] |= (ls >> 4) << 6
			sc[j] |= (lm >> 4) << 6
		}
	}
	putF16(b, maxScale/63)
	putF16(b[2:], maxMin/63)
	dAll, dminAll := f16(b), f16(b[2:])
	for j := 0; j < QK_K/32; j++ {
		s, m := scaleMinK4(j, sc)
		d := dAll * float32(s)
		if d == 0 {
			continue
		}
		dm := dminAll * float32(m)
		for i := 0; i < 32; i++ {
			L[32*j+i] = uint8(max(0, min(15, nearestInt((x[32*j+i]+dm)/d))))
		}
	}
	q := b[16:144]
	for j := 0; j < QK_K; j += 64 {
		for l := 0; l < 32; l++ {
			q[l] = L[j+l] | L[j+l+32]<<4
		}
		q = q[32:]
	}
}

// makeQXQuants finds a scale for n values quantized to -nmax..nmax-1
// (ggml's make_qx_quants with rmse_type 1: weights x²), trying 18 grids
// around the max.
func makeQXQuants(nmax int, x []float32, L []uint8) float32 {
	var amax, mx float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, mx = a, v
		}
	}
	if amax < groupMaxEps {
		clear(L[:len(x)])
		return 0
	}
	quant := func(iscale float32) (sumLX, sumL2 float32) {
		for _, v := range x {
			l := float32(max(-nmax, min(nmax-1, nearestInt(iscale*v))))
			w := v * v
			sumLX += w * v * l
			sumL2 += w * l * l
		}
		return sumLX, sumL2
	}
	fill := func(iscale float32) {
		for i, v := range x {
			L[i] = uint8(nmax + max(-nmax, min(nmax-1, nearestInt(iscale*v))))
		}
	}
	iscale := -float32(nmax) / mx
	fill(iscale)
	sumLX, sumL2 := quant(iscale)
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := scale * sumLX
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(float32(nmax) + 0.1*float32(is)) / mx
		sumLX, sumL2 = quant(iscale)
		if sumL2 > 0 && sumLX*sumLX > best*sumL2 {
			fill(iscale)
			scale = sumLX / sumL2
			best = scale * sumLX
		}
	}
	return scale
}

// quantQ6K quantizes one super-block of 256 values to Q6_K.
func quantQ6K(b []byte, x []float32) {
	var (
		L      [QK_K]uint8
		scales [QK_K / 16]float32
	)
	var maxScale, maxAbsScale float32
	for ib := 0; ib < QK_K/16; ib++ {
		s := makeQXQuants(32, x[16*ib:16*ib+16], L[16*ib:16*ib+16])
		scales[ib] = s
		if a := abs32(s); a > maxAbsScale {
			maxAbsScale, maxScale = a, s
		}
	}
	clear(b)
	if maxAbsScale < groupMaxEps {
		return
	}
	iscale := -128 / maxScale
	putF16(b[208:], 1/iscale)
	sc := b[192:208]
	for ib := range scales {
		sc[ib] = byte(int8(min(127, nearestInt(iscale*scales[ib]))))
	}
	dAll := f16(b[208:])
	for j := 0; j < QK_K/16; j++ {
		d := dAll * float32(int8(sc[j]))
		if d == 0 {
			continue
		}
		for i := 0; i < 16; i++ {
			L[16*j+i] = uint8(max(-32, min(31, nearestInt(x[16*j+i]/d))) + 32)
		}
	}
	ql, qh := b[0:128], b[128:192]
	for j := 0; j < QK_K; j += 128 {
		for l := 0; l < 32; l++ {
			q1, q2, q3, q4 := L[j+l], L[j+l+32], L[j+l+64], L[j+l+96]
			ql[l] = q1&0xf | (q3&0xf)<<4
			ql[l+32] = q2&0xf | (q4&0xf)<<4
			qh[l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
		}
		ql = ql[64:]
		qh = qh[32:]
	}
}

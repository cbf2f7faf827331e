package kernels

import (
	"sync"
	"sync/atomic"
)

// Blocking parameters of the GEMM driver (see the package documentation).
const (
	mr      = 6    // rows of the register tile
	nr      = 16   // columns of the register tile (two ymm vectors)
	kcBlock = 256  // depth of one packed panel pair
	mcBlock = 144  // rows of A packed at once (mcBlock×kcBlock floats ≈ 144 KiB: L2)
	ncBlock = 3072 // columns of B packed at once (kcBlock×ncBlock floats = 3 MiB: L3)

	// smallM: MatMulNT with at most this many rows computes dot products
	// of whole rows instead of packing (decode: b is streamed once). At
	// m=8 this ran 1.4× the packed GEMM's speed, at m=16 the same.
	smallM = 8
	// smallMQuant: the same for the quantized matmuls.
	smallMQuant = 4
	// minParallelFlops: below this many multiply-adds (a few µs of work)
	// a call runs on one goroutine; starting and joining a second costs
	// about 0.4 µs.
	minParallelFlops = 1 << 17
)

// gemm describes one call: c[m×n] (+)= op(a)·op(b) where op(a)(i,p) is
// a[i*lda+p], or a[p*lda+i] when ta; op(b)(p,j) is b[p*ldb+j], or
// b[j*ldb+p] when tb.
type gemm struct {
	m, n, k int
	a       []float32
	lda     int
	ta      bool
	b       []float32
	ldb     int
	tb      bool
	c       []float32
	ldc     int
	acc     bool
}

var bufPool = sync.Pool{New: func() any { return new([]float32) }}

func getBuf(n int) *[]float32 {
	p := bufPool.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// workers returns how many goroutines a call with the given multiply-adds
// should use, at most max.
func workers(flops, max int) int {
	t := Threads()
	if t > max {
		t = max
	}
	if flops < minParallelFlops || t < 1 {
		return 1
	}
	return t
}

// parallelFor runs f(lo, hi) over [0, n) split into t contiguous ranges
// whose bounds are multiples of align (except the end).
func parallelFor(n, align, t int, f func(lo, hi int)) {
	chunk := (n + t - 1) / t
	chunk = (chunk + align - 1) / align * align
	if t <= 1 || chunk >= n {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for lo := chunk; lo < n; lo += chunk {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			f(lo, hi)
		}(lo, min(lo+chunk, n))
	}
	f(0, chunk)
	wg.Wait()
}

// chunksPerThread is how many pieces parallelChunks cuts the work into
// per goroutine: goroutines take pieces as they finish the previous one,
// so one that the OS deschedules (the machine is shared) holds up the
// call by one piece, not by its whole share.
const chunksPerThread = 4

// parallelChunks runs f(lo, hi) over [0, n) cut into pieces whose bounds
// are multiples of align (except the end), on t goroutines that each take
// the next piece until none is left.
func parallelChunks(n, align, t int, f func(lo, hi int)) {
	if t <= 1 {
		f(0, n)
		return
	}
	chunk := (n + t*chunksPerThread - 1) / (t * chunksPerThread)
	chunk = (chunk + align - 1) / align * align
	pieces := (n + chunk - 1) / chunk
	if pieces <= 1 {
		f(0, n)
		return
	}
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= pieces {
				return
			}
			f(i*chunk, min((i+1)*chunk, n))
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < min(t, pieces); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	work()
	wg.Wait()
}

// parallel splits C among goroutines and runs the blocked algorithm on each
// part. When it splits the columns, every part needs all of A, so A is
// packed once, cooperatively, before the parts start (and when it splits
// the rows, B): no goroutine repeats another's packing.
func (g *gemm) parallel() {
	if g.n >= g.m {
		t := workers(g.m*g.n*g.k, (g.n+nr-1)/nr)
		if t == 1 {
			g.block(0, g.m, 0, g.n, nil, nil)
			return
		}
		p := g.prepackA(t)
		defer bufPool.Put(p)
		preA := *p
		parallelChunks(g.n, nr, t, func(lo, hi int) { g.block(0, g.m, lo, hi, preA, nil) })
		return
	}
	t := workers(g.m*g.n*g.k, (g.m+mr-1)/mr)
	if t == 1 {
		g.block(0, g.m, 0, g.n, nil, nil)
		return
	}
	nPad := (g.n + nr - 1) / nr * nr
	p := getBuf(nPad * g.k)
	defer bufPool.Put(p)
	preB := *p
	parallelFor(g.n, nr, t, func(lo, hi int) {
		for pc := 0; pc < g.k; pc += kcBlock {
			kc := min(kcBlock, g.k-pc)
			g.packB(preB[pc*nPad+lo*kc:], pc, kc, lo, hi-lo)
		}
	})
	parallelChunks(g.m, mr, t, func(lo, hi int) { g.block(lo, hi, 0, g.n, nil, preB) })
}

// prepackA packs all of op(A) with t goroutines, in the layout block
// expects for preA. The caller returns the buffer to bufPool.
func (g *gemm) prepackA(t int) *[]float32 {
	mPad := (g.m + mr - 1) / mr * mr
	p := getBuf(mPad * g.k)
	preA := *p
	parallelFor(g.m, mr, t, func(lo, hi int) {
		for pc := 0; pc < g.k; pc += kcBlock {
			kc := min(kcBlock, g.k-pc)
			g.packA(preA[pc*mPad+lo*kc:], lo, hi-lo, pc, kc)
		}
	})
	return p
}

// block computes rows [i0,i1) and columns [j0,j1) of C on one goroutine:
// the five loops around the micro-kernel of Goto and van de Geijn (BLIS).
// preA, if not nil, holds all of op(A) packed (block pc, rows from i at
// preA[pc*mPad+i*kc]), and likewise preB for op(B) (block pc, columns from
// j at preB[pc*nPad+j*kc]); otherwise block packs them itself.
func (g *gemm) block(i0, i1, j0, j1 int, preA, preB []float32) {
	var bufA, bufB []float32
	if preA == nil {
		p := getBuf(mcBlock * kcBlock)
		defer bufPool.Put(p)
		bufA = *p
	}
	if preB == nil {
		p := getBuf(kcBlock * min(ncBlock, (j1-j0+nr-1)/nr*nr))
		defer bufPool.Put(p)
		bufB = *p
	}
	mPad := (g.m + mr - 1) / mr * mr
	nPad := (g.n + nr - 1) / nr * nr
	var tmp [mr * nr]float32
	asm := useAsm()

	for jc := j0; jc < j1; jc += ncBlock {
		nc := min(ncBlock, j1-jc)
		for pc := 0; pc < g.k; pc += kcBlock {
			kc := min(kcBlock, g.k-pc)
			pb := bufB
			if preB == nil {
				g.packB(bufB, pc, kc, jc, nc)
			} else {
				pb = preB[pc*nPad+jc*kc:]
			}
			accum := g.acc || pc > 0
			for ic := i0; ic < i1; ic += mcBlock {
				mc := min(mcBlock, i1-ic)
				pa := bufA
				if preA == nil {
					g.packA(bufA, ic, mc, pc, kc)
				} else {
					pa = preA[pc*mPad+ic*kc:]
				}
				for jr := 0; jr < nc; jr += nr {
					bp := pb[jr*kc : (jr+nr)*kc]
					nn := min(nr, nc-jr)
					for ir := 0; ir < mc; ir += mr {
						ap := pa[ir*kc : (ir+mr)*kc]
						mm := min(mr, mc-ir)
						off := (ic+ir)*g.ldc + jc + jr
						if mm == mr && nn == nr {
							// Full tile: the kernel writes C in place.
							cc := g.c[off : off+(mr-1)*g.ldc+nr]
							if asm {
								gemmKernel6x16(kc, &ap[0], &bp[0], &cc[0], g.ldc, b2i(accum))
							} else {
								kernelGo(kc, ap, bp, cc, g.ldc, accum)
							}
							continue
						}
						// Edge tile: compute the whole tile into tmp
						// (packing padded it with zeros), keep its
						// valid part.
						if asm {
							gemmKernel6x16(kc, &ap[0], &bp[0], &tmp[0], nr, 0)
						} else {
							kernelGo(kc, ap, bp, tmp[:], nr, false)
						}
						for i := 0; i < mm; i++ {
							row := g.c[off+i*g.ldc : off+i*g.ldc+nn]
							t := tmp[i*nr : i*nr+nn]
							if accum {
								for j := range row {
									row[j] += t[j]
								}
							} else {
								copy(row, t)
							}
						}
					}
				}
			}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// packA copies op(a) rows [ic, ic+mc) × depth [pc, pc+kc) into dst as
// micro-panels of mr rows: panel r holds dst[r*mr*kc + p*mr + i] =
// op(a)(ic+r*mr+i, pc+p), zero beyond row mc.
func (g *gemm) packA(dst []float32, ic, mc, pc, kc int) {
	for ir := 0; ir < mc; ir += mr {
		mm := min(mr, mc-ir)
		panel := dst[ir*kc : (ir+mr)*kc]
		if g.ta {
			packCopy(panel, mr, g.a[pc*g.lda+ic+ir:], g.lda, mm, kc)
		} else {
			packTrans(panel, mr, g.a[(ic+ir)*g.lda+pc:], g.lda, mm, kc)
		}
	}
}

// packB copies op(b) depth [pc, pc+kc) × columns [jc, jc+nc) into dst as
// micro-panels of nr columns: panel r holds dst[r*nr*kc + p*nr + j] =
// op(b)(pc+p, jc+r*nr+j), zero beyond column nc.
func (g *gemm) packB(dst []float32, pc, kc, jc, nc int) {
	for jr := 0; jr < nc; jr += nr {
		nn := min(nr, nc-jr)
		panel := dst[jr*kc : (jr+nr)*kc]
		if g.tb {
			packTrans(panel, nr, g.b[(jc+jr)*g.ldb+pc:], g.ldb, nn, kc)
		} else {
			packCopy(panel, nr, g.b[pc*g.ldb+jc+jr:], g.ldb, nn, kc)
		}
	}
}

// packCopy writes panel[p*w+i] = src[p*ld+i] for p < kc, i < cnt, and
// zeros for cnt ≤ i < w: rows of the panel are pieces of rows of src.
func packCopy(panel []float32, w int, src []float32, ld, cnt, kc int) {
	for p := 0; p < kc; p++ {
		d := panel[p*w : p*w+w]
		copy(d, src[p*ld:p*ld+cnt])
		clear(d[cnt:])
	}
}

// packTrans writes panel[p*w+i] = src[i*ld+p] for p < kc, i < cnt, and
// zeros for cnt ≤ i < w: the panel is a transposed block of src, gathered
// four rows of src at a time so that the writes stay sequential.
func packTrans(panel []float32, w int, src []float32, ld, cnt, kc int) {
	panel = panel[:w*kc]
	i := 0
	if kc8 := kc &^ 7; w >= 8 && kc8 > 0 && useAsm() {
		for ; i+8 <= cnt; i += 8 {
			_ = src[(i+7)*ld+kc-1] // the eight rows exist
			transPack8(&panel[i], w, &src[i*ld], ld, kc8)
			for r := i; r < i+8; r++ {
				for p, v := range src[r*ld+kc8 : r*ld+kc] {
					panel[(kc8+p)*w+r] = v
				}
			}
		}
	}
	for ; i+4 <= cnt; i += 4 {
		r0 := src[i*ld:][:kc]
		r1 := src[(i+1)*ld:][:kc]
		r2 := src[(i+2)*ld:][:kc]
		r3 := src[(i+3)*ld:][:kc]
		for p := range r0 {
			q := panel[p*w+i : p*w+i+4 : p*w+i+4]
			q[0], q[1], q[2], q[3] = r0[p], r1[p], r2[p], r3[p]
		}
	}
	for ; i+2 <= cnt; i += 2 {
		r0 := src[i*ld:][:kc]
		r1 := src[(i+1)*ld:][:kc]
		for p := range r0 {
			q := panel[p*w+i : p*w+i+2 : p*w+i+2]
			q[0], q[1] = r0[p], r1[p]
		}
	}
	for ; i < cnt; i++ {
		for p, v := range src[i*ld:][:kc] {
			panel[p*w+i] = v
		}
	}
	for ; i < w; i++ {
		for p := 0; p < kc; p++ {
			panel[p*w+i] = 0
		}
	}
}

// kernelGo is the portable micro-kernel: the same contract as the assembly
// gemmKernel6x16. It walks the tile in 2×4 sub-tiles whose eight sums fit
// in registers, each over the whole depth (the panels stay in L1).
func kernelGo(kc int, a, b, c []float32, ldc int, acc bool) {
	a = a[:kc*mr]
	b = b[:kc*nr]
	for i := 0; i < mr; i += 2 {
		for j := 0; j < nr; j += 4 {
			var c00, c01, c02, c03, c10, c11, c12, c13 float32
			for p := 0; p < kc; p++ {
				ap := a[p*mr+i : p*mr+i+2 : p*mr+i+2]
				bp := b[p*nr+j : p*nr+j+4 : p*nr+j+4]
				a0, a1 := ap[0], ap[1]
				b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
				c00 += a0 * b0
				c01 += a0 * b1
				c02 += a0 * b2
				c03 += a0 * b3
				c10 += a1 * b0
				c11 += a1 * b1
				c12 += a1 * b2
				c13 += a1 * b3
			}
			r0 := c[i*ldc+j : i*ldc+j+4 : i*ldc+j+4]
			r1 := c[(i+1)*ldc+j : (i+1)*ldc+j+4 : (i+1)*ldc+j+4]
			if acc {
				r0[0] += c00
				r0[1] += c01
				r0[2] += c02
				r0[3] += c03
				r1[0] += c10
				r1[1] += c11
				r1[2] += c12
				r1[3] += c13
			} else {
				r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
				r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
			}
		}
	}
}

// rowDots computes C = A·Bᵀ (+C) for few rows of A as dot products of whole
// rows, splitting the rows of B among goroutines: every weight row is read
// once from memory (four at a time, for all rows of A) while the rows of A
// stay in cache.
func (g *gemm) rowDots() {
	t := workers(g.m*g.n*g.k, (g.n+3)/4)
	parallelChunks(g.n, 4, t, func(lo, hi int) {
		k := g.k
		asm := useAsm() && k >= 8
		k8 := k &^ 7
		var out [4]float32
		set := func(i, j int, s float32) {
			if g.acc {
				g.c[i*g.ldc+j] += s
			} else {
				g.c[i*g.ldc+j] = s
			}
		}
		j := lo
		if asm {
			for ; j+4 <= hi; j += 4 {
				bq := g.b[j*k : (j+4)*k]
				for i := 0; i < g.m; i++ {
					arow := g.a[i*k : i*k+k]
					dot4AVX2(&arow[0], &bq[0], k, k8, &out[0])
					for r := 0; r < 4; r++ {
						s := out[r]
						if k8 < k {
							s += dotGo(arow[k8:], bq[r*k+k8:(r+1)*k])
						}
						set(i, j+r, s)
					}
				}
			}
		}
		for ; j < hi; j++ {
			brow := g.b[j*k : (j+1)*k]
			for i := 0; i < g.m; i++ {
				set(i, j, dot(g.a[i*k:i*k+k], brow))
			}
		}
	})
}

// vecMat computes c[1×n] (+)= a[1×k]·b[k×n] as k axpy updates of c,
// splitting the columns among goroutines.
func (g *gemm) vecMat() {
	t := workers(g.n*g.k, (g.n+63)/64)
	parallelChunks(g.n, 64, t, func(lo, hi int) {
		c := g.c[lo:hi]
		if !g.acc {
			clear(c)
		}
		for p := 0; p < g.k; p++ {
			axpy(g.a[p], g.b[p*g.ldb+lo:p*g.ldb+hi], c)
		}
	})
}

package kernels

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
)

// Impl names one implementation of the kernels.
type Impl int32

const (
	// Reference is the plain-loop reference: slow, simple, the definition
	// of the right answer.
	Reference Impl = iota
	// Generic is the blocked, multi-threaded kernels with a portable Go
	// micro-kernel: the fast path on CPUs without AVX2/FMA.
	Generic
	// AVX2 is the blocked, multi-threaded kernels with the AVX2/FMA
	// assembly micro-kernels (amd64 only).
	AVX2
)

func (i Impl) String() string {
	switch i {
	case Reference:
		return "reference"
	case Generic:
		return "generic"
	case AVX2:
		return "avx2"
	}
	return fmt.Sprintf("Impl(%d)", int32(i))
}

var (
	impl    atomic.Int32
	threads atomic.Int32
)

// EnvImpl is the environment variable read at start-up that picks the
// implementation: "reference", "generic" or "avx2" (default: the best the
// CPU supports).
const EnvImpl = "USERSIM_KERNELS"

func init() {
	impl.Store(int32(Best()))
	if i, ok := ParseImpl(os.Getenv(EnvImpl)); ok {
		SetImpl(i)
	}
	threads.Store(int32(runtime.GOMAXPROCS(0)))
}

// ParseImpl returns the implementation named s ("reference", "generic" or
// "avx2"); ok is false for any other string.
func ParseImpl(s string) (i Impl, ok bool) {
	for _, i := range []Impl{Reference, Generic, AVX2} {
		if s == i.String() {
			return i, true
		}
	}
	return Best(), false
}

// Best returns the fastest implementation the running CPU supports.
func Best() Impl {
	if haveAVX2 {
		return AVX2
	}
	return Generic
}

// SetImpl selects the implementation used by every kernel and returns the
// previous one. Asking for AVX2 on a CPU without it selects Generic. It is
// meant for tests and start-up, not to be flipped while kernels run.
func SetImpl(i Impl) Impl {
	if i == AVX2 && !haveAVX2 {
		i = Generic
	}
	if i < Reference || i > AVX2 {
		i = Best()
	}
	return Impl(impl.Swap(int32(i)))
}

// CurrentImpl returns the implementation in use.
func CurrentImpl() Impl { return Impl(impl.Load()) }

func useAsm() bool { return impl.Load() == int32(AVX2) }
func useRef() bool { return impl.Load() == int32(Reference) }

// SetThreads sets how many goroutines one kernel call may use; n < 1 means
// runtime.GOMAXPROCS(0).
func SetThreads(n int) {
	if n < 1 {
		n = runtime.GOMAXPROCS(0)
	}
	threads.Store(int32(n))
}

// Threads returns the number of goroutines one kernel call may use.
func Threads() int { return int(threads.Load()) }

// Shape errors are programming errors (like an index out of range), so the
// kernels panic with a message naming the function and operand; they never
// read or write outside the slices they are given.

func checkLen(fn, name string, got, want int) {
	if got < want {
		panic(fmt.Sprintf("kernels.%s: len(%s) = %d, need %d", fn, name, got, want))
	}
}

func checkDims(fn string, m, n, k int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("kernels.%s: negative dimension m=%d n=%d k=%d", fn, m, n, k))
	}
}

func checkMatMul(fn string, c, a, b []float32, m, n, k int) {
	checkDims(fn, m, n, k)
	checkLen(fn, "c", len(c), m*n)
	checkLen(fn, "a", len(a), m*k)
	checkLen(fn, "b", len(b), n*k)
}

// MatMulNT computes c[m×n] = a[m×k] · b[n×k]ᵀ (row-major): activations
// times transposed weights, the forward pass of a linear layer.
func MatMulNT(c, a, b []float32, m, n, k int) {
	matMul("MatMulNT", c, a, b, m, n, k, false, true, false)
}

// MatMulNTAcc computes c[m×n] += a[m×k] · b[n×k]ᵀ.
func MatMulNTAcc(c, a, b []float32, m, n, k int) {
	matMul("MatMulNTAcc", c, a, b, m, n, k, false, true, true)
}

// MatMulNN computes c[m×n] = a[m×k] · b[k×n].
func MatMulNN(c, a, b []float32, m, n, k int) {
	matMul("MatMulNN", c, a, b, m, n, k, false, false, false)
}

// MatMulNNAcc computes c[m×n] += a[m×k] · b[k×n].
func MatMulNNAcc(c, a, b []float32, m, n, k int) {
	matMul("MatMulNNAcc", c, a, b, m, n, k, false, false, true)
}

// MatMulTN computes c[m×n] = a[k×m]ᵀ · b[k×n].
func MatMulTN(c, a, b []float32, m, n, k int) {
	matMul("MatMulTN", c, a, b, m, n, k, true, false, false)
}

// MatMulTNAcc computes c[m×n] += a[k×m]ᵀ · b[k×n].
func MatMulTNAcc(c, a, b []float32, m, n, k int) {
	matMul("MatMulTNAcc", c, a, b, m, n, k, true, false, true)
}

func matMul(fn string, c, a, b []float32, m, n, k int, ta, tb, acc bool) {
	checkMatMul(fn, c, a, b, m, n, k)
	if m == 0 || n == 0 {
		return
	}
	if useRef() {
		switch {
		case tb:
			refMatMulNT(c, a, b, m, n, k, acc)
		case ta:
			refMatMulTN(c, a, b, m, n, k, acc)
		default:
			refMatMulNN(c, a, b, m, n, k, acc)
		}
		return
	}
	if k == 0 {
		if !acc {
			clear(c[:m*n])
		}
		return
	}
	lda, ldb := k, n
	if ta {
		lda = m
	}
	if tb {
		ldb = k
	}
	g := gemm{m: m, n: n, k: k, a: a, lda: lda, ta: ta, b: b, ldb: ldb, tb: tb, c: c, ldc: n, acc: acc}
	if m <= smallM && tb {
		g.rowDots()
		return
	}
	if m == 1 && !ta {
		g.vecMat()
		return
	}
	g.parallel()
}

// Dot returns the dot product of a and b (len(b) ≥ len(a)).
func Dot(a, b []float32) float32 {
	checkLen("Dot", "b", len(b), len(a))
	if useRef() {
		return refDot(a, b[:len(a)])
	}
	return dot(a, b[:len(a)])
}

func dot(a, b []float32) float32 {
	n := len(a)
	var s float32
	m := 0
	if useAsm() {
		m = n &^ 7
		if m > 0 {
			s = dotAVX2(&a[0], &b[0], m)
		}
	}
	return s + dotGo(a[m:], b[m:n])
}

// dotGo is the portable dot product, four independent sums deep.
func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// Axpy computes y += alpha·x (len(y) ≥ len(x)).
func Axpy(alpha float32, x, y []float32) {
	checkLen("Axpy", "y", len(y), len(x))
	if useRef() {
		refAxpy(alpha, x, y[:len(x)])
		return
	}
	axpy(alpha, x, y[:len(x)])
}

func axpy(alpha float32, x, y []float32) {
	m := 0
	if useAsm() {
		m = len(x) &^ 7
		if m > 0 {
			axpyAVX2(alpha, &x[0], &y[0], m)
		}
	}
	y = y[:len(x)]
	for i := m; i < len(x); i++ {
		y[i] += alpha * x[i]
	}
}

// Scale computes x *= alpha.
func Scale(alpha float32, x []float32) {
	if useRef() {
		refScale(alpha, x)
		return
	}
	m := 0
	if useAsm() {
		m = len(x) &^ 7
		if m > 0 {
			scaleAVX2(alpha, &x[0], m)
		}
	}
	for i := m; i < len(x); i++ {
		x[i] *= alpha
	}
}

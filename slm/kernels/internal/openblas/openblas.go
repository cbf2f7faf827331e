//go:build openblas

// Package openblas binds the few OpenBLAS functions that the comparison
// benchmark of package kernels calls (cgo, only with the openblas build tag;
// Debian: apt-get install libopenblas-dev). It lives apart from kernels
// because a cgo package cannot hold Go assembly.
package openblas

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

// SgemmNT calls cblas_sgemm for c = a·bᵀ, the layout of MatMulNT.
func SgemmNT(c, a, b []float32, m, n, k int) {
	C.cblas_sgemm(C.CblasRowMajor, C.CblasNoTrans, C.CblasTrans, C.blasint(m), C.blasint(n), C.blasint(k),
		1, (*C.float)(&a[0]), C.blasint(k), (*C.float)(&b[0]), C.blasint(k),
		0, (*C.float)(&c[0]), C.blasint(n))
}

// SetThreads sets the number of OpenBLAS threads.
func SetThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// Core names the kernel set OpenBLAS picked for this CPU.
func Core() string { return C.GoString(C.openblas_get_corename()) }

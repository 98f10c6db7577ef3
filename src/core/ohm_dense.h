/* ohm_dense: the few dense products ohmpeer needs, on OpenBLAS when built with
 * it (single-threaded: peers are processes, one core each is the right share)
 * or a portable blocked kernel otherwise. Row-major throughout. */
#ifndef OHM_DENSE_H
#define OHM_DENSE_H

/* C[m x n] = alpha * op(A) op(B) + beta * C, with op(X) = X or X^T as ta/tb say.
 * A is m x k (or k x m when ta), B is k x n (or n x k when tb). */
void ohm_dense_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                    const float *b, float beta, float *c);

/* Pins the dense library to one thread; called once at start-up by programs. */
void ohm_dense_single_thread(void);

#endif

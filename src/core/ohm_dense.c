/* ohm_dense: GEMM on OpenBLAS or a portable fallback. */
#include "ohm_dense.h"

#include <stddef.h>

#ifdef OHM_HAVE_OPENBLAS
#include <cblas.h>

void ohm_dense_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                    const float *b, float beta, float *c)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                n, k, alpha, a, ta ? m : k, b, tb ? k : n, beta, c, n);
}

void ohm_dense_single_thread(void)
{
    openblas_set_num_threads(1);
}
#else
/* Portable kernel: loops ordered so the innermost one streams contiguous rows. */
void ohm_dense_gemm(int ta, int tb, int m, int n, int k, float alpha, const float *a,
                    const float *b, float beta, float *c)
{
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * n;
        for (int j = 0; j < n; j++)
            ci[j] = beta == 0.0f ? 0.0f : beta * ci[j];
        for (int p = 0; p < k; p++) {
            float av = alpha * (ta ? a[(size_t)p * m + i] : a[(size_t)i * k + p]);
            if (av == 0.0f)
                continue;
            if (!tb) {
                const float *bp = b + (size_t)p * n;
                for (int j = 0; j < n; j++)
                    ci[j] += av * bp[j];
            } else {
                for (int j = 0; j < n; j++)
                    ci[j] += av * b[(size_t)j * k + p];
            }
        }
    }
}

void ohm_dense_single_thread(void)
{
}
#endif

/* Register-blocked micro-kernels behind ext/similarity.pyx.
 *
 * One call computes the keys of 4 rows (x0..x3, each d values) against a packed panel of jb
 * columns stored k-major (P[k*jb + lane]; AP holds |P| for Canberra), writing out[r*jb + lane].
 * The 4 x (2 vectors) accumulators stay in registers for the whole k loop, so each panel load
 * feeds 4 rows and each broadcast feeds 2 vectors: the loop is bound by the FP pipes, not by
 * loads and stores. Sums run lane by lane in k order, never reassociated.
 *
 * Keys (see similarity.pyx): -dot for the correlation family, sum of squares for Euclidean,
 * plain sums for Manhattan and Canberra (0/0 terms count 0, branch-free as in scipy).
 *
 * GCC/Clang vector extensions: 32-byte vectors compile to AVX/AVX2/FMA with -march=native and to
 * pairs of SSE2 instructions in the portable build. Other compilers get the scalar loop.
 * jb must be a multiple of 16 floats / 8 doubles.
 */
#ifndef PROFILING_TILES_H
#define PROFILING_TILES_H

#include <stddef.h>
#include <string.h>
#include <math.h>
#include <float.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

enum {
    PROF_PEARSON = 0,
    PROF_COSINE = 1,
    PROF_SQCOSINE = 2,
    PROF_EUCLIDEAN = 3,
    PROF_MANHATTAN = 4,
    PROF_CANBERRA = 5,
    PROF_JACCARD = 6,
    PROF_DICE = 7
};

#if defined(__GNUC__) || defined(__clang__)

typedef float prof_vf __attribute__((vector_size(32)));
typedef int prof_vfi __attribute__((vector_size(32)));
typedef double prof_vd __attribute__((vector_size(32)));
typedef long long prof_vdi __attribute__((vector_size(32)));

#define PROF_WF 8
#define PROF_WD 4

static inline prof_vf prof_ldf(const float *p) { prof_vf v; memcpy(&v, p, sizeof v); return v; }
static inline prof_vd prof_ldd(const double *p) { prof_vd v; memcpy(&v, p, sizeof v); return v; }
static inline void prof_stf(float *p, prof_vf v) { memcpy(p, &v, sizeof v); }
static inline void prof_std(double *p, prof_vd v) { memcpy(p, &v, sizeof v); }
static inline prof_vf prof_absf(prof_vf v) {
    return (prof_vf)((prof_vfi)v & (prof_vfi){0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff,
                                               0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff});
}
static inline prof_vd prof_absd(prof_vd v) {
    const long long m = 0x7fffffffffffffffLL;
    return (prof_vd)((prof_vdi)v & (prof_vdi){m, m, m, m});
}
/* den + (den == 0): 1 where the denominator is 0 (then the numerator is 0 too). */
static inline prof_vf prof_safef(prof_vf den) {
    const prof_vf one = (prof_vf){1, 1, 1, 1, 1, 1, 1, 1};
    return den + (prof_vf)((prof_vfi)(den == (prof_vf){0}) & (prof_vfi)one);
}
static inline prof_vd prof_safed(prof_vd den) {
    const prof_vd one = (prof_vd){1, 1, 1, 1};
    return den + (prof_vd)((prof_vdi)(den == (prof_vd){0}) & (prof_vdi)one);
}

/* One float32 Canberra term |x - p| / (|x| + |p|), 0/0 = 0, for 8 lanes (num = |x - p|,
 * den = |x| + |p|, so 0 <= num <= den). With AVX the divider is the bottleneck, so use the
 * hardware reciprocal estimate (12 bits) refined by one Newton step (~23 bits: relative error
 * below 3e-7 per term, far inside the 1e-5 float32 tolerance). The denominator is raised to
 * FLT_MIN, which makes 0/0 = 0 * (1/FLT_MIN) = 0 without a compare; a subnormal |x| + |p| (below
 * 1.2e-38) is computed as FLT_MIN, so such a term is slightly too small. */
static inline prof_vf prof_canberra_termf(prof_vf num, prof_vf den) {
#if defined(__AVX__)
    const prof_vf one = (prof_vf){1, 1, 1, 1, 1, 1, 1, 1};
    const prof_vf d = (prof_vf)_mm256_max_ps((__m256)den, _mm256_set1_ps(FLT_MIN));
    prof_vf r = (prof_vf)_mm256_rcp_ps((__m256)d);
    r = r + r * (one - d * r);
    return num * r;
#else
    return num / prof_safef(den);
#endif
}

/* PROF_KERNEL4 / PROF_KERNEL6 (name, T, VT, W, LD, ST, NEG, BODY): BODY updates the two
 * accumulators of one row from its value XK, the panel vectors P0/P1 and the |panel| pointer AP.
 * 6 rows x 2 vectors (12 accumulators) for the dot product, as in BLIS's 6x16 kernel; 4 rows for
 * the others, whose bodies need temporaries (16 vector registers in AVX2). */
#define PROF_ACC_DECL(VT, r) VT a##r##0 = {0}, a##r##1 = {0};
#define PROF_ACC_STORE(ST, NEG, W, r) do { ST(out + (r) * jb + j, NEG a##r##0);               \
                                           ST(out + (r) * jb + j + (W), NEG a##r##1); } while (0)

#define PROF_KERNEL4(NAME, T, VT, W, LD, ST, NEG, BODY)                                       \
static void NAME(const T *const *xs, ptrdiff_t d, const T *P, const T *AP, ptrdiff_t jb,     \
                 T *out)                                                                     \
{                                                                                            \
    const T *x0 = xs[0], *x1 = xs[1], *x2 = xs[2], *x3 = xs[3];                              \
    (void)AP;                                                                                \
    for (ptrdiff_t j = 0; j < jb; j += 2 * (W)) {                                            \
        PROF_ACC_DECL(VT, 0) PROF_ACC_DECL(VT, 1) PROF_ACC_DECL(VT, 2) PROF_ACC_DECL(VT, 3)                  \
        const T *p = P + j;                                                                  \
        const T *ap = AP + j;                                                                \
        for (ptrdiff_t k = 0; k < d; ++k, p += jb, ap += jb) {                               \
            const VT p0 = LD(p), p1 = LD(p + (W));                                           \
            BODY(a00, a01, x0[k], p0, p1, ap);                                               \
            BODY(a10, a11, x1[k], p0, p1, ap);                                               \
            BODY(a20, a21, x2[k], p0, p1, ap);                                               \
            BODY(a30, a31, x3[k], p0, p1, ap);                                               \
        }                                                                                    \
        PROF_ACC_STORE(ST, NEG, W, 0); PROF_ACC_STORE(ST, NEG, W, 1); PROF_ACC_STORE(ST, NEG, W, 2); PROF_ACC_STORE(ST, NEG, W, 3);          \
    }                                                                                        \
}

#define PROF_KERNEL6(NAME, T, VT, W, LD, ST, NEG, BODY)                                       \
static void NAME(const T *const *xs, ptrdiff_t d, const T *P, const T *AP, ptrdiff_t jb,     \
                 T *out)                                                                     \
{                                                                                            \
    const T *x0 = xs[0], *x1 = xs[1], *x2 = xs[2], *x3 = xs[3], *x4 = xs[4], *x5 = xs[5];    \
    (void)AP;                                                                                \
    for (ptrdiff_t j = 0; j < jb; j += 2 * (W)) {                                            \
        PROF_ACC_DECL(VT, 0) PROF_ACC_DECL(VT, 1) PROF_ACC_DECL(VT, 2)                                   \
        PROF_ACC_DECL(VT, 3) PROF_ACC_DECL(VT, 4) PROF_ACC_DECL(VT, 5)                                   \
        const T *p = P + j;                                                                  \
        const T *ap = AP + j;                                                                \
        for (ptrdiff_t k = 0; k < d; ++k, p += jb, ap += jb) {                               \
            const VT p0 = LD(p), p1 = LD(p + (W));                                           \
            BODY(a00, a01, x0[k], p0, p1, ap);                                               \
            BODY(a10, a11, x1[k], p0, p1, ap);                                               \
            BODY(a20, a21, x2[k], p0, p1, ap);                                               \
            BODY(a30, a31, x3[k], p0, p1, ap);                                               \
            BODY(a40, a41, x4[k], p0, p1, ap);                                               \
            BODY(a50, a51, x5[k], p0, p1, ap);                                               \
        }                                                                                    \
        PROF_ACC_STORE(ST, NEG, W, 0); PROF_ACC_STORE(ST, NEG, W, 1); PROF_ACC_STORE(ST, NEG, W, 2);                             \
        PROF_ACC_STORE(ST, NEG, W, 3); PROF_ACC_STORE(ST, NEG, W, 4); PROF_ACC_STORE(ST, NEG, W, 5);                             \
    }                                                                                        \
}

#define PROF_DOT(A0, A1, XK, P0, P1, AP)                                                     \
    do { const T_ xb = XK; A0 += xb * P0; A1 += xb * P1; } while (0)
#define PROF_SQ(A0, A1, XK, P0, P1, AP)                                                      \
    do { const T_ xb = XK; VT_ t0 = xb - P0, t1 = xb - P1; A0 += t0 * t0; A1 += t1 * t1; }   \
    while (0)
#define PROF_L1F(A0, A1, XK, P0, P1, AP)                                                     \
    do { const T_ xb = XK; A0 += prof_absf(xb - P0); A1 += prof_absf(xb - P1); } while (0)
#define PROF_L1D(A0, A1, XK, P0, P1, AP)                                                     \
    do { const T_ xb = XK; A0 += prof_absd(xb - P0); A1 += prof_absd(xb - P1); } while (0)
#define PROF_CANF(A0, A1, XK, P0, P1, AP)                                                    \
    do { const T_ xb = XK; const T_ ax = fabsf(xb);                                          \
         A0 += prof_canberra_termf(prof_absf(xb - P0), ax + prof_ldf(AP));                   \
         A1 += prof_canberra_termf(prof_absf(xb - P1), ax + prof_ldf(AP + PROF_WF)); } while (0)
#define PROF_CAND(A0, A1, XK, P0, P1, AP)                                                    \
    do { const T_ xb = XK; const T_ ax = fabs(xb);                                           \
         A0 += prof_absd(xb - P0) / prof_safed(ax + prof_ldd(AP));                           \
         A1 += prof_absd(xb - P1) / prof_safed(ax + prof_ldd(AP + PROF_WD)); } while (0)

#define T_ float
#define VT_ prof_vf
PROF_KERNEL6(prof_dot_f32, float, prof_vf, PROF_WF, prof_ldf, prof_stf, -, PROF_DOT)
PROF_KERNEL4(prof_sq_f32, float, prof_vf, PROF_WF, prof_ldf, prof_stf, +, PROF_SQ)
PROF_KERNEL4(prof_l1_f32, float, prof_vf, PROF_WF, prof_ldf, prof_stf, +, PROF_L1F)
PROF_KERNEL4(prof_can_f32, float, prof_vf, PROF_WF, prof_ldf, prof_stf, +, PROF_CANF)
#undef T_
#undef VT_
#define T_ double
#define VT_ prof_vd
PROF_KERNEL6(prof_dot_f64, double, prof_vd, PROF_WD, prof_ldd, prof_std, -, PROF_DOT)
PROF_KERNEL4(prof_sq_f64, double, prof_vd, PROF_WD, prof_ldd, prof_std, +, PROF_SQ)
PROF_KERNEL4(prof_l1_f64, double, prof_vd, PROF_WD, prof_ldd, prof_std, +, PROF_L1D)
PROF_KERNEL4(prof_can_f64, double, prof_vd, PROF_WD, prof_ldd, prof_std, +, PROF_CAND)
#undef T_
#undef VT_

#else /* scalar fallback for compilers without vector extensions */

#define PROF_SCALAR(NAME, T, R, NEG, TERM)                                                    \
static void NAME(const T *const *xs, ptrdiff_t d, const T *P, const T *AP, ptrdiff_t jb,     \
                 T *out)                                                                     \
{                                                                                            \
    for (int r = 0; r < (R); ++r)                                                            \
        for (ptrdiff_t j = 0; j < jb; ++j) {                                                 \
            T a = 0;                                                                         \
            for (ptrdiff_t k = 0; k < d; ++k) {                                              \
                const T x = xs[r][k], p = P[k * jb + j], q = AP[k * jb + j];                 \
                (void)q;                                                                     \
                a += TERM;                                                                   \
            }                                                                                \
            out[r * jb + j] = NEG a;                                                         \
        }                                                                                    \
}
PROF_SCALAR(prof_dot_f32, float, 6, -, x * p)
PROF_SCALAR(prof_sq_f32, float, 4, +, (x - p) * (x - p))
PROF_SCALAR(prof_l1_f32, float, 4, +, fabsf(x - p))
PROF_SCALAR(prof_can_f32, float, 4, +, fabsf(x - p) / (fabsf(x) + q + (fabsf(x) + q == 0)))
PROF_SCALAR(prof_dot_f64, double, 6, -, x * p)
PROF_SCALAR(prof_sq_f64, double, 4, +, (x - p) * (x - p))
PROF_SCALAR(prof_l1_f64, double, 4, +, fabs(x - p))
PROF_SCALAR(prof_can_f64, double, 4, +, fabs(x - p) / (fabs(x) + q + (fabs(x) + q == 0)))

#endif

/* ---- Sets (Jaccard, Dice) on bit-packed uint64 rows ---------------------------------------- */

#if defined(__GNUC__) && defined(__POPCNT__)
static inline int prof_popcount64(unsigned long long x) { return __builtin_popcountll(x); }
#else
/* Branch-free SWAR count, far faster than libgcc's table fallback. */
static inline int prof_popcount64(unsigned long long x) {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((x * 0x0101010101010101ULL) >> 56);
}
#endif

/* Offsets q in [0, n) of the rows b[q] (w words each) with popcount(a & b[q]) >= need, written
 * to hits; returns their number. One-word sets use AVX2 (nibble-table popcount, 4 rows per
 * step) when the build has it. */
static inline ptrdiff_t prof_set_scan(const unsigned long long *a, const unsigned long long *b,
                                      ptrdiff_t w, ptrdiff_t n, long long need, ptrdiff_t *hits)
{
    ptrdiff_t nh = 0, q = 0;
    if (w == 1) {
        const unsigned long long a0 = a[0];
#if defined(__AVX2__)
        const __m256i av = _mm256_set1_epi64x((long long)a0);
        const __m256i low = _mm256_set1_epi8(0x0f);
        const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                             0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
        const __m256i below = _mm256_set1_epi64x(need - 1);
        for (; q + 4 <= n; q += 4) {
            const __m256i v = _mm256_and_si256(av, _mm256_loadu_si256((const __m256i *)(b + q)));
            const __m256i c = _mm256_add_epi8(
                _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low)),
                _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
            const __m256i cnt = _mm256_sad_epu8(c, _mm256_setzero_si256());
            int mask = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(cnt, below)));
            while (mask) {
                const int bit = __builtin_ctz(mask);
                hits[nh++] = q + bit;
                mask &= mask - 1;
            }
        }
#endif
        for (; q < n; ++q)
            if (prof_popcount64(a0 & b[q]) >= need)
                hits[nh++] = q;
        return nh;
    }
    for (; q < n; ++q) {
        long long s = 0;
        for (ptrdiff_t k = 0; k < w; ++k)
            s += prof_popcount64(a[k] & b[q * w + k]);
        if (s >= need)
            hits[nh++] = q;
    }
    return nh;
}

/* Rows per micro-kernel call for a metric code. */
static inline int prof_rows(int code)
{
    return (code == PROF_PEARSON || code == PROF_COSINE || code == PROF_SQCOSINE) ? 6 : 4;
}

/* Keys of prof_rows(code) rows (xs) against one panel into out[rows][jb]. */
static inline void prof_block_f32(int code, const float *const *xs, ptrdiff_t d, const float *P,
                                  const float *AP, ptrdiff_t jb, float *out)
{
    switch (code) {
    case PROF_EUCLIDEAN: prof_sq_f32(xs, d, P, AP, jb, out); break;
    case PROF_MANHATTAN: prof_l1_f32(xs, d, P, AP, jb, out); break;
    case PROF_CANBERRA: prof_can_f32(xs, d, P, AP, jb, out); break;
    default: prof_dot_f32(xs, d, P, AP, jb, out); break;
    }
}

static inline void prof_block_f64(int code, const double *const *xs, ptrdiff_t d,
                                  const double *P, const double *AP, ptrdiff_t jb, double *out)
{
    switch (code) {
    case PROF_EUCLIDEAN: prof_sq_f64(xs, d, P, AP, jb, out); break;
    case PROF_MANHATTAN: prof_l1_f64(xs, d, P, AP, jb, out); break;
    case PROF_CANBERRA: prof_can_f64(xs, d, P, AP, jb, out); break;
    default: prof_dot_f64(xs, d, P, AP, jb, out); break;
    }
}

#endif

/* Exact integer area resize: edgecls's preprocessing kernel ("area-exact-v4").
 *
 * Output cell (i, j) of a size x size image is the area-weighted mean of the source
 * pixels it covers, computed in integers and rounded half up. Along one axis of n source
 * pixels, output i covers [i*n, (i+1)*n) and source k covers [k*size, (k+1)*size); their
 * overlap, divided by g = gcd(n, size), is the integer weight. The weights of one output
 * sum to n/g, so the divisor is D = (h/gy) * (w/gx): 150 for 640x480 -> 64x64.
 *
 * The result is a pure function of the pixels: no floats, no platform differences. The
 * pure-numpy twin in edgecls/preprocess.py (`_area_exact_numpy`) computes the same numbers,
 * and a test holds the two equal on random sizes.
 *
 * Speed (the frame-cost goal of the device runtime): when D < 256, which covers 640x480
 * covers 640x480 and 320x240, rows are summed in 16-bit lanes the compiler vectorises
 * (SSE2/AVX2 on x86-64, NEON on aarch64), and columns in 8-lane vectors holding two
 * pixels each. Anything larger takes the plain 32/64-bit path: exact, slower.
 *
 * No Python.h: Python loads this with ctypes, so building it needs a C compiler only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* AVX2 and baseline copies, picked at load time by glibc's ifunc (musl has none). */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__)
#define EDGECLS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EDGECLS_CLONES
#endif

#define CHUNK 64

typedef uint16_t u16x8 __attribute__((vector_size(16)));

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* First source index, source count and weights (reduced by g) of every output cell. */
static void axis_weights(int64_t n, int64_t out, int64_t g, int64_t *start, int64_t *count, uint32_t *w) {
    int64_t pos = 0;
    for (int64_t i = 0; i < out; i++) {
        int64_t lo = i * n, hi = (i + 1) * n;
        int64_t k0 = lo / out, k1 = (hi + out - 1) / out;
        start[i] = k0;
        count[i] = k1 - k0;
        for (int64_t k = k0; k < k1; k++) {
            int64_t a = lo > k * out ? lo : k * out;
            int64_t b = hi < (k + 1) * out ? hi : (k + 1) * out;
            w[pos++] = (uint32_t)((b - a) / g);
        }
    }
}

/* acc[x] = sum over the band's rows of weight * row[x], in 16 bits (no overflow: see above). */
EDGECLS_CLONES
static void rows16(const uint8_t *src, int64_t stride, int64_t nrows, const uint32_t *wk, int64_t n, uint16_t *acc) {
    int64_t x = 0;
    for (; x + CHUNK <= n; x += CHUNK) {
        uint16_t t[CHUNK];
        const uint8_t *r = src + x;
        const uint16_t w0 = (uint16_t)wk[0];
        for (int l = 0; l < CHUNK; l++) t[l] = (uint16_t)(w0 * r[l]);
        for (int64_t k = 1; k < nrows; k++) {
            const uint8_t *rk = r + k * stride;
            const uint16_t wr = (uint16_t)wk[k];
            for (int l = 0; l < CHUNK; l++) t[l] = (uint16_t)(t[l] + wr * rk[l]);
        }
        memcpy(acc + x, t, sizeof t);
    }
    for (; x < n; x++) {
        uint32_t s = 0;
        for (int64_t k = 0; k < nrows; k++) s += wk[k] * src[k * stride + x];
        acc[x] = (uint16_t)s;
    }
}

EDGECLS_CLONES
static void rows32(const uint8_t *src, int64_t stride, int64_t nrows, const uint32_t *wk, int64_t n, uint32_t *acc) {
    for (int64_t x = 0; x < n; x++) acc[x] = wk[0] * src[x];
    for (int64_t k = 1; k < nrows; k++) {
        const uint8_t *rk = src + k * stride;
        const uint32_t wr = wk[k];
        for (int64_t x = 0; x < n; x++) acc[x] += wr * rk[x];
    }
}

/* The weights of one geometry, computed once and reused for every frame of that size. */
typedef struct {
    int64_t h, w, pixel, size, n;
    uint64_t div, half, inv;
    int fast;
    int64_t *ys, *yc, *xs, *xc;
    uint32_t *wy, *wx;
    u16x8 *wv;
} plan_t;

void edgecls_area_plan_free(plan_t *p) {
    if (!p) return;
    free(p->ys); free(p->wy); free(p->wx); free(p->wv); free(p);
}

/* A plan for h x w images with `pixel` bytes a pixel to size x size; NULL on bad
 * arguments or when out of memory. */
plan_t *edgecls_area_plan(int64_t h, int64_t w, int64_t pixel, int64_t size) {
    if (h < 1 || w < 1 || size < 1 || h > (1 << 20) || w > (1 << 20) || size > (1 << 16) || (pixel != 3 && pixel != 4))
        return NULL;
    plan_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    const int64_t gy = gcd64(h, size), gx = gcd64(w, size);
    p->h = h; p->w = w; p->pixel = pixel; p->size = size; p->n = w * pixel;
    p->div = (uint64_t)(h / gy) * (uint64_t)(w / gx);
    p->half = p->div / 2;
    p->fast = p->div < 256;
    p->inv = (((uint64_t)1 << 24) + p->div - 1) / p->div; /* the 24-bit reciprocal cols16 uses */
    p->ys = malloc(sizeof(int64_t) * 4 * (size_t)size);
    p->wy = malloc(sizeof(uint32_t) * (size_t)(h + size));
    p->wx = malloc(sizeof(uint32_t) * (size_t)(w + size));
    p->wv = p->fast ? malloc(sizeof(u16x8) * (size_t)(w + 2 * size)) : NULL;
    if (!p->ys || !p->wy || !p->wx || (p->fast && !p->wv)) {
        edgecls_area_plan_free(p);
        return NULL;
    }
    p->yc = p->ys + size; p->xs = p->ys + 2 * size; p->xc = p->ys + 3 * size;
    axis_weights(h, size, gy, p->ys, p->yc, p->wy);
    axis_weights(w, size, gx, p->xs, p->xc, p->wx);
    if (p->fast) {
        /* Column weights as vectors over pixel pairs: lanes [0, pixel) weigh pixel l,
         * lanes [pixel, 2 * pixel) pixel l + 1 (0 past the cell), the rest 0. */
        int64_t q = 0, at = 0;
        for (int64_t j = 0; j < size; j++) {
            for (int64_t l = 0; l < p->xc[j]; l += 2, q++) {
                u16x8 v = {0};
                for (int64_t c = 0; c < pixel; c++) {
                    v[c] = (uint16_t)p->wx[at + l];
                    v[pixel + c] = (uint16_t)(l + 1 < p->xc[j] ? p->wx[at + l + 1] : 0);
                }
                p->wv[q] = v;
            }
            at += p->xc[j];
        }
    }
    return p;
}

/* One output row from its row sums. P (3 or 4) and SWAP are constants after inlining.
 * Each cell's two pixel halves are added into lanes 0..2 (in output channel order) and
 * stored 3 lanes apart, the next cell overwriting the spare lanes; one vector pass then
 * divides the row: floor(m / div) = (m * mul) >> 24, exact for m < 256 * div, div < 256. */
static inline __attribute__((always_inline)) void cols16(const plan_t *p, const uint16_t *acc,
                                                         uint16_t *restrict sums, uint8_t *restrict out,
                                                         const int P, const int SWAP) {
    /* Locals: stores through a uint8_t pointer could alias the plan, so the compiler
     * would reload every field on each iteration and not vectorise the last loop. */
    const u16x8 *wq = p->wv;
    const int64_t size = p->size, *xs = p->xs, *xc = p->xc;
    const uint32_t half = (uint32_t)p->half, mul = (uint32_t)p->inv;
    for (int64_t j = 0; j < size; j++) {
        const uint16_t *a = acc + xs[j] * P;
        const int64_t count = xc[j];
        u16x8 s = {0};
        for (int64_t l = 0; l < count; l += 2) {
            u16x8 v;
            memcpy(&v, a + l * P, sizeof v);
            s += *wq++ * v;
        }
        u16x8 t;
        if (P == 3 && SWAP)
            t = __builtin_shufflevector(s, s, 2, 1, 0, 7, 7, 7, 7, 7) + __builtin_shufflevector(s, s, 5, 4, 3, 7, 7, 7, 7, 7);
        else if (P == 3)
            t = s + __builtin_shufflevector(s, s, 3, 4, 5, 7, 7, 7, 7, 7);
        else if (SWAP)
            t = __builtin_shufflevector(s, s, 2, 1, 0, 3, 3, 3, 3, 3) + __builtin_shufflevector(s, s, 6, 5, 4, 3, 3, 3, 3, 3);
        else
            t = s + __builtin_shufflevector(s, s, 4, 5, 6, 3, 3, 3, 3, 3);
        memcpy(sums + 3 * j, &t, sizeof t);
    }
    for (int64_t e = 0; e < 3 * size; e++) out[e] = (uint8_t)((((uint32_t)sums[e] + half) * mul) >> 24);
}

#define COLS(NAME, P, SWAP)                                                                     \
    EDGECLS_CLONES static void NAME(const plan_t *p, const uint16_t *acc, uint16_t *sums, uint8_t *out) { \
        cols16(p, acc, sums, out, P, SWAP);                                                     \
    }
COLS(cols16_3, 3, 0)
COLS(cols16_3s, 3, 1)
COLS(cols16_4, 4, 0)
COLS(cols16_4s, 4, 1)

/* Resize the image at src (rows `stride` bytes apart; the plan's height, width and pixel
 * size; the first 3 bytes of each pixel used) to size x size x 3 at dst, swapping the
 * first and third channel when swap_rb is set. Returns 0, -1 when out of memory, -2 on a
 * stride too small for the plan's width. */
int edgecls_area_run(const plan_t *p, const uint8_t *src, int64_t stride, uint8_t *dst, int swap_rb) {
    if (stride < p->n) return -2;
    const int o0 = swap_rb ? 2 : 0, o2 = swap_rb ? 0 : 2;
    /* 8 spare lanes: the column vectors read past the last pixel (weight 0 there). */
    void *acc = calloc((size_t)p->n + 8, p->fast ? sizeof(uint16_t) : sizeof(uint32_t));
    uint16_t *sums = p->fast ? malloc(sizeof(uint16_t) * (3 * (size_t)p->size + 8)) : NULL;
    if (!acc || (p->fast && !sums)) {
        free(acc);
        free(sums);
        return -1;
    }
    int64_t py = 0;
    for (int64_t i = 0; i < p->size; i++) {
        const uint8_t *band = src + p->ys[i] * stride;
        uint8_t *out = dst + i * p->size * 3;
        if (p->fast) {
            rows16(band, stride, p->yc[i], p->wy + py, p->n, acc);
            if (p->pixel == 3)
                (swap_rb ? cols16_3s : cols16_3)(p, acc, sums, out);
            else
                (swap_rb ? cols16_4s : cols16_4)(p, acc, sums, out);
        } else {
            const uint32_t *a32 = acc;
            rows32(band, stride, p->yc[i], p->wy + py, p->n, acc);
            int64_t at = 0;
            for (int64_t j = 0; j < p->size; j++) {
                const uint32_t *a = a32 + p->xs[j] * p->pixel;
                uint64_t s0 = 0, s1 = 0, s2 = 0;
                for (int64_t l = 0; l < p->xc[j]; l++, a += p->pixel) {
                    const uint64_t q = p->wx[at + l];
                    s0 += q * a[0];
                    s1 += q * a[1];
                    s2 += q * a[2];
                }
                at += p->xc[j];
                out[3 * j + o0] = (uint8_t)((s0 + p->half) / p->div);
                out[3 * j + 1] = (uint8_t)((s1 + p->half) / p->div);
                out[3 * j + o2] = (uint8_t)((s2 + p->half) / p->div);
            }
        }
        py += p->yc[i];
    }
    free(acc);
    free(sums);
    return 0;
}

/* One precision of the compiled engines; _fastconv.c includes this twice, with REAL = float
 * (SFX _f) and REAL = double (SFX _d). The algorithms are those of streamconv/dsp/engines.py,
 * whose docstrings explain them; only the loops moved here. */

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define T(name) CAT(name, SFX)

typedef struct {
    int offset, block, length, count, fft, bins, stride; /* stride: bins padded, complex */
    int ostride;                                         /* fft padded to 64-byte rows */
    int donor;                                           /* earlier tail with the same FFT */
    long long blocks;                                    /* blocks completed */
    void *r2c, *c2r;
    REAL *time;  /* forward input, fft */
    REAL *otime; /* inverse output, fft; the head's: one row of ostride per output */
    REAL *fdl;   /* frequency-domain delay line: (in, count, stride) complex */
    REAL *spec;  /* filter spectra: (paths, count, 4 * stride) pre-arranged (see cmac) */
    REAL *acc;   /* one output's spectrum: stride complex */
    const REAL **hp, **xp; /* mac's operands: (paths * count) pointers */
    REAL *dense;           /* MIMO spectra, laid out for mac_dense (else NULL) */
    REAL *acc_all;         /* MIMO: every output's spectrum, (groups * 4, 2 * stride) */
} T(Seg);

typedef struct {
    int partitioned, dense; /* dense: MIMO, path o * n_in + i from input i to output o */
    int n_in, n_out, n_paths;
    int *pin, *pout; /* input and output channel of each path, paths sorted by output */
    const FFTWApi *api;
    /* direct */
    int length;
    REAL *taps; /* (paths, length) */
    REAL *dbuf; /* (in, length - 1 + CHUNK): the last L - 1 frames, then the new ones */
    REAL *ybuf; /* (out, CHUNK) */
    /* partitioned */
    int nseg, base, keep, reach, hcap, acap;
    long long time, hstart, astart;
    T(Seg) *segs;
    REAL *hist;  /* (in, hcap): input from absolute frame hstart */
    REAL *accum; /* (out, acap): tail output from absolute frame astart */
} T(Eng);

typedef REAL T(vec) __attribute__((vector_size(32)));
#define VN ((int)(32 / sizeof(REAL)))

/* Complex products on interleaved (re, im) vectors. Filter spectra are stored pre-arranged, per
 * vector of x: (hr, hr, ...) then (-hi, hi, ...), so h * x = hr2 * x + hi2 * swap(x) costs one
 * in-register swap, two multiplies and two adds per VN / 2 bins. Rows are padded to whole
 * vectors (stride), the padding zero. */
typedef MASKINT T(mask) __attribute__((vector_size(32)));
#if defined(__clang__)
#define T_SWAP(v) (sizeof(REAL) == 4 ? __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6) \
                                    : __builtin_shufflevector(v, v, 1, 0, 3, 2))
#define T_EVEN(v) (sizeof(REAL) == 4 ? __builtin_shufflevector(v, v, 0, 0, 2, 2, 4, 4, 6, 6) \
                                    : __builtin_shufflevector(v, v, 0, 0, 2, 2))
#define T_ODD(v) (sizeof(REAL) == 4 ? __builtin_shufflevector(v, v, 1, 1, 3, 3, 5, 5, 7, 7) \
                                   : __builtin_shufflevector(v, v, 1, 1, 3, 3))
#else
#define T_SWAP(v) __builtin_shuffle(v, SWAPMASK)
#define T_EVEN(v) __builtin_shuffle(v, EVENMASK)
#define T_ODD(v) __builtin_shuffle(v, ODDMASK)
#endif

/* acc = sum over q of hs[q] * xs[q], over `reals` interleaved reals (a multiple of 2 * VN);
 * the hs pre-arranged. Two vectors of the sum stay in registers while q runs: per product only
 * h and x are loaded, and acc is written once. */
static TARGETS void T(mac_pairs)(REAL *restrict acc, const REAL *const *hs, const REAL *const *xs,
                                 int npairs, int reals) {
    for (int b = 0; b < reals; b += 2 * VN) {
        T(vec) a0 = {0}, a1 = {0};
        for (int q = 0; q < npairs; q++) {
            const REAL *h = hs[q] + 2 * b, *x = xs[q] + b;
            T(vec) x0, x1, hr0, hi0, hr1, hi1;
            memcpy(&x0, x, sizeof x0);
            memcpy(&x1, x + VN, sizeof x1);
            memcpy(&hr0, h, sizeof hr0);
            memcpy(&hi0, h + VN, sizeof hi0);
            memcpy(&hr1, h + 2 * VN, sizeof hr1);
            memcpy(&hi1, h + 3 * VN, sizeof hi1);
            a0 += hr0 * x0 + hi0 * T_SWAP(x0);
            a1 += hr1 * x1 + hi1 * T_SWAP(x1);
        }
        memcpy(acc + b, &a0, sizeof a0);
        memcpy(acc + b + VN, &a1, sizeof a1);
    }
}

/* MIMO: every output's spectrum at once. Per vector of bins, each input's X (and its swapped,
 * signed copy) is loaded once and multiplied into 4 outputs' sums held in registers; the filter
 * spectra, the bulk of the memory read, are plain interleaved complex (half the bytes of the
 * pre-arranged ones) in exactly the order this loop reads them. */
static TARGETS void T(mac_dense)(REAL *restrict acc, size_t row, const REAL *restrict h,
                                 const REAL *const *xp, int nik, int reals, int groups) {
    const T(vec) sign = SIGNS;
    for (int gr = 0; gr < groups; gr++) {
        for (int b = 0; b < reals; b += VN) {
            T(vec) a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int q = 0; q < nik; q++, h += 4 * VN) {
                T(vec) x, h0, h1, h2, h3;
                memcpy(&x, xp[q] + b, sizeof x);
                T(vec) xs = T_SWAP(x) * sign; /* (-xi, xr) */
                memcpy(&h0, h, sizeof h0);
                memcpy(&h1, h + VN, sizeof h1);
                memcpy(&h2, h + 2 * VN, sizeof h2);
                memcpy(&h3, h + 3 * VN, sizeof h3);
                a0 += T_EVEN(h0) * x + T_ODD(h0) * xs;
                a1 += T_EVEN(h1) * x + T_ODD(h1) * xs;
                a2 += T_EVEN(h2) * x + T_ODD(h2) * xs;
                a3 += T_EVEN(h3) * x + T_ODD(h3) * xs;
            }
            REAL *out = acc + (size_t)gr * 4 * row + b;
            memcpy(out, &a0, sizeof a0);
            memcpy(out + row, &a1, sizeof a1);
            memcpy(out + 2 * row, &a2, sizeof a2);
            memcpy(out + 3 * row, &a3, sizeof a3);
        }
    }
}

/* y[r] += sum_k h[k] * xs[r - k] for r < m; xs[-k] for k < L is history. 4 vectors of
 * outputs stay in registers while k runs (no reduction, so nothing needs reassociating). */
static inline __attribute__((always_inline)) void T(add_store)(REAL *p, T(vec) a) {
    T(vec) v;
    memcpy(&v, p, sizeof v);
    v += a;
    memcpy(p, &v, sizeof v);
}
static TARGETS void T(direct_path)(const REAL *restrict h, int L, const REAL *restrict xs, int m,
                                   REAL *restrict y) {
    int r0 = 0;
    for (; r0 + 4 * VN <= m; r0 += 4 * VN) {
        T(vec) a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        const REAL *s = xs + r0;
        for (int k = 0; k < L; k++, s--) {
            REAL c = h[k];
            T(vec) v0, v1, v2, v3;
            memcpy(&v0, s, sizeof v0); /* unaligned vector loads */
            memcpy(&v1, s + VN, sizeof v1);
            memcpy(&v2, s + 2 * VN, sizeof v2);
            memcpy(&v3, s + 3 * VN, sizeof v3);
            a0 += c * v0;
            a1 += c * v1;
            a2 += c * v2;
            a3 += c * v3;
        }
        T(add_store)(y + r0, a0);
        T(add_store)(y + r0 + VN, a1);
        T(add_store)(y + r0 + 2 * VN, a2);
        T(add_store)(y + r0 + 3 * VN, a3);
    }
    for (; r0 + VN <= m; r0 += VN) {
        T(vec) a0 = {0};
        const REAL *s = xs + r0;
        for (int k = 0; k < L; k++, s--) {
            T(vec) v0;
            memcpy(&v0, s, sizeof v0);
            a0 += h[k] * v0;
        }
        T(add_store)(y + r0, a0);
    }
    for (; r0 < m; r0++) {
        REAL a = 0;
        for (int k = 0; k < L; k++) a += h[k] * xs[r0 - k];
        y[r0] += a;
    }
}

static void T(eng_free)(T(Eng) *e) {
    if (!e) return;
    for (int s = 0; s < e->nseg; s++) {
        T(Seg) *g = &e->segs[s];
        if (g->r2c) e->api->destroy(g->r2c);
        if (g->c2r) e->api->destroy(g->c2r);
        free(g->time);
        free(g->otime);
        free(g->fdl);
        free(g->spec);
        free(g->acc);
        free(g->hp);
        free(g->xp);
        free(g->dense);
        free(g->acc_all);
    }
    free(e->segs);
    free(e->pin);
    free(e->pout);
    free(e->taps);
    free(e->dbuf);
    free(e->ybuf);
    free(e->hist);
    free(e->accum);
    free(e);
}

static void T(eng_reset)(T(Eng) *e) {
    if (!e->partitioned) {
        memset(e->dbuf, 0, sizeof(REAL) * e->n_in * (e->length - 1 + CHUNK));
        return;
    }
    memset(e->hist, 0, sizeof(REAL) * e->n_in * e->hcap);
    memset(e->accum, 0, sizeof(REAL) * e->n_out * e->acap);
    e->time = 0;
    e->hstart = -e->keep;
    e->astart = 0;
    for (int s = 0; s < e->nseg; s++) {
        T(Seg) *g = &e->segs[s];
        memset(g->fdl, 0, sizeof(REAL) * 2 * (size_t)e->n_in * g->count * g->stride);
        memset(g->time, 0, sizeof(REAL) * g->fft);
        g->blocks = 0;
    }
}

static T(Eng) *T(eng_alloc)(int n_in, int n_out, int n_paths, const int *pin, const int *pout) {
    T(Eng) *e = calloc(1, sizeof(T(Eng)));
    if (!e) return NULL;
    e->n_in = n_in;
    e->n_out = n_out;
    e->n_paths = n_paths;
    e->pin = malloc(sizeof(int) * n_paths);
    e->pout = malloc(sizeof(int) * n_paths);
    if (!e->pin || !e->pout) return e;
    memcpy(e->pin, pin, sizeof(int) * n_paths);
    memcpy(e->pout, pout, sizeof(int) * n_paths);
    return e;
}

/* taps: (paths, length) */
static T(Eng) *T(direct_new)(int n_in, int n_out, int n_paths, const int *pin, const int *pout,
                             const REAL *taps, int length) {
    T(Eng) *e = T(eng_alloc)(n_in, n_out, n_paths, pin, pout);
    if (!e) return NULL;
    e->length = length;
    e->taps = amalloc(sizeof(REAL) * (size_t)n_paths * length);
    e->dbuf = amalloc(sizeof(REAL) * (size_t)n_in * (length - 1 + CHUNK));
    e->ybuf = amalloc(sizeof(REAL) * (size_t)n_out * CHUNK);
    if (!e->pin || !e->pout || !e->taps || !e->dbuf || !e->ybuf) {
        T(eng_free)(e);
        return NULL;
    }
    memcpy(e->taps, taps, sizeof(REAL) * (size_t)n_paths * length);
    T(eng_reset)(e);
    return e;
}

/* Segment s: geometry in geo[5 * s ...] = offset, block, length, count, fft; its spectra
 * spec[s] (paths, count, fft / 2 + 1) complex. Returns NULL on allocation failure. */
static T(Eng) *T(part_new)(int n_in, int n_out, int n_paths, const int *pin, const int *pout,
                           int nseg, const int *geo, const REAL *const *spec, unsigned flags,
                           const FFTWApi *api) {
    T(Eng) *e = T(eng_alloc)(n_in, n_out, n_paths, pin, pout);
    if (!e) return NULL;
    e->partitioned = 1;
    e->api = api;
    e->segs = calloc(nseg, sizeof(T(Seg)));
    if (!e->segs || !e->pin || !e->pout) {
        T(eng_free)(e);
        return NULL;
    }
    e->nseg = nseg;
    e->dense = n_out >= 2 && n_paths == n_in * n_out;
    for (int p = 0; e->dense && p < n_paths; p++)
        e->dense = pin[p] == p % n_in && pout[p] == p / n_in;
    e->base = geo[1];
    e->keep = geo[4];
    e->reach = 0;
    for (int s = 0; s < nseg; s++) {
        T(Seg) *g = &e->segs[s];
        g->offset = geo[5 * s];
        g->block = geo[5 * s + 1];
        g->length = geo[5 * s + 2];
        g->count = geo[5 * s + 3];
        g->fft = geo[5 * s + 4];
        g->bins = g->fft / 2 + 1;
        g->stride = (g->bins + 7) & ~7; /* every slot starts 64-byte aligned */
        g->donor = -1;
        if (s > 0) {
            if (g->block > e->keep) e->keep = g->block;
            if (g->offset + g->fft > e->reach) e->reach = g->offset + g->fft;
            for (int d = 1; d < s; d++) {
                if (e->segs[d].block == g->block && e->segs[d].fft == g->fft) {
                    g->donor = d;
                    break;
                }
            }
        }
        size_t slots = (size_t)g->count * g->stride;
        g->time = amalloc(sizeof(REAL) * g->fft);
        g->ostride = (g->fft + 15) & ~15; /* rows stay aligned as FFTW planned the first */
        g->otime = amalloc(sizeof(REAL) * g->ostride * (s == 0 ? n_out : 1));
        g->fdl = amalloc(sizeof(REAL) * 2 * n_in * slots);
        g->spec = amalloc(sizeof(REAL) * 4 * (e->dense ? 1 : n_paths * slots));
        g->acc = amalloc(sizeof(REAL) * 2 * g->stride);
        g->hp = malloc(sizeof(REAL *) * n_paths * g->count);
        g->xp = malloc(sizeof(REAL *) * n_paths * g->count);
        if (!g->time || !g->otime || !g->fdl || !g->spec || !g->acc || !g->hp || !g->xp) {
            T(eng_free)(e);
            return NULL;
        }
        memset(g->acc, 0, sizeof(REAL) * 2 * g->stride);
        if (e->dense) {
            /* mac_dense's order: (group, bin vector, input * count + partition, 4 outputs, VN) */
            int groups = (n_out + 3) / 4, nik = n_in * g->count, chunks = 2 * g->stride / VN;
            size_t total = (size_t)groups * chunks * nik * 4 * VN;
            g->dense = amalloc(sizeof(REAL) * total);
            g->acc_all = amalloc(sizeof(REAL) * groups * 4 * 2 * g->stride);
            if (!g->dense || !g->acc_all) {
                T(eng_free)(e);
                return NULL;
            }
            memset(g->dense, 0, sizeof(REAL) * total);
            for (int o = 0; o < n_out; o++)
                for (int q = 0; q < nik; q++) {
                    int i = q / g->count, k = q % g->count, p = o * n_in + i;
                    const REAL *src = spec[s] + 2 * ((size_t)p * g->count + k) * g->bins;
                    for (int r = 0; r < 2 * g->bins; r++) {
                        size_t at = (((size_t)(o / 4) * chunks + r / VN) * nik + q) * 4 + o % 4;
                        g->dense[at * VN + r % VN] = src[r];
                    }
                }
        }
        if (!e->dense) memset(g->spec, 0, sizeof(REAL) * 4 * n_paths * slots);
        for (size_t row = 0; !e->dense && row < (size_t)n_paths * g->count; row++) {
            const REAL *src = spec[s] + 2 * row * g->bins;
            REAL *dst = g->spec + 4 * row * g->stride;
            for (int b = 0; b < g->bins; b++) {
                int v = 2 * b / VN, lane = 2 * b % VN; /* x's vector and lane of bin b */
                REAL *hr = dst + 2 * v * VN + lane, *hi = hr + VN;
                hr[0] = hr[1] = src[2 * b];
                hi[0] = -src[2 * b + 1];
                hi[1] = src[2 * b + 1];
            }
        }
        g->r2c = api->plan_r2c(g->fft, g->time, g->fdl, flags);
        g->c2r = api->plan_c2r(g->fft, g->acc, g->otime, flags);
        if (!g->r2c || !g->c2r) {
            T(eng_free)(e);
            return NULL;
        }
    }
    if (nseg > 1) e->reach += e->base;
    e->hcap = 2 * e->keep + e->base;
    e->acap = 2 * e->reach;
    e->hist = amalloc(sizeof(REAL) * (size_t)n_in * e->hcap);
    e->accum = amalloc(sizeof(REAL) * (size_t)n_out * (e->acap ? e->acap : 1));
    if (!e->hist || !e->accum) {
        T(eng_free)(e);
        return NULL;
    }
    T(eng_reset)(e);
    return e;
}

#define XAT(i, c) (*(const REAL *)(x + (i) * sxf + (c) * sxc))
#define YAT(i, c) (*(REAL *)(y + (i) * syf + (c) * syc))

static void T(direct_process)(T(Eng) *e, const char *x, Py_ssize_t n, Py_ssize_t sxf,
                              Py_ssize_t sxc, char *y, Py_ssize_t syf, Py_ssize_t syc) {
    int hist = e->length - 1, cap = hist + CHUNK;
    for (Py_ssize_t i = 0; i < n; i += CHUNK) {
        int m = n - i < CHUNK ? (int)(n - i) : CHUNK;
        for (int c = 0; c < e->n_in; c++) {
            REAL *b = e->dbuf + (size_t)c * cap + hist;
            for (int r = 0; r < m; r++) b[r] = XAT(i + r, c);
        }
        memset(e->ybuf, 0, sizeof(REAL) * e->n_out * CHUNK);
        for (int p = 0; p < e->n_paths; p++)
            T(direct_path)(e->taps + (size_t)p * e->length, e->length,
                           e->dbuf + (size_t)e->pin[p] * cap + hist, m,
                           e->ybuf + (size_t)e->pout[p] * CHUNK);
        for (int o = 0; o < e->n_out; o++) {
            const REAL *src = e->ybuf + (size_t)o * CHUNK;
            for (int r = 0; r < m; r++) YAT(i + r, o) = src[r];
        }
        for (int c = 0; c < e->n_in; c++) {
            REAL *b = e->dbuf + (size_t)c * cap;
            memmove(b, b + m, sizeof(REAL) * hist);
        }
    }
}

/* g->acc = sum over the paths into output o and partitions i of H[p, i] * X[j - i], where the
 * current block j sits in delay-line slot `slot`. */
static void T(mac)(const T(Eng) *e, T(Seg) *g, int o, int slot) {
    int n = 0, K = g->count;
    if (e->dense) { /* every output at once, at o == 0 */
        if (o == 0) {
            for (int i = 0; i < e->n_in; i++)
                for (int k = 0; k < K; k++) {
                    int s = slot - k;
                    if (s < 0) s += K;
                    g->xp[i * K + k] = g->fdl + ((size_t)i * K + s) * 2 * g->stride;
                }
            T(mac_dense)(g->acc_all, 2 * (size_t)g->stride, g->dense, g->xp, e->n_in * K,
                         2 * g->stride, (e->n_out + 3) / 4);
        }
        return;
    }
    size_t st = 2 * (size_t)g->stride;
    for (int p = 0; p < e->n_paths; p++) {
        if (e->pout[p] != o) continue;
        const REAL *h = g->spec + (size_t)p * K * 2 * st;
        const REAL *xs = g->fdl + (size_t)e->pin[p] * K * st;
        for (int i = 0; i < K; i++) {
            int s = slot - i;
            if (s < 0) s += K;
            g->hp[n] = h + i * 2 * st;
            g->xp[n++] = xs + s * st;
        }
    }
    T(mac_pairs)(g->acc, g->hp, g->xp, n, (int)st);
}

/* Output o's spectrum after mac. */
static inline REAL *T(spectrum)(const T(Eng) *e, T(Seg) *g, int o) {
    return e->dense ? g->acc_all + (size_t)o * 2 * g->stride : g->acc;
}

static void T(make_room)(T(Eng) *e, long long bstart) {
    long long end = bstart + e->base;
    if (end > e->hstart + e->hcap) {
        long long from = end - e->keep; /* the oldest frame a window ending here reads */
        size_t len = (size_t)(e->time - from);
        for (int c = 0; c < e->n_in; c++) {
            REAL *h = e->hist + (size_t)c * e->hcap;
            memmove(h, h + (from - e->hstart), sizeof(REAL) * len);
        }
        e->hstart = from;
    }
    if (e->nseg > 1 && bstart + e->reach > e->astart + e->acap) {
        size_t off = (size_t)(bstart - e->astart), width = e->acap - off;
        for (int o = 0; o < e->n_out; o++) {
            REAL *a = e->accum + (size_t)o * e->acap;
            memmove(a, a + off, sizeof(REAL) * width);
            memset(a + width, 0, sizeof(REAL) * off);
        }
        e->astart = bstart;
    }
}

/* The later segment g: the block of g->block frames ending at tend just completed. */
static void T(run_tail)(T(Eng) *e, T(Seg) *g, long long tend) {
    const FFTWApi *api = e->api;
    long long bs = tend - g->block;
    int K = g->count, slot = (int)(g->blocks % K);
    size_t st = 2 * (size_t)g->stride;
    for (int c = 0; c < e->n_in; c++) {
        REAL *dst = g->fdl + ((size_t)c * K + slot) * st;
        if (g->donor >= 0) {
            const T(Seg) *d = &e->segs[g->donor];
            int dslot = (int)((d->blocks - 1) % d->count);
            memcpy(dst, d->fdl + ((size_t)c * d->count + dslot) * st, sizeof(REAL) * st);
        } else {
            memcpy(g->time, e->hist + (size_t)c * e->hcap + (bs - e->hstart),
                   sizeof(REAL) * g->block); /* the rest of g->time stays zero */
            api->exec_r2c(g->r2c, g->time, dst);
        }
    }
    int len = g->block + g->length - 1;
    for (int o = 0; o < e->n_out; o++) {
        T(mac)(e, g, o, slot);
        api->exec_c2r(g->c2r, T(spectrum)(e, g, o), g->otime);
        REAL *a = e->accum + (size_t)o * e->acap + (bs + g->offset - e->astart);
        for (int r = 0; r < len; r++) a[r] += g->otime[r];
    }
    g->blocks++;
}

/* Interleaved stereo to two rows and back. Separate functions: gcc vectorizes these loops
 * through restrict parameters, not through restrict locals. */
static TARGETS void T(split2)(const REAL *restrict src, REAL *restrict d0, REAL *restrict d1,
                              size_t m) {
    for (size_t r = 0; r < m; r++) {
        d0[r] = src[2 * r];
        d1[r] = src[2 * r + 1];
    }
}
static TARGETS void T(merge2)(REAL *restrict dst, const REAL *restrict s0,
                              const REAL *restrict s1, size_t m) {
    for (size_t r = 0; r < m; r++) {
        dst[2 * r] = s0[r];
        dst[2 * r + 1] = s1[r];
    }
}
static TARGETS void T(merge2_add)(REAL *restrict dst, const REAL *restrict s0,
                                  const REAL *restrict s1, const REAL *restrict a0,
                                  const REAL *restrict a1, size_t m) {
    for (size_t r = 0; r < m; r++) {
        dst[2 * r] = s0[r] + a0[r];
        dst[2 * r + 1] = s1[r] + a1[r];
    }
}

/* The m new frames of x (rows sxf bytes apart, channels sxc) into the history at column at.
 * Interleaved stereo, what a file job passes, has its own loop, which the compiler vectorizes;
 * the general one reads x a row at a time. */
static void T(copy_in)(T(Eng) *e, const char *x, int m, Py_ssize_t sxf, Py_ssize_t sxc,
                               size_t at) {
    const Py_ssize_t item = sizeof(REAL);
    if (e->n_in == 2 && sxc == item && sxf == 2 * item) {
        T(split2)((const REAL *)x, e->hist + at, e->hist + e->hcap + at, m);
        return;
    }
    if (e->n_in == 1 && sxf == item) {
        memcpy(e->hist + at, x, sizeof(REAL) * m);
        return;
    }
    for (int r = 0; r < m; r++)
        for (int c = 0; c < e->n_in; c++)
            e->hist[(size_t)c * e->hcap + at + r] = XAT(r, c);
}

/* Output frames: the head's inverse FFTs from column from of each output's row, plus, when
 * there are later segments, their accumulator from column at; into y as copy_in reads x. */
static void T(copy_out)(T(Eng) *e, char *y, int m, Py_ssize_t syf, Py_ssize_t syc,
                                int from, size_t at) {
    const Py_ssize_t item = sizeof(REAL);
    const T(Seg) *head = &e->segs[0];
    const int tails = e->nseg > 1;
    if (e->n_out == 2 && syc == item && syf == 2 * item) {
        const REAL *s0 = head->otime + from, *s1 = s0 + head->ostride;
        if (tails)
            T(merge2_add)((REAL *)y, s0, s1, e->accum + at, e->accum + e->acap + at, m);
        else
            T(merge2)((REAL *)y, s0, s1, m);
        return;
    }
    for (int o = 0; o < e->n_out; o++) {
        const REAL *src = head->otime + (size_t)o * head->ostride + from;
        if (tails) {
            const REAL *a = e->accum + (size_t)o * e->acap + at;
            for (int r = 0; r < m; r++) YAT(r, o) = src[r] + a[r];
        } else {
            for (int r = 0; r < m; r++) YAT(r, o) = src[r];
        }
    }
}

static void T(part_process)(T(Eng) *e, const char *x, Py_ssize_t n, Py_ssize_t sxf,
                            Py_ssize_t sxc, char *y, Py_ssize_t syf, Py_ssize_t syc) {
    const FFTWApi *api = e->api;
    T(Seg) *head = &e->segs[0];
    int base = e->base, F = head->fft, K = head->count;
    size_t st = 2 * (size_t)head->stride;
    Py_ssize_t i = 0;
    while (i < n) {
        long long t = e->time;
        int phase = (int)(t % base);
        int m = n - i < base - phase ? (int)(n - i) : base - phase;
        long long bstart = t - phase, tend = t + m;
        T(make_room)(e, bstart);
        T(copy_in)(e, x + i * sxf, m, sxf, sxc, (size_t)(t - e->hstart));
        int complete = m == base - phase;
        /* overlap-save head: the F frames ending at the block's end, those not arrived zero */
        int received = F - base + phase + m;
        long long wstart = bstart + base - F;
        int slot = (int)(head->blocks % K);
        for (int c = 0; c < e->n_in; c++) {
            memcpy(head->time, e->hist + (size_t)c * e->hcap + (wstart - e->hstart),
                   sizeof(REAL) * received);
            memset(head->time + received, 0, sizeof(REAL) * (F - received));
            api->exec_r2c(head->r2c, head->time, head->fdl + ((size_t)c * K + slot) * st);
        }
        for (int o = 0; o < e->n_out; o++) {
            T(mac)(e, head, o, slot);
            api->exec_c2r(head->c2r, T(spectrum)(e, head, o),
                          head->otime + (size_t)o * head->ostride);
        }
        T(copy_out)(e, y + i * syf, m, syf, syc, F - base + phase, (size_t)(t - e->astart));
        if (complete) {
            head->blocks++;
            for (int s = 1; s < e->nseg; s++)
                if (tend % e->segs[s].block == 0) T(run_tail)(e, &e->segs[s], tend);
        }
        e->time = tend;
        i += m;
    }
}

#undef XAT
#undef VN
#undef T_SWAP
#undef T_EVEN
#undef T_ODD
#undef YAT
#undef T
#undef CAT
#undef CAT2

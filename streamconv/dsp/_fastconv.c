/* streamconv.dsp._fastconv: the per-block loops of the streaming FIR engines in C.
 *
 * A process() call at 32-256 frames does ~2 us of arithmetic; in numpy it took ~12 us, nearly
 * all of it the overhead of ten numpy calls. Here one call does the whole block: copy-in, the
 * overlap-save head's FFTs, the frequency-domain delay line's multiply-accumulate, the later
 * partitions, the copy-out (and the direct form for short filters).
 *
 * FFTs: FFTW, the very library pyFFTW loaded (its wheel bundles one). Its functions are looked
 * up among the shared objects already loaded in the process (dl_iterate_phdr + dlopen
 * RTLD_NOLOAD), so nothing here links against FFTW or needs its headers, and the wisdom
 * streamconv saves and loads through pyFFTW is the wisdom these plans use. Plans are made while
 * holding the GIL. No memory is ever made executable (systemd's MemoryDenyWriteExecute=yes).
 *
 * Built at install as an optional extension (setup.py); without it streamconv runs the numpy
 * engines of streamconv/dsp/engines.py, which compute the same thing.
 */
#define PY_SSIZE_T_CLEAN
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <Python.h>
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 256 /* direct engine: frames per inner pass */

/* Hot loops are compiled twice, baseline x86-64 and AVX2, picked at load by the CPU: an
 * installed wheel runs on any x86-64 and still gets 8-wide float arithmetic where it can. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TARGETS __attribute__((target_clones("avx2", "default")))
#else
#define TARGETS
#endif

typedef struct {
    void *(*plan_r2c)(int, void *, void *, unsigned);
    void *(*plan_c2r)(int, void *, void *, unsigned);
    void (*exec_r2c)(void *, void *, void *);
    void (*exec_c2r)(void *, void *, void *);
    void (*destroy)(void *);
} FFTWApi;

static FFTWApi api_f, api_d;
static int have_f, have_d;

static void *amalloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) return NULL;
    return p;
}

#define REAL float
#define SFX _f
#define MASKINT int32_t
#define SWAPMASK ((mask_f){1, 0, 3, 2, 5, 4, 7, 6})
#define EVENMASK ((mask_f){0, 0, 2, 2, 4, 4, 6, 6})
#define ODDMASK ((mask_f){1, 1, 3, 3, 5, 5, 7, 7})
#define SIGNS {-1, 1, -1, 1, -1, 1, -1, 1}
#include "_fastconv_impl.h"
#undef REAL
#undef SFX
#undef MASKINT
#undef SWAPMASK
#undef EVENMASK
#undef ODDMASK
#undef SIGNS
#define REAL double
#define SFX _d
#define MASKINT int64_t
#define SWAPMASK ((mask_d){1, 0, 3, 2})
#define EVENMASK ((mask_d){0, 0, 2, 2})
#define ODDMASK ((mask_d){1, 1, 3, 3})
#define SIGNS {-1, 1, -1, 1}
#include "_fastconv_impl.h"
#undef REAL
#undef SFX
#undef MASKINT
#undef SWAPMASK
#undef EVENMASK
#undef ODDMASK
#undef SIGNS

/* -- finding FFTW in the process -------------------------------------------------------- */

typedef struct {
    const char *symbol;
    void *found;
} Lookup;

static int lookup_cb(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    Lookup *l = data;
    const char *name = info->dlpi_name;
    if (!name || !*name || !strstr(name, "fftw")) return 0;
    void *h = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) return 0;
    l->found = dlsym(h, l->symbol);
    dlclose(h); /* RTLD_NOLOAD took a reference; the library stays loaded by its owner */
    return l->found != NULL;
}

static void *find_symbol(const char *symbol) {
    Lookup l = {symbol, NULL};
    dl_iterate_phdr(lookup_cb, &l);
    return l.found;
}

static int load_api(FFTWApi *api, const char *prefix) {
    static const char *names[] = {"plan_dft_r2c_1d", "plan_dft_c2r_1d", "execute_dft_r2c",
                                  "execute_dft_c2r", "destroy_plan"};
    void *ptrs[5];
    char symbol[64];
    for (int i = 0; i < 5; i++) {
        snprintf(symbol, sizeof symbol, "%s_%s", prefix, names[i]);
        ptrs[i] = find_symbol(symbol);
        if (!ptrs[i]) return 0;
    }
    *(void **)&api->plan_r2c = ptrs[0];
    *(void **)&api->plan_c2r = ptrs[1];
    *(void **)&api->exec_r2c = ptrs[2];
    *(void **)&api->exec_c2r = ptrs[3];
    *(void **)&api->destroy = ptrs[4];
    return 1;
}

/* -- the Python type ---------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD int dbl;
    int n_in, n_out;
    void *impl;
    PyObject *empty, *dtype; /* numpy.empty and the dtype, to make process()'s output */
    int busy;                /* a process() call runs without the GIL */
} EngineObject;

/* Calls of at least this many frames run without the GIL, so the read-ahead and write-behind
 * threads of a file job work while the engine does (as they did while pyFFTW's executes ran).
 * Smaller calls keep it: handing the GIL back and forth costs more than such a call. */
#define NOGIL_FRAMES 2048

static void engine_dealloc(EngineObject *self) {
    if (self->dbl)
        eng_free_d(self->impl);
    else
        eng_free_f(self->impl);
    Py_XDECREF(self->empty);
    Py_XDECREF(self->dtype);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int check_frames(Py_buffer *b, const char *what, int channels, int dbl) {
    Py_ssize_t item = dbl ? 8 : 4;
    const char *f = b->format ? b->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    if (b->ndim != 2 || b->itemsize != item || f[0] != (dbl ? 'd' : 'f') || f[1] ||
        b->shape[1] != channels) {
        PyErr_Format(PyExc_ValueError, "%s must be (frames, %d) %s", what, channels,
                     dbl ? "float64" : "float32");
        return 0;
    }
    return 1;
}

/* process(x[, out]): filter the (n, in) frames x into out, (n, out), made if not given (with
 * numpy.empty: one call from here instead of a Python function around this one). */
static PyObject *engine_process(EngineObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 1 && nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "process(x[, out]) takes 1 or 2 arguments");
        return NULL;
    }
    Py_buffer x, y;
    if (PyObject_GetBuffer(args[0], &x, PyBUF_STRIDES | PyBUF_FORMAT) < 0) return NULL;
    PyObject *out;
    if (nargs == 2) {
        out = Py_NewRef(args[1]);
    } else {
        if (x.ndim != 2) {
            PyBuffer_Release(&x);
            PyErr_SetString(PyExc_ValueError, "x must be (frames, channels)");
            return NULL;
        }
        PyObject *shape = Py_BuildValue("(nn)", x.shape[0], (Py_ssize_t)self->n_out);
        out = shape ? PyObject_CallFunctionObjArgs(self->empty, shape, self->dtype, NULL) : NULL;
        Py_XDECREF(shape);
        if (!out) {
            PyBuffer_Release(&x);
            return NULL;
        }
    }
    if (PyObject_GetBuffer(out, &y, PyBUF_STRIDES | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&x);
        Py_DECREF(out);
        return NULL;
    }
    PyObject *result = NULL;
    if (check_frames(&x, "x", self->n_in, self->dbl) &&
        check_frames(&y, "out", self->n_out, self->dbl)) {
        if (x.shape[0] != y.shape[0]) {
            PyErr_SetString(PyExc_ValueError, "x and out must have the same number of frames");
        } else if (self->busy) {
            PyErr_SetString(PyExc_RuntimeError, "the engine is running in another thread");
        } else {
            Py_ssize_t n = x.shape[0];
            const char *xp = x.buf;
            char *yp = y.buf;
            PyThreadState *ts = NULL;
            self->busy = 1;
            if (n >= NOGIL_FRAMES) ts = PyEval_SaveThread();
            if (self->dbl) {
                Eng_d *e = self->impl;
                if (e->partitioned)
                    part_process_d(e, xp, n, x.strides[0], x.strides[1], yp, y.strides[0],
                                   y.strides[1]);
                else
                    direct_process_d(e, xp, n, x.strides[0], x.strides[1], yp, y.strides[0],
                                     y.strides[1]);
            } else {
                Eng_f *e = self->impl;
                if (e->partitioned)
                    part_process_f(e, xp, n, x.strides[0], x.strides[1], yp, y.strides[0],
                                   y.strides[1]);
                else
                    direct_process_f(e, xp, n, x.strides[0], x.strides[1], yp, y.strides[0],
                                     y.strides[1]);
            }
            if (ts) PyEval_RestoreThread(ts);
            self->busy = 0;
            result = Py_NewRef(out);
        }
    }
    PyBuffer_Release(&x);
    PyBuffer_Release(&y);
    Py_DECREF(out);
    return result;
}

static PyObject *engine_reset(EngineObject *self, PyObject *unused) {
    (void)unused;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the engine is running in another thread");
        return NULL;
    }
    if (self->dbl)
        eng_reset_d(self->impl);
    else
        eng_reset_f(self->impl);
    Py_RETURN_NONE;
}

static PyMethodDef engine_methods[] = {
    {"process", (PyCFunction)(void (*)(void))engine_process, METH_FASTCALL,
     "process(x[, out]) -> out: filter the (n, in) frames x into the (n, out) array out"},
    {"reset", (PyCFunction)engine_reset, METH_NOARGS, "forget the stream"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "streamconv.dsp._fastconv.Engine",
    .tp_basicsize = sizeof(EngineObject),
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A compiled streaming engine; made by direct() or partitioned().",
    .tp_methods = engine_methods,
};

/* Paths: two int32 buffers of the same length. */
static int get_paths(PyObject *pin, PyObject *pout, Py_buffer *bi, Py_buffer *bo, int n_in,
                     int n_out) {
    if (PyObject_GetBuffer(pin, bi, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return 0;
    if (PyObject_GetBuffer(pout, bo, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(bi);
        return 0;
    }
    int ok = bi->itemsize == 4 && bo->itemsize == 4 && bi->len == bo->len && bi->len > 0;
    for (Py_ssize_t p = 0; ok && p < bi->len / 4; p++) {
        int i = ((int *)bi->buf)[p], o = ((int *)bo->buf)[p];
        ok = i >= 0 && i < n_in && o >= 0 && o < n_out;
    }
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "paths must be int32 channel indices");
        PyBuffer_Release(bi);
        PyBuffer_Release(bo);
    }
    return ok;
}

static EngineObject *new_engine(int dbl, int n_in, int n_out, PyObject *empty, PyObject *dtype) {
    EngineObject *self = PyObject_New(EngineObject, &EngineType);
    if (!self) return NULL;
    self->dbl = dbl;
    self->n_in = n_in;
    self->n_out = n_out;
    self->impl = NULL;
    self->empty = Py_NewRef(empty);
    self->dtype = Py_NewRef(dtype);
    self->busy = 0;
    return self;
}

/* direct(double, n_in, n_out, path_in, path_out, taps, empty, dtype): taps (paths, L)
 * contiguous; empty(shape, dtype) makes process()'s outputs. */
static PyObject *mod_direct(PyObject *mod, PyObject *args) {
    (void)mod;
    int dbl, n_in, n_out;
    PyObject *pin, *pout, *taps, *empty, *dtype;
    if (!PyArg_ParseTuple(args, "piiOOOOO", &dbl, &n_in, &n_out, &pin, &pout, &taps, &empty,
                          &dtype))
        return NULL;
    Py_buffer bi, bo, bt;
    if (!get_paths(pin, pout, &bi, &bo, n_in, n_out)) return NULL;
    int paths = (int)(bi.len / 4);
    EngineObject *self = NULL;
    if (PyObject_GetBuffer(taps, &bt, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto done;
    Py_ssize_t item = dbl ? 8 : 4;
    if (bt.itemsize != item || bt.len % (item * paths) || bt.len == 0) {
        PyErr_SetString(PyExc_ValueError, "taps must be (paths, L) of the engine's dtype");
    } else if ((self = new_engine(dbl, n_in, n_out, empty, dtype))) {
        int length = (int)(bt.len / (item * paths));
        self->impl = dbl ? (void *)direct_new_d(n_in, n_out, paths, bi.buf, bo.buf, bt.buf, length)
                         : (void *)direct_new_f(n_in, n_out, paths, bi.buf, bo.buf, bt.buf, length);
        if (!self->impl) {
            Py_CLEAR(self);
            PyErr_NoMemory();
        }
    }
    PyBuffer_Release(&bt);
done:
    PyBuffer_Release(&bi);
    PyBuffer_Release(&bo);
    return (PyObject *)self;
}

/* partitioned(double, n_in, n_out, path_in, path_out, segments, flags, empty, dtype):
 * segments a list of (offset, block, length, count, fft, spectra), spectra (paths, count,
 * fft // 2 + 1) complex contiguous; segment 0 is the overlap-save head. */
static PyObject *mod_partitioned(PyObject *mod, PyObject *args) {
    (void)mod;
    int dbl, n_in, n_out;
    unsigned flags;
    PyObject *pin, *pout, *segs, *empty, *dtype;
    if (!PyArg_ParseTuple(args, "piiOOO!IOO", &dbl, &n_in, &n_out, &pin, &pout, &PyList_Type,
                          &segs, &flags, &empty, &dtype))
        return NULL;
    if (dbl ? !have_d : !have_f) {
        PyErr_SetString(PyExc_RuntimeError, "FFTW of this precision is not loaded");
        return NULL;
    }
    Py_buffer bi, bo;
    if (!get_paths(pin, pout, &bi, &bo, n_in, n_out)) return NULL;
    int paths = (int)(bi.len / 4);
    Py_ssize_t nseg = PyList_GET_SIZE(segs);
    EngineObject *self = NULL;
    int *geo = calloc(5 * (nseg ? nseg : 1), sizeof(int));
    Py_buffer *specs = calloc(nseg ? nseg : 1, sizeof(Py_buffer));
    const void **ptrs = calloc(nseg ? nseg : 1, sizeof(void *));
    Py_ssize_t got = 0;
    if (!geo || !specs || !ptrs) {
        PyErr_NoMemory();
        goto done;
    }
    if (nseg < 1) {
        PyErr_SetString(PyExc_ValueError, "at least one segment is needed");
        goto done;
    }
    for (; got < nseg; got++) {
        PyObject *spec;
        int *g = geo + 5 * got;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(segs, got), "iiiiiO", g, g + 1, g + 2, g + 3,
                              g + 4, &spec))
            goto done;
        if (PyObject_GetBuffer(spec, &specs[got], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            goto done;
        Py_ssize_t want = (Py_ssize_t)paths * g[3] * (g[4] / 2 + 1) * 2 * (dbl ? 8 : 4);
        int bad_geo = g[1] < 1 || g[2] < 1 || g[3] < 1 || g[4] < g[1] + g[2] - 1 ||
                      (got > 0 && (g[0] < g[1] || g[1] % geo[1])) || (got == 0 && g[0] != 0);
        if (specs[got].len != want || specs[got].itemsize != 2 * (dbl ? 8 : 4) || bad_geo) {
            got++;
            PyErr_SetString(PyExc_ValueError, "bad segment geometry or spectra");
            goto done;
        }
        ptrs[got] = specs[got].buf;
    }
    if ((self = new_engine(dbl, n_in, n_out, empty, dtype))) {
        self->impl = dbl ? (void *)part_new_d(n_in, n_out, paths, bi.buf, bo.buf, (int)nseg, geo,
                                              (const double *const *)ptrs, flags, &api_d)
                         : (void *)part_new_f(n_in, n_out, paths, bi.buf, bo.buf, (int)nseg, geo,
                                              (const float *const *)ptrs, flags, &api_f);
        if (!self->impl) {
            Py_CLEAR(self);
            PyErr_SetString(PyExc_MemoryError, "cannot allocate or plan the engine");
        }
    }
done:
    for (Py_ssize_t s = 0; s < got; s++) PyBuffer_Release(&specs[s]);
    free(geo);
    free(specs);
    free(ptrs);
    PyBuffer_Release(&bi);
    PyBuffer_Release(&bo);
    return (PyObject *)self;
}

static PyMethodDef module_methods[] = {
    {"direct", mod_direct, METH_VARARGS,
     "direct(double, n_in, n_out, path_in, path_out, taps, empty, dtype) -> Engine"},
    {"partitioned", mod_partitioned, METH_VARARGS,
     "partitioned(double, n_in, n_out, path_in, path_out, segments, flags, empty, dtype) "
     "-> Engine"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastconv",
    "Compiled per-block loops of the streaming FIR engines (see _fastconv.c).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__fastconv(void) {
    have_f = load_api(&api_f, "fftwf");
    have_d = load_api(&api_d, "fftw");
    if (!have_f || !have_d) {
        PyErr_SetString(PyExc_ImportError,
                        "FFTW (float and double) is not loaded: import pyfftw first");
        return NULL;
    }
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

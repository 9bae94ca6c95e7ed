/* The C twin of daemon/judge/series.py ``rates_py`` (docs/adr/0186).
 *
 * The same sliding least-squares slope, expression for expression, so that the same IEEE 754
 * double operations happen in the same order (the build forbids fused multiply-adds and
 * fast-math: hatch_build.py). tests/test_series_native.py holds it to the reference to the
 * bit. A pure function of its arguments: it keeps nothing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
rates(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "rates() takes 6 arguments (%zd given)", nargs);
        return NULL;
    }
    const double window_s = PyFloat_AsDouble(args[2]);
    if (window_s == -1.0 && PyErr_Occurred())
        return NULL;
    const Py_ssize_t min_points = PyLong_AsSsize_t(args[3]);
    if (min_points == -1 && PyErr_Occurred())
        return NULL;
    const double min_span_s = PyFloat_AsDouble(args[4]);
    if (min_span_s == -1.0 && PyErr_Occurred())
        return NULL;
    const Py_ssize_t resum = PyLong_AsSsize_t(args[5]);
    if (resum == -1 && PyErr_Occurred())
        return NULL;
    if (min_points < 1) {
        PyErr_SetString(PyExc_ValueError, "min_points must be at least 1");
        return NULL;
    }
    PyObject *t_fast = PySequence_Fast(args[0], "t must be a sequence");
    if (t_fast == NULL)
        return NULL;
    PyObject *v_fast = PySequence_Fast(args[1], "values must be a sequence");
    if (v_fast == NULL) {
        Py_DECREF(t_fast);
        return NULL;
    }
    PyObject *out = NULL;
    double *mem = NULL;
    const Py_ssize_t n_all = PySequence_Fast_GET_SIZE(t_fast);
    if (PySequence_Fast_GET_SIZE(v_fast) != n_all) {
        /* zip(strict=True)'s refusal */
        PyErr_Format(PyExc_ValueError, "t has %zd values, values %zd", n_all,
                     PySequence_Fast_GET_SIZE(v_fast));
        goto done;
    }
    PyObject **t_items = PySequence_Fast_ITEMS(t_fast);
    PyObject **v_items = PySequence_Fast_ITEMS(v_fast);
    /* Every sample's time and value (NaN-free: a value is None or a number), then the
     * valid ones' times and values. */
    mem = PyMem_Malloc((size_t)(4 * (n_all > 0 ? n_all : 1)) * sizeof(double));
    if (mem == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double *t = mem, *v = mem + n_all, *ts = mem + 2 * n_all, *vs = mem + 3 * n_all;
    Py_ssize_t n_valid = 0;
    for (Py_ssize_t i = 0; i < n_all; i++) {
        t[i] = PyFloat_AsDouble(t_items[i]);
        if (t[i] == -1.0 && PyErr_Occurred())
            goto done;
        if (v_items[i] != Py_None) {
            v[i] = PyFloat_AsDouble(v_items[i]);
            if (v[i] == -1.0 && PyErr_Occurred())
                goto done;
            ts[n_valid] = t[i];
            vs[n_valid] = v[i];
            n_valid++;
        }
    }
    out = PyList_New(n_all);
    if (out == NULL)
        goto done;
    const double half = window_s / 2.0;
    Py_ssize_t lo = 0, hi = 0;
    double origin = n_valid > 0 ? ts[0] : 0.0;
    double s1 = 0.0, s2 = 0.0, sy = 0.0, sdy = 0.0;
    Py_ssize_t since_resum = resum;
    for (Py_ssize_t i = 0; i < n_all; i++) {
        if (v_items[i] == Py_None) {
            Py_INCREF(Py_None);
            PyList_SET_ITEM(out, i, Py_None);
            continue;
        }
        const double tc = t[i];
        Py_ssize_t new_lo = lo;
        while (new_lo < n_valid && ts[new_lo] < tc - half)
            new_lo++;
        Py_ssize_t new_hi = hi > new_lo ? hi : new_lo;
        while (new_hi < n_valid && ts[new_hi] <= tc + half)
            new_hi++;
        since_resum++;
        if (since_resum >= resum || new_lo >= hi) {
            origin = tc;
            since_resum = 0;
            s1 = s2 = sy = sdy = 0.0;
            for (Py_ssize_t j = new_lo; j < new_hi; j++) {
                const double d = ts[j] - origin;
                s1 += d;
                s2 += d * d;
                sy += vs[j];
                sdy += d * vs[j];
            }
        } else {
            for (Py_ssize_t j = lo; j < new_lo; j++) {
                const double d = ts[j] - origin;
                s1 -= d;
                s2 -= d * d;
                sy -= vs[j];
                sdy -= d * vs[j];
            }
            for (Py_ssize_t j = hi; j < new_hi; j++) {
                const double d = ts[j] - origin;
                s1 += d;
                s2 += d * d;
                sy += vs[j];
                sdy += d * vs[j];
            }
        }
        lo = new_lo;
        hi = new_hi;
        const Py_ssize_t n = hi - lo;
        PyObject *item;
        if (n < min_points || ts[hi - 1] - ts[lo] < min_span_s) {
            item = Py_None;
            Py_INCREF(item);
        } else {
            const double nf = (double)n;
            const double u = tc - origin;
            const double sx = s1 - nf * u;
            const double sxx = s2 - 2.0 * u * s1 + nf * u * u;
            const double sxy = sdy - u * sy;
            const double den = nf * sxx - sx * sx;
            if (den > 0) {
                item = PyFloat_FromDouble((nf * sxy - sx * sy) / den);
                if (item == NULL)
                    goto fail;
            } else {
                item = Py_None;
                Py_INCREF(item);
            }
        }
        PyList_SET_ITEM(out, i, item);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyMem_Free(mem);
    Py_DECREF(t_fast);
    Py_DECREF(v_fast);
    return out;
}

static PyMethodDef methods[] = {
    {"rates", (PyCFunction)(void (*)(void))rates, METH_FASTCALL,
     "rates(t, values, window_s, min_points, min_span_s, resum): series.rates_py in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_series_native",
    "The C twin of daemon/judge/series.py rates_py (docs/adr/0186).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__series_native(void)
{
    return PyModule_Create(&module_def);
}

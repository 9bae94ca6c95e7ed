/* The C twin of drivers/sim/plant/panel_substeps.py (docs/adr/0186).
 *
 * Every expression is written as the Python one is, operand for operand, so that the same
 * IEEE 754 double operations happen in the same order: C's + - * / associate left to right
 * as Python's do, and the build (hatch_build.py) forbids contracting a multiply and an add
 * into one fused operation (-ffp-contract=off) and any fast-math reassociation. The reference
 * is the Python kernel; tests/test_panel_native.py compares the two to the bit.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define KELVIN 273.15 /* drivers/sim/plant/params.py KELVIN; a test holds them equal */
#define N_SCALARS 23
#define N_STATE 7
#define N_SITE_K 11
#define N_CELL_K 3

/* The doubles of a sequence of exactly `want` numbers (want < 0: any length, returned). */
static Py_ssize_t
read_doubles(PyObject *obj, double *out, Py_ssize_t want, Py_ssize_t cap, const char *what)
{
    PyObject *fast = PySequence_Fast(obj, what);
    if (fast == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if ((want >= 0 && n != want) || n > cap) {
        PyErr_Format(PyExc_ValueError, "%s: %zd values, expected %zd", what, n,
                     want >= 0 ? want : cap);
        Py_DECREF(fast);
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        double v = PyFloat_AsDouble(items[i]);
        if (v == -1.0 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        out[i] = v;
    }
    Py_DECREF(fast);
    return n;
}

/* Per item of a sequence of `n` sequences, `width` doubles into out[i * stride + offset]. */
static int
read_rows(PyObject *obj, Py_ssize_t n, Py_ssize_t width, double *out, Py_ssize_t stride,
          Py_ssize_t offset, const char *what)
{
    PyObject *fast = PySequence_Fast(obj, what);
    if (fast == NULL)
        return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "%s: %zd rows, expected %zd", what,
                     PySequence_Fast_GET_SIZE(fast), n);
        Py_DECREF(fast);
        return -1;
    }
    PyObject **rows = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (read_doubles(rows[i], out + i * stride + offset, width, width, what) < 0) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

static int
write_list(PyObject *list, const double *values, Py_ssize_t stride, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyFloat_FromDouble(values[i * stride]);
        if (v == NULL)
            return -1;
        PyList_SET_ITEM(list, i, v) /* steals v */;
    }
    return 0;
}

static int
replace_list_items(PyObject *list, const double *values, Py_ssize_t stride, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyFloat_FromDouble(values[i * stride]);
        if (v == NULL)
            return -1;
        if (PyList_SetItem(list, i, v) < 0) /* steals v, drops the old item */
            return -1;
    }
    return 0;
}

static int
check_list(PyObject *obj, Py_ssize_t n, const char *what)
{
    if (!PyList_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a list (it is moved in place)", what);
        return -1;
    }
    if (PyList_GET_SIZE(obj) != n) {
        PyErr_Format(PyExc_ValueError, "%s: %zd values, expected %zd", what,
                     PyList_GET_SIZE(obj), n);
        return -1;
    }
    return 0;
}

/* Per site: the 11 site constants, the 3 cell ones, q_cmd, q_gap, then h, tm, tc, dq. */
enum {
    S_C, S_LAT, S_H_SOL, S_H_LIQ, S_C_BAND, S_LAT_TS_BAND, S_G_ATM, S_G_VAC, S_G_MELT, S_RAD,
    S_G_GAS, S_G_D, S_INV_C_CELL, S_C_CELL, S_Q_CHIP, S_Q_CELL, S_GAP_CHIP, S_GAP_CELL,
    S_H, S_TM, S_TC, S_DQ, S_WIDTH
};

static PyObject *
substeps(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 16) {
        PyErr_Format(PyExc_TypeError, "substeps() takes 16 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *o_p_means = args[0], *o_k = args[1], *o_state = args[2];
    int flow = PyObject_IsTrue(args[3]);
    if (flow < 0)
        return NULL;
    Py_ssize_t ref = PyLong_AsSsize_t(args[4]);
    if (ref == -1 && PyErr_Occurred())
        return NULL;
    int fil_settled = PyObject_IsTrue(args[5]);
    if (fil_settled < 0)
        return NULL;
    PyObject *o_fil = args[6], *o_zone_w = args[7], *o_sites_k = args[8], *o_cells_k = args[9];
    PyObject *o_q_cmd = args[10], *o_q_gap = args[11], *o_pairs = args[12];
    PyObject *o_hs = args[13], *o_tm = args[14], *o_site_tc = args[15];

    double k[N_SCALARS], st[N_STATE];
    if (read_doubles(o_k, k, N_SCALARS, N_SCALARS, "k") < 0 ||
        read_doubles(o_state, st, N_STATE, N_STATE, "state") < 0)
        return NULL;
    const double h = k[0], k_fil = k[1], k_tc_chip = k[2], k_tc_other = k[3], ts = k[4];
    const double band = k[5], g_lat = k[6], c_cells_sum = k[7], g_kf = k[8], g_ka = k[9];
    const double g_fa = k[10], sp = k[11], kp = k[12], ki = k[13], q_cool = k[14];
    const double q_heat = k[15], amb = k[16], amb_k4 = k[17], p_atm = k[18];
    const double inv_patm = k[19], inv_ck = k[20], inv_cf = k[21], coal_k = k[22];
    double tk = st[0], tf = st[1], chill_i = st[2], tc_chip = st[3], tc_comp = st[4];
    double tc_chuck = st[5], coal = st[6];

    if (!PyList_Check(o_hs)) {
        PyErr_SetString(PyExc_TypeError, "hs must be a list (it is moved in place)");
        return NULL;
    }
    const Py_ssize_t n = PyList_GET_SIZE(o_hs);
    if (check_list(o_tm, n, "tm") < 0 || check_list(o_site_tc, n, "site_tc") < 0)
        return NULL;
    if (ref < 0 || ref >= n) {
        PyErr_Format(PyExc_IndexError, "ref %zd is not one of the %zd sites", ref, n);
        return NULL;
    }
    if (band == 0.0 || c_cells_sum == 0.0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return NULL;
    }

    PyObject *pm_fast = PySequence_Fast(o_p_means, "p_means");
    if (pm_fast == NULL)
        return NULL;
    const Py_ssize_t n_sub = PySequence_Fast_GET_SIZE(pm_fast);
    PyObject *pairs_fast = PySequence_Fast(o_pairs, "pairs");
    if (pairs_fast == NULL) {
        Py_DECREF(pm_fast);
        return NULL;
    }
    const Py_ssize_t n_pairs = PySequence_Fast_GET_SIZE(pairs_fast);
    if (!PyList_Check(o_fil)) {
        PyErr_SetString(PyExc_TypeError, "fil must be a list (it is moved in place)");
        Py_DECREF(pm_fast);
        Py_DECREF(pairs_fast);
        return NULL;
    }
    const Py_ssize_t n_zones = PyList_GET_SIZE(o_fil);

    /* One block: the sites, the substeps' pressures and results, the zones, the pairs. */
    size_t doubles = (size_t)(n * S_WIDTH + 2 * n_sub + 2 * n_zones);
    double *mem = PyMem_Malloc(doubles * sizeof(double) + (size_t)(2 * n_pairs) * sizeof(Py_ssize_t));
    PyObject *t_comp = NULL, *result = NULL;
    if (mem == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double *site = mem;
    double *pm = site + n * S_WIDTH;
    double *tcomp = pm + n_sub;
    double *fil = tcomp + n_sub;
    double *zw = fil + n_zones;
    Py_ssize_t *pair = (Py_ssize_t *)(zw + n_zones);

    PyObject **pm_items = PySequence_Fast_ITEMS(pm_fast);
    for (Py_ssize_t s = 0; s < n_sub; s++) {
        pm[s] = PyFloat_AsDouble(pm_items[s]);
        if (pm[s] == -1.0 && PyErr_Occurred())
            goto done;
    }
    PyObject **pair_items = PySequence_Fast_ITEMS(pairs_fast);
    for (Py_ssize_t j = 0; j < n_pairs; j++) {
        PyObject *ab = PySequence_Fast(pair_items[j], "pairs");
        if (ab == NULL)
            goto done;
        if (PySequence_Fast_GET_SIZE(ab) != 2) {
            PyErr_SetString(PyExc_ValueError, "pairs: a pair is two site indices");
            Py_DECREF(ab);
            goto done;
        }
        for (int e = 0; e < 2; e++) {
            Py_ssize_t v = PyLong_AsSsize_t(PySequence_Fast_ITEMS(ab)[e]);
            if (v == -1 && PyErr_Occurred()) {
                Py_DECREF(ab);
                goto done;
            }
            if (v < 0 || v >= n) {
                PyErr_Format(PyExc_IndexError, "pairs: site %zd is not one of %zd", v, n);
                Py_DECREF(ab);
                goto done;
            }
            pair[2 * j + e] = v;
        }
        Py_DECREF(ab);
    }
    if (read_doubles(o_fil, fil, n_zones, n_zones, "fil") < 0 ||
        read_doubles(o_zone_w, zw, n_zones, n_zones, "zone_w") < 0)
        goto done;
    if (read_rows(o_sites_k, n, N_SITE_K, site, S_WIDTH, S_C, "sites_k") < 0 ||
        read_rows(o_cells_k, n, N_CELL_K, site, S_WIDTH, S_G_D, "cells_k") < 0 ||
        read_rows(o_q_cmd, n, 2, site, S_WIDTH, S_Q_CHIP, "q_cmd") < 0 ||
        read_rows(o_q_gap, n, 2, site, S_WIDTH, S_GAP_CHIP, "q_gap") < 0)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        double *x = site + i * S_WIDTH;
        x[S_H] = PyFloat_AsDouble(PyList_GET_ITEM(o_hs, i));
        x[S_TM] = PyFloat_AsDouble(PyList_GET_ITEM(o_tm, i));
        x[S_TC] = PyFloat_AsDouble(PyList_GET_ITEM(o_site_tc, i));
        if (PyErr_Occurred())
            goto done;
        if (x[S_C] == 0.0 || x[S_C_BAND] == 0.0) {
            PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
            goto done;
        }
    }

    double q_ch = 0.0, e_in = 0.0, e_ch = 0.0, e_loss = 0.0;
    const double decay = 1.0 - k_fil;
    double left = fil_settled ? 0.0 : 1.0;
    for (Py_ssize_t s = 0; s < n_sub; s++) {
        const double p_mean = pm[s];
        if (!fil_settled) {
            for (Py_ssize_t z = 0; z < n_zones; z++)
                fil[z] += (zw[z] - fil[z]) * k_fil;
            left *= decay;
        }
        double pressed = (p_atm - p_mean) * inv_patm;
        pressed = pressed < 0.0 ? 0.0 : (pressed > 1.0 ? 1.0 : pressed);
        const double gas = p_mean * inv_patm;

        for (Py_ssize_t i = 0; i < n; i++)
            site[i * S_WIDTH + S_DQ] = 0.0;
        for (Py_ssize_t j = 0; j < n_pairs; j++) {
            double *xa = site + pair[2 * j] * S_WIDTH, *xb = site + pair[2 * j + 1] * S_WIDTH;
            const double q = g_lat * (xa[S_TM] - xb[S_TM]);
            xa[S_DQ] -= q;
            xb[S_DQ] += q;
        }
        double q_mk_sum = 0.0, melt_ref = 0.0, t_ref = 0.0, mean = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            double *x = site + i * S_WIDTH;
            const double hc = x[S_H], t_cell = x[S_TM], tc_site = x[S_TC];
            double t_i, melt;
            if (hc <= x[S_H_SOL]) {
                t_i = hc / x[S_C];
                melt = 0.0;
            } else if (hc >= x[S_H_LIQ]) {
                t_i = (hc - x[S_LAT]) / x[S_C];
                melt = 1.0;
            } else {
                t_i = (hc + x[S_LAT_TS_BAND]) / x[S_C_BAND];
                melt = (t_i - ts) / band;
            }
            if (i == ref) {
                melt_ref = melt;
                t_ref = t_i;
            }
            const double q_in_chip = x[S_Q_CHIP] + x[S_GAP_CHIP] * left;
            const double q_in_cell = x[S_Q_CELL] + x[S_GAP_CELL] * left;
            const double q_cc =
                (x[S_G_ATM] + x[S_G_VAC] * pressed + x[S_G_MELT] * melt) * (t_i - t_cell);
            const double tck = t_i + KELVIN;
            const double q_loss =
                x[S_RAD] * (tck * tck * tck * tck - amb_k4) + x[S_G_GAS] * gas * (t_i - amb);
            const double q_mk = x[S_G_D] * (t_cell - tk);
            q_mk_sum += q_mk;
            x[S_H] = hc + h * (q_in_chip - q_cc - q_loss);
            const double t_moved =
                t_cell + h * (x[S_DQ] + (q_in_cell + q_cc - q_mk)) * x[S_INV_C_CELL];
            x[S_TM] = t_moved;
            mean += x[S_C_CELL] * t_moved;
            x[S_TC] = tc_site + (t_i - tc_site) * k_tc_chip;
            e_in += h * (q_in_chip + q_in_cell);
            e_loss += h * q_loss;
        }
        if (melt_ref != 0.0 && coal < 1.0) /* Python's truth of a float: NaN is true too */
            coal += (1.0 - coal) * melt_ref * coal_k * h;
        const double q_kf = g_kf * (tk - tf);
        const double q_ka = g_ka * (tk - amb);
        const double q_fa = g_fa * (tf - amb);
        if (flow) {
            const double err = tf - sp;
            chill_i += ki * err * h;
            if (chill_i > q_cool)
                chill_i = q_cool;
            else if (chill_i < -q_heat)
                chill_i = -q_heat;
            q_ch = kp * err + chill_i;
            if (q_ch > q_cool)
                q_ch = q_cool;
            else if (q_ch < -q_heat)
                q_ch = -q_heat;
        }
        tk += h * (q_mk_sum - q_kf - q_ka) * inv_ck;
        tf += h * (q_kf - q_ch - q_fa) * inv_cf;
        e_ch += h * q_ch;
        e_loss += h * (q_ka + q_fa);
        tc_chip += (t_ref - tc_chip) * k_tc_chip;
        tc_comp += (site[ref * S_WIDTH + S_TM] - tc_comp) * k_tc_other;
        tc_chuck += (tk - tc_chuck) * k_tc_other;
        tcomp[s] = mean / c_cells_sum;
    }

    /* Python writes a list item only when a substep moved it. */
    if (n_sub > 0) {
        if (!fil_settled && replace_list_items(o_fil, fil, 1, n_zones) < 0)
            goto done;
        if (replace_list_items(o_hs, site + S_H, S_WIDTH, n) < 0 ||
            replace_list_items(o_tm, site + S_TM, S_WIDTH, n) < 0 ||
            replace_list_items(o_site_tc, site + S_TC, S_WIDTH, n) < 0)
            goto done;
    }
    t_comp = PyList_New(n_sub);
    if (t_comp == NULL || write_list(t_comp, tcomp, 1, n_sub) < 0)
        goto done;
    /* (t_comp, state, q_ch, e_in, e_ch, e_loss), as substeps_py returns them. */
    result = Py_BuildValue("O(ddddddd)dddd", t_comp, tk, tf, chill_i, tc_chip, tc_comp,
                           tc_chuck, coal, q_ch, e_in, e_ch, e_loss);
done:
    Py_XDECREF(t_comp);
    PyMem_Free(mem);
    Py_DECREF(pm_fast);
    Py_DECREF(pairs_fast);
    return result;
}

static PyObject *
pair_of(double a, double b)
{
    return Py_BuildValue("(dd)", a, b);
}

static PyObject *
absorbed(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "absorbed() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *zones_fast = PySequence_Fast(args[0], "zones_k");
    if (zones_fast == NULL)
        return NULL;
    PyObject *at_cmd = NULL, *gap = NULL, *result = NULL;
    double *mem = NULL;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(zones_fast);
    PyObject *cmd_fast = PySequence_Fast(args[1], "cmd");
    if (cmd_fast == NULL)
        goto done;
    const Py_ssize_t z = PySequence_Fast_GET_SIZE(cmd_fast);
    Py_DECREF(cmd_fast);
    mem = PyMem_Malloc((size_t)(4 * (z > 0 ? z : 1)) * sizeof(double));
    if (mem == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double *cmd = mem, *fil = mem + z, *a_chip = mem + 2 * z, *a_cell = mem + 3 * z;
    if (read_doubles(args[1], cmd, z, z, "cmd") < 0 ||
        read_doubles(args[2], fil, z, z, "fil") < 0)
        goto done;
    at_cmd = PyList_New(n);
    gap = PyList_New(n);
    if (at_cmd == NULL || gap == NULL)
        goto done;
    PyObject **rows = PySequence_Fast_ITEMS(zones_fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PySequence_Fast(rows[i], "zones_k");
        if (row == NULL)
            goto done;
        if (PySequence_Fast_GET_SIZE(row) != 2) {
            PyErr_SetString(PyExc_ValueError, "zones_k: a site's row is (chip's, cell's)");
            Py_DECREF(row);
            goto done;
        }
        if (read_doubles(PySequence_Fast_ITEMS(row)[0], a_chip, z, z, "zones_k chip") < 0 ||
            read_doubles(PySequence_Fast_ITEMS(row)[1], a_cell, z, z, "zones_k cell") < 0) {
            Py_DECREF(row);
            goto done;
        }
        Py_DECREF(row);
        double chip = 0.0, cell = 0.0, chip0 = 0.0, cell0 = 0.0;
        for (Py_ssize_t j = 0; j < z; j++) {
            chip += a_chip[j] * cmd[j];
            cell += a_cell[j] * cmd[j];
            chip0 += a_chip[j] * fil[j];
            cell0 += a_cell[j] * fil[j];
        }
        PyObject *p = pair_of(chip, cell);
        if (p == NULL)
            goto done;
        PyList_SET_ITEM(at_cmd, i, p);
        p = pair_of(chip0 - chip, cell0 - cell);
        if (p == NULL)
            goto done;
        PyList_SET_ITEM(gap, i, p);
    }
    result = PyTuple_Pack(2, at_cmd, gap);
done:
    Py_XDECREF(at_cmd);
    Py_XDECREF(gap);
    PyMem_Free(mem);
    Py_DECREF(zones_fast);
    return result;
}

static PyMethodDef methods[] = {
    {"substeps", (PyCFunction)(void (*)(void))substeps, METH_FASTCALL,
     "One span of a panel's substeps (panel_substeps.substeps_py, in C)."},
    {"absorbed", (PyCFunction)(void (*)(void))absorbed, METH_FASTCALL,
     "Each site's absorbed power at the commands and its gap (panel_substeps.absorbed_py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_panel_native",
    "The C twin of drivers/sim/plant/panel_substeps.py (docs/adr/0186).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__panel_native(void)
{
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObject(m, "KELVIN", PyFloat_FromDouble(KELVIN)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/*
 * Optional C speed-up of meshsync_file.yaml_writer: the same layout, written in C.
 *
 * Only the structure (mappings, sequences, indentation) and the trivial scalars (int, bool,
 * None) are handled here. Every string decision -- plain or quoted, escapes, block scalars,
 * keys -- comes from the Python module: from its caches on a hit, from its functions on a
 * miss. So this file cannot render a string differently from the pure-Python writer; the
 * tests compare both outputs byte for byte.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *key_cache, *value_cache;            /* dict: str -> rendered text */
static PyObject *key_text_fn, *str_text_fn;          /* (key, indent_str) / (value) */
static PyObject *block_text_fn, *normalize_fn;       /* (value, indent_len) / (value) */
static PyObject *render_scalar_fn;                   /* (value) */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Buf;

static int grow(Buf *b, Py_ssize_t extra) {
    if (b->n + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + extra)
        cap *= 2;
    char *np = PyMem_Realloc(b->p, cap);
    if (np == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

static inline int put(Buf *b, const char *s, Py_ssize_t len) {
    if (grow(b, len) < 0)
        return -1;
    memcpy(b->p + b->n, s, len);
    b->n += len;
    return 0;
}

static inline int spaces(Buf *b, Py_ssize_t k) {
    if (grow(b, k) < 0)
        return -1;
    memset(b->p + b->n, ' ', k);
    b->n += k;
    return 0;
}

static inline int put_text(Buf *b, PyObject *s) {
    Py_ssize_t len;
    const char *u = PyUnicode_AsUTF8AndSize(s, &len);
    if (u == NULL)
        return -1;
    return put(b, u, len);
}

/* A new reference to the rendered key ("name:"), from the cache or the Python function. */
static PyObject *key_text(PyObject *key, Py_ssize_t indent) {
    PyObject *kt = PyDict_GetItemWithError(key_cache, key);
    if (kt != NULL) {
        Py_INCREF(kt);
        return kt;
    }
    if (PyErr_Occurred())
        return NULL;
    PyObject *ind = PyUnicode_New(indent, 127);
    if (ind == NULL)
        return NULL;
    if (indent)
        memset(PyUnicode_DATA(ind), ' ', indent);
    kt = PyObject_CallFunctionObjArgs(key_text_fn, key, ind, NULL);
    Py_DECREF(ind);
    if (kt != NULL && !PyUnicode_Check(kt)) {
        Py_DECREF(kt);
        PyErr_SetString(PyExc_TypeError, "key text must be str");
        return NULL;
    }
    return kt;
}

/* A new reference to the one-line rendering of a str, or Py_None for a block scalar. */
static PyObject *str_text(PyObject *value) {
    PyObject *t = PyDict_GetItemWithError(value_cache, value);
    if (t != NULL) {
        Py_INCREF(t);
        return t;
    }
    if (PyErr_Occurred())
        return NULL;
    return PyObject_CallFunctionObjArgs(str_text_fn, value, NULL);
}

static int put_block(Buf *b, PyObject *value, Py_ssize_t indent) {
    PyObject *n = PyLong_FromSsize_t(indent);
    if (n == NULL)
        return -1;
    PyObject *t = PyObject_CallFunctionObjArgs(block_text_fn, value, n, NULL);
    Py_DECREF(n);
    if (t == NULL)
        return -1;
    int rc = put_text(b, t);
    Py_DECREF(t);
    return rc;
}

/* int, bool, None, float: 1 written, 0 not a simple scalar, -1 error. */
static int put_simple_scalar(Buf *b, PyObject *v) {
    if (v == Py_None)
        return put(b, "null", 4) < 0 ? -1 : 1;
    if (v == Py_True)
        return put(b, "true", 4) < 0 ? -1 : 1;
    if (v == Py_False)
        return put(b, "false", 5) < 0 ? -1 : 1;
    if (PyLong_CheckExact(v)) {
        PyObject *s = PyObject_Str(v);
        if (s == NULL)
            return -1;
        int rc = put_text(b, s);
        Py_DECREF(s);
        return rc < 0 ? -1 : 1;
    }
    if (PyFloat_CheckExact(v)) {
        PyObject *s = PyObject_CallFunctionObjArgs(render_scalar_fn, v, NULL);
        if (s == NULL)
            return -1;
        int rc = put_text(b, s);
        Py_DECREF(s);
        return rc < 0 ? -1 : 1;
    }
    return 0;
}

static int write_seq(Buf *b, PyObject *items, Py_ssize_t indent, Py_ssize_t first);

/* A non-empty dict; the first key is preceded by `first` spaces, the others by `indent`. */
static int write_map(Buf *b, PyObject *map, Py_ssize_t indent, Py_ssize_t first) {
    if (Py_EnterRecursiveCall(" while writing YAML"))
        return -1;
    Py_ssize_t pos = 0, prefix = first;
    PyObject *key, *value;
    int rc = -1;
    while (PyDict_Next(map, &pos, &key, &value)) {
        Py_INCREF(key);
        Py_INCREF(value);
        PyObject *kt = key_text(key, indent);
        if (kt == NULL) {
            Py_DECREF(key);
            Py_DECREF(value);
            goto done;
        }
        Py_ssize_t klen;
        const char *k = PyUnicode_AsUTF8AndSize(kt, &klen);
        if (k == NULL) {
            Py_DECREF(kt);
            Py_DECREF(key);
            Py_DECREF(value);
            goto done;
        }
        int explicit_key = klen > 0 && k[0] == '?';
        int err = 0;
        if (PyUnicode_CheckExact(value)) {
            PyObject *t = str_text(value);
            if (t == NULL) {
                err = 1;
            } else if (t == Py_None) {
                err = spaces(b, prefix) < 0 || put(b, k, klen) < 0 || put_block(b, value, indent) < 0;
            } else {
                err = spaces(b, prefix) < 0 || put(b, k, klen) < 0 || put(b, " ", 1) < 0 ||
                      put_text(b, t) < 0 || put(b, "\n", 1) < 0;
            }
            Py_XDECREF(t);
        } else if (PyDict_CheckExact(value)) {
            if (PyDict_GET_SIZE(value)) {
                err = spaces(b, prefix) < 0 || put(b, k, klen) < 0 || put(b, "\n", 1) < 0 ||
                      write_map(b, value, indent + 2, indent + 2) < 0;
            } else {
                err = spaces(b, prefix) < 0 || put(b, k, klen) < 0 || put(b, " {}\n", 4) < 0;
            }
        } else if (PyList_CheckExact(value)) {
            if (PyList_GET_SIZE(value)) {
                err = spaces(b, prefix) < 0 || put(b, k, klen) < 0 || put(b, "\n", 1) < 0 ||
                      write_seq(b, value, explicit_key ? indent + 2 : indent, -1) < 0;
            } else {
                err = spaces(b, prefix) < 0 || put(b, k, klen) < 0 || put(b, " []\n", 4) < 0;
            }
        } else if (value == Py_None || PyBool_Check(value) || PyLong_CheckExact(value) ||
                   PyFloat_CheckExact(value)) {
            err = spaces(b, prefix) < 0 || put(b, k, klen) < 0 || put(b, " ", 1) < 0 ||
                  put_simple_scalar(b, value) < 0 || put(b, "\n", 1) < 0;
        } else {
            /* Subclasses, tuples, mappings: normalise in Python, then write {key: value}. */
            PyObject *norm = PyObject_CallFunctionObjArgs(normalize_fn, value, NULL);
            PyObject *one = norm ? PyDict_New() : NULL;
            err = one == NULL || PyDict_SetItem(one, key, norm) < 0 ||
                  write_map(b, one, indent, prefix) < 0;
            Py_XDECREF(norm);
            Py_XDECREF(one);
        }
        Py_DECREF(kt);
        Py_DECREF(key);
        Py_DECREF(value);
        if (err)
            goto done;
        prefix = indent;
    }
    rc = 0;
done:
    Py_LeaveRecursiveCall();
    return rc;
}

/* A non-empty list at `indent`; `first` >= 0 replaces the first item's indentation. */
static int write_seq(Buf *b, PyObject *items, Py_ssize_t indent, Py_ssize_t first) {
    if (Py_EnterRecursiveCall(" while writing YAML"))
        return -1;
    Py_ssize_t lead = first < 0 ? indent : first;
    int rc = -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        Py_INCREF(item);
        int err = 0;
        if (PyUnicode_CheckExact(item)) {
            PyObject *t = str_text(item);
            if (t == NULL) {
                err = 1;
            } else if (t == Py_None) {
                err = spaces(b, lead) < 0 || put(b, "-", 1) < 0 || put_block(b, item, indent) < 0;
            } else {
                err = spaces(b, lead) < 0 || put(b, "- ", 2) < 0 || put_text(b, t) < 0 ||
                      put(b, "\n", 1) < 0;
            }
            Py_XDECREF(t);
        } else if (PyDict_CheckExact(item)) {
            if (PyDict_GET_SIZE(item)) {
                err = spaces(b, lead) < 0 || put(b, "- ", 2) < 0 ||
                      write_map(b, item, indent + 2, 0) < 0;
            } else {
                err = spaces(b, lead) < 0 || put(b, "- {}\n", 5) < 0;
            }
        } else if (PyList_CheckExact(item)) {
            if (PyList_GET_SIZE(item)) {
                err = spaces(b, lead) < 0 || put(b, "- ", 2) < 0 ||
                      write_seq(b, item, indent + 2, 0) < 0;
            } else {
                err = spaces(b, lead) < 0 || put(b, "- []\n", 5) < 0;
            }
        } else if (item == Py_None || PyBool_Check(item) || PyLong_CheckExact(item) ||
                   PyFloat_CheckExact(item)) {
            err = spaces(b, lead) < 0 || put(b, "- ", 2) < 0 || put_simple_scalar(b, item) < 0 ||
                  put(b, "\n", 1) < 0;
        } else {
            PyObject *norm = PyObject_CallFunctionObjArgs(normalize_fn, item, NULL);
            PyObject *one = norm ? PyList_New(1) : NULL;
            if (one != NULL) {
                Py_INCREF(norm);
                PyList_SET_ITEM(one, 0, norm);
            }
            err = one == NULL || write_seq(b, one, indent, lead) < 0;
            Py_XDECREF(norm);
            Py_XDECREF(one);
        }
        Py_DECREF(item);
        if (err)
            goto done;
        lead = indent;
    }
    rc = 0;
done:
    Py_LeaveRecursiveCall();
    return rc;
}

/* dump_map(d): the document for a non-empty exact dict, as str. */
static PyObject *dump_map(PyObject *self, PyObject *obj) {
    if (!PyDict_CheckExact(obj) || PyDict_GET_SIZE(obj) == 0) {
        PyErr_SetString(PyExc_TypeError, "dump_map needs a non-empty dict");
        return NULL;
    }
    if (key_cache == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_cwriter.setup() was not called");
        return NULL;
    }
    Buf b = {NULL, 0, 0};
    PyObject *out = NULL;
    if (write_map(&b, obj, 0, 0) == 0)
        out = PyUnicode_DecodeUTF8(b.p, b.n, "surrogatepass");
    PyMem_Free(b.p);
    return out;
}

static PyObject *setup(PyObject *self, PyObject *args) {
    PyObject *kc, *vc, *kt, *st, *bt, *nf, *rs;
    if (!PyArg_ParseTuple(args, "O!O!OOOOO", &PyDict_Type, &kc, &PyDict_Type, &vc, &kt, &st, &bt,
                          &nf, &rs))
        return NULL;
    PyObject *all[] = {kc, vc, kt, st, bt, nf, rs};
    PyObject **slots[] = {&key_cache, &value_cache, &key_text_fn, &str_text_fn, &block_text_fn,
                          &normalize_fn, &render_scalar_fn};
    for (int i = 0; i < 7; i++) {
        Py_INCREF(all[i]);
        Py_XSETREF(*slots[i], all[i]);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"dump_map", dump_map, METH_O, "YAML document of a non-empty dict (see yaml_writer)."},
    {"setup", setup, METH_VARARGS, "Give the Python caches and string renderers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cwriter", "C speed-up of meshsync_file.yaml_writer.", -1, methods,
};

PyMODINIT_FUNC PyInit__cwriter(void) { return PyModule_Create(&module); }

/*
 * The C path of meshsync_k8s.raw_json.identity: the four metadata fields the watcher tracks,
 * read from an object's raw JSON without decoding the rest.
 *
 * identity(raw) returns (uid, name, namespace, resourceVersion) -- what msgspec's decoding of
 * the object's metadata into raw_json.ObjectMeta gives -- when uid and name are non-empty
 * strings and namespace and resourceVersion strings or absent; None for anything else (the
 * Python path then decides: a missing uid, a null namespace, a field given twice, an escaped
 * member name, invalid JSON). The object's JSON has been checked already (msgspec cut it out
 * of a list page or a watch line), so reading stops at the end of `metadata`: spec and status,
 * most of an object, are never looked at. The tests compare both paths.
 */
#include "jsontext.h"

enum { UID, NAME, NAMESPACE, RESOURCE_VERSION, TRACKED };
static const char *const TRACKED_NAMES[TRACKED] = {"uid", "name", "namespace", "resourceVersion"};

/* The metadata object at j->p (its '{'): the tracked fields' tokens into `fields`. */
static int read_tracked(Json *j, Str *fields) {
    int rc;
    skip_ws(j);
    if (j->p >= j->end || *j->p != '{')
        return DECLINE; /* null or another type: the Python path says what it makes of it */
    if (opens_empty(j, '}'))
        return 0;
    do {
        Str key;
        if (read_member_name(j, &key, 0) < 0)
            return DECLINE; /* (an escaped name might spell a tracked one) */
        int field = 0;
        while (field < TRACKED && !(key.n == (Py_ssize_t)strlen(TRACKED_NAMES[field]) &&
                                    memcmp(key.s, TRACKED_NAMES[field], key.n) == 0))
            field++;
        if (field == TRACKED) {
            if ((rc = skip_checked_value(j)) < 0) /* managedFields, labels, ...: not read */
                return rc;
            continue;
        }
        skip_ws(j);
        if (fields[field].s != NULL || j->p >= j->end || *j->p != '"')
            return DECLINE; /* given twice (msgspec keeps the last), or not a string */
        if ((rc = read_string(j, &fields[field])) < 0)
            return rc;
    } while ((rc = after_element(j, '}')) == 1);
    return rc;
}

/* The object's metadata member: the first one (the API server writes each member once). */
static int find_metadata(Json *j, Str *fields) {
    int rc;
    skip_ws(j);
    if (j->p >= j->end || *j->p != '{' || opens_empty(j, '}'))
        return DECLINE;
    do {
        Str key;
        if (read_member_name(j, &key, 0) < 0)
            return DECLINE;
        if (key.n == 8 && memcmp(key.s, "metadata", 8) == 0)
            return read_tracked(j, fields);
        if ((rc = skip_checked_value(j)) < 0) /* apiVersion and kind, in a watch event */
            return rc;
    } while ((rc = after_element(j, '}')) == 1);
    return DECLINE; /* no metadata */
}

/* A str of a token read_string checked; "" for an absent one. */
static PyObject *field_text(Json *j, const Str *token) {
    const char *s;
    Py_ssize_t n;
    if (token->s == NULL)
        return PyUnicode_New(0, 0);
    if (decode_string(j, token, &s, &n) < 0)
        return NULL;
    return PyUnicode_DecodeUTF8(s, n, NULL);
}

/* identity(raw) -> (uid, name, namespace, resourceVersion) | None */
static PyObject *identity(PyObject *self, PyObject *raw) {
    Py_buffer view;
    if (PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Json j = {view.buf, (const char *)view.buf + view.len, {NULL, 0, 0}, 0};
    Str fields[TRACKED];
    memset(fields, 0, sizeof(fields));
    PyObject *out = NULL;
    int rc = find_metadata(&j, fields);
    if (rc == 0 && (fields[UID].n == 0 || fields[NAME].n == 0))
        rc = DECLINE; /* missing or empty: the Python path reports it */
    if (rc == 0) {
        PyObject *texts[TRACKED] = {NULL};
        int ok = 1;
        for (int i = 0; i < TRACKED && ok; i++)
            ok = (texts[i] = field_text(&j, &fields[i])) != NULL;
        if (ok)
            out = PyTuple_Pack(TRACKED, texts[UID], texts[NAME], texts[NAMESPACE],
                               texts[RESOURCE_VERSION]);
        for (int i = 0; i < TRACKED; i++)
            Py_XDECREF(texts[i]);
    } else if (rc == DECLINE && !PyErr_Occurred()) {
        out = Py_NewRef(Py_None);
    }
    PyMem_Free(j.scratch.p);
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"identity", identity, METH_O,
     "(uid, name, namespace, resourceVersion) of an object's raw JSON, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_object_meta", "The C path of meshsync_k8s.raw_json.identity.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__object_meta(void) {
    init_json_tables();
    return PyModule_Create(&module);
}

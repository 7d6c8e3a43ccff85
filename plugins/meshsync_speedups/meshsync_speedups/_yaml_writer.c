/*
 * The C path of meshsync_file.yaml_writer: the same layout, written in C.
 *
 * Only the structure (mappings, sequences, indentation) and the trivial scalars (int, bool,
 * None) are handled here. Every string decision -- plain or quoted, escapes, block scalars,
 * keys -- comes from the Python module: from its caches on a hit, from its functions on a
 * miss. So this file cannot render a string differently from the pure-Python writer; the
 * tests compare both outputs byte for byte.
 */
#include "jsontext.h"

static PyObject *key_cache, *value_cache;            /* dict: str -> rendered text */
static PyObject *key_text_fn, *str_text_fn;          /* (key, indent_str) / (value) */
static PyObject *block_text_fn, *normalize_fn;       /* (value, indent_len) / (value) */
static PyObject *render_scalar_fn;                   /* (value) */

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
        PyErr_SetString(PyExc_RuntimeError, "_yaml_writer.setup() was not called");
        return NULL;
    }
    Buf b = {NULL, 0, 0};
    PyObject *out = NULL;
    if (write_map(&b, obj, 0, 0) == 0)
        out = PyUnicode_DecodeUTF8(b.p, b.n, "surrogatepass");
    PyMem_Free(b.p);
    return out;
}

/* ---- JSON text straight to YAML ---------------------------------------------------------
 *
 * transcode(raw, api_version, kind) writes the document that
 *     dump_document(manifest.clean(json.loads(raw), resource))
 * writes, without building the Python dict first: decoding a Pod into dicts and freeing them
 * again costs more than writing its YAML. Strings are rendered by the same Python functions
 * (their results are kept in byte-keyed caches here), so both paths cannot disagree. Anything
 * unusual -- duplicate or escaped keys, lone surrogates, floats, deep nesting, invalid JSON --
 * makes it return None and the caller takes the dict path, so the output never differs.
 */
#define MAX_DEPTH 200
#define CACHE_SLOTS (1 << 17) /* power of two; at most CACHE_LIMIT entries, load < 0.4 */
#define CACHE_LIMIT 50000     /* as yaml_writer._CACHE_LIMIT */
#define CACHE_MAX_LEN 256     /* as yaml_writer._CACHE_MAX_LEN */
#define BLOCK_FLAG 0x80000000u

/* One byte-keyed cache: decoded JSON string bytes -> rendered YAML text. */
typedef struct {
    uint64_t hash;
    uint32_t klen, vlen; /* vlen has BLOCK_FLAG for strings written as block scalars */
    char *data;          /* key bytes, then value bytes; NULL: empty slot */
} Slot;

typedef struct {
    Slot *slots;
    Py_ssize_t count;
} Cache;

static Cache value_bytes_cache, key_bytes_cache;

static uint64_t hash_bytes(const char *p, Py_ssize_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static void cache_clear(Cache *c) {
    if (c->slots == NULL)
        return;
    for (Py_ssize_t i = 0; i < CACHE_SLOTS; i++) {
        PyMem_Free(c->slots[i].data);
        c->slots[i].data = NULL;
    }
    c->count = 0;
}

static Slot *cache_find(Cache *c, const char *k, Py_ssize_t klen, uint64_t h) {
    if (c->slots == NULL)
        return NULL;
    for (Py_ssize_t i = (Py_ssize_t)(h & (CACHE_SLOTS - 1));; i = (i + 1) & (CACHE_SLOTS - 1)) {
        Slot *s = &c->slots[i];
        if (s->data == NULL)
            return NULL;
        if (s->hash == h && s->klen == klen && memcmp(s->data, k, klen) == 0)
            return s;
    }
}

/* Remember a rendering; the caller has written what it needs, so a clear here is harmless. */
static int cache_put(Cache *c, const char *k, Py_ssize_t klen, uint64_t h, const char *v,
                     Py_ssize_t vlen, int block) {
    if (klen > CACHE_MAX_LEN || vlen >= (Py_ssize_t)BLOCK_FLAG)
        return 0;
    if (c->slots == NULL) {
        c->slots = PyMem_Calloc(CACHE_SLOTS, sizeof(Slot));
        if (c->slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    if (c->count >= CACHE_LIMIT)
        cache_clear(c);
    char *data = PyMem_Malloc(klen + vlen + 1);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(data, k, klen);
    memcpy(data + klen, v, vlen);
    Py_ssize_t i = (Py_ssize_t)(h & (CACHE_SLOTS - 1));
    while (c->slots[i].data != NULL)
        i = (i + 1) & (CACHE_SLOTS - 1);
    c->slots[i] = (Slot){h, (uint32_t)klen, (uint32_t)vlen | (block ? BLOCK_FLAG : 0), data};
    c->count++;
    return 0;
}

/* A byte class, filled by init_tables(): a table lookup instead of strchr() per byte. */
static unsigned char plain_rest[256]; /* yaml_writer._PLAIN after the first letter */

static void init_tables(void) {
    init_json_tables();
    for (int c = 0; c < 256; c++)
        plain_rest[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                        (c && strchr("_./@+=:-", c) != NULL);
}

/* A JSON string at j->p (its opening quote): its decoded UTF-8 bytes in *s and *n, pointing into
 * the input when it has no escapes (the common case: no copy), else into j->scratch. */
static int parse_string(Json *j, const char **s, Py_ssize_t *n, int *escaped, int *ascii) {
    Str str;
    int rc = read_string(j, &str);
    if (rc < 0 || (rc = decode_string(j, &str, s, n)) < 0)
        return rc;
    *escaped = str.escaped;
    *ascii = str.escaped ? is_ascii(*s, *n) : str.ascii;
    return 0;
}

/* The rendered one-line text of a string, or *block = 1 for a block scalar. The text is valid
 * until the next cache_put: write it at once. */
static int render_value(const char *s, Py_ssize_t n, const char **text, Py_ssize_t *tlen,
                        int *block, PyObject **owner) {
    uint64_t h = hash_bytes(s, n);
    Slot *hit = cache_find(&value_bytes_cache, s, n, h);
    *owner = NULL;
    if (hit != NULL) {
        *block = (hit->vlen & BLOCK_FLAG) != 0;
        *text = hit->data + hit->klen;
        *tlen = hit->vlen & ~BLOCK_FLAG;
        return 0;
    }
    PyObject *value = PyUnicode_DecodeUTF8(s, n, NULL);
    if (value == NULL) { /* not valid UTF-8: the dict path reports it */
        PyErr_Clear();
        return DECLINE;
    }
    PyObject *t = str_text(value);
    Py_DECREF(value);
    if (t == NULL)
        return -1;
    *block = t == Py_None;
    if (*block) {
        Py_DECREF(t);
        *text = "";
        *tlen = 0;
    } else {
        *text = PyUnicode_AsUTF8AndSize(t, tlen);
        if (*text == NULL) {
            Py_DECREF(t);
            return -1;
        }
        *owner = t;
    }
    return cache_put(&value_bytes_cache, s, n, h, *text, *tlen, *block);
}

/* yaml_writer._literal_ok for an ASCII string with a line break: no blank before a line
 * break or at the end, no tab starting a line, no control character but tab and line feed. */
static int ascii_literal_ok(const char *s, Py_ssize_t n) {
    if (s[n - 1] == ' ' || s[n - 1] == '\t' || s[0] == '\t')
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') {
            if (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
                return 0;
            if (i + 1 < n && s[i + 1] == '\t')
                return 0;
        } else if ((c < 0x20 && c != '\t') || c >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* yaml_writer._block_scalar in C, for a string ascii_literal_ok accepted: " |" (with the
 * indentation indicator and chomping the text needs), then its lines at indent + 2. */
static int put_ascii_block(Buf *b, const char *s, Py_ssize_t n, Py_ssize_t indent) {
    Py_ssize_t body = n;
    const char *chomp;
    if (s[n - 1] == '\n') {
        chomp = (n == 1 || s[n - 2] == '\n') ? "+" : "";
        body = n - 1;
    } else {
        chomp = "-";
    }
    if (put(b, (s[0] == ' ' || s[0] == '\n') ? " |2" : " |", (s[0] == ' ' || s[0] == '\n') ? 3 : 2) < 0 ||
        put(b, chomp, (Py_ssize_t)strlen(chomp)) < 0 || put(b, "\n", 1) < 0)
        return -1;
    const char *p = s, *end = s + body;
    for (;;) {
        const char *eol = memchr(p, '\n', end - p);
        const char *line_end = eol ? eol : end;
        if (line_end > p && (spaces(b, indent + 2) < 0 || put(b, p, line_end - p) < 0))
            return -1;
        if (put(b, "\n", 1) < 0)
            return -1;
        if (eol == NULL)
            return 0;
        p = eol + 1;
    }
}

/* yaml_writer._PLAIN, the ":" end and _RESERVED for an ASCII string. */
static int ascii_plain(const char *s, Py_ssize_t n) {
    if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')) ||
        s[n - 1] == ':')
        return 0;
    for (Py_ssize_t i = 1; i < n; i++)
        if (!plain_rest[(unsigned char)s[i]])
            return 0;
    if (n <= 5) { /* the bool and null words, in any case */
        static const char *reserved[] = {"y", "n", "yes", "no", "true", "false", "on", "off",
                                         "null"};
        char lower[6];
        for (Py_ssize_t i = 0; i < n; i++)
            lower[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
        for (size_t r = 0; r < sizeof(reserved) / sizeof(*reserved); r++)
            if ((Py_ssize_t)strlen(reserved[r]) == n && memcmp(lower, reserved[r], n) == 0)
                return 0;
    }
    return 1;
}

/* yaml_writer._render_str for an ASCII string: plain, or double-quoted with its escapes. */
static int put_ascii_scalar(Buf *b, const char *s, Py_ssize_t n) {
    if (ascii_plain(s, n))
        return put(b, s, n);
    if (grow(b, n * 4 + 2) < 0)
        return -1;
    char *o = b->p + b->n;
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *named = NULL;
        switch (c) {
        case '\\': named = "\\\\"; break;
        case '"': named = "\\\""; break;
        case 0x00: named = "\\0"; break;
        case 0x07: named = "\\a"; break;
        case 0x08: named = "\\b"; break;
        case 0x09: named = "\\t"; break;
        case 0x0a: named = "\\n"; break;
        case 0x0b: named = "\\v"; break;
        case 0x0c: named = "\\f"; break;
        case 0x0d: named = "\\r"; break;
        case 0x1b: named = "\\e"; break;
        default: break;
        }
        if (named != NULL) {
            *o++ = named[0];
            *o++ = named[1];
        } else if (c < 0x20 || c == 0x7f) {
            static const char hex[] = "0123456789ABCDEF";
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->n = o - b->p;
    return 0;
}

/* Write one string scalar after "key:" or "-" (already written): " text\n" or a block. */
static int write_string(Buf *b, const char *s, Py_ssize_t n, int ascii, Py_ssize_t indent) {
    if (ascii) {
        /* ASCII (nearly every Kubernetes string) is rendered here, by the same rules as
         * yaml_writer: no Python string is made, and names and uids unique to each object
         * do not churn the caches. */
        if (n > 0 && memchr(s, '\n', n) != NULL && ascii_literal_ok(s, n))
            return put_ascii_block(b, s, n, indent);
        return put(b, " ", 1) < 0 || put_ascii_scalar(b, s, n) < 0 || put(b, "\n", 1) < 0 ? -1 : 0;
    }
    const char *text;
    Py_ssize_t tlen;
    int block;
    PyObject *owner;
    int rc = render_value(s, n, &text, &tlen, &block, &owner);
    if (rc < 0)
        return rc;
    if (!block) {
        rc = put(b, " ", 1) < 0 || put(b, text, tlen) < 0 || put(b, "\n", 1) < 0 ? -1 : 0;
        Py_XDECREF(owner);
        return rc;
    }
    PyObject *value = PyUnicode_DecodeUTF8(s, n, NULL);
    if (value == NULL)
        return -1;
    rc = put_block(b, value, indent);
    Py_DECREF(value);
    return rc;
}

/* Write "key:" for a key at `indent` (a new line's spaces already written); *explicit_key set
 * for the "? key" form, whose sequences are indented one step more. */
static int write_key(Buf *b, const char *s, Py_ssize_t n, Py_ssize_t indent, int *explicit_key) {
    if (n <= 249 && is_ascii(s, n)) { /* at most 4n + 2 <= 1000 rendered: a simple key */
        *explicit_key = 0;
        return put_ascii_scalar(b, s, n) < 0 || put(b, ":", 1) < 0 ? -1 : 0;
    }
    uint64_t h = hash_bytes(s, n);
    Slot *hit = cache_find(&key_bytes_cache, s, n, h);
    if (hit != NULL) {
        *explicit_key = 0;
        return put(b, hit->data + hit->klen, hit->vlen);
    }
    PyObject *key = PyUnicode_DecodeUTF8(s, n, NULL);
    if (key == NULL) {
        PyErr_Clear();
        return DECLINE;
    }
    PyObject *kt = key_text(key, indent);
    Py_DECREF(key);
    if (kt == NULL)
        return -1;
    Py_ssize_t klen;
    const char *k = PyUnicode_AsUTF8AndSize(kt, &klen);
    int rc = -1;
    if (k != NULL) {
        *explicit_key = klen > 0 && k[0] == '?';
        rc = put(b, k, klen);
        if (rc == 0 && !*explicit_key) /* "? key" forms depend on the indentation */
            rc = cache_put(&key_bytes_cache, s, n, h, k, klen, 0);
    }
    Py_DECREF(kt);
    return rc;
}

/* A float token (JSON grammar checked by the caller): rendered by yaml_writer.render_scalar,
 * as the dict path does with the float the decoder made of it. Out of range: declined. */
static int write_float(Buf *b, const char *start, Py_ssize_t len) {
    char text[64];
    if (len >= (Py_ssize_t)sizeof(text))
        return DECLINE;
    memcpy(text, start, len);
    text[len] = 0;
    char *end;
    double value = PyOS_string_to_double(text, &end, NULL);
    if (value == -1.0 && PyErr_Occurred())
        return -1;
    if (end != text + len || Py_IS_INFINITY(value))
        return DECLINE; /* the decoder refuses what overflows */
    PyObject *f = PyFloat_FromDouble(value);
    if (f == NULL)
        return -1;
    PyObject *t = PyObject_CallFunctionObjArgs(render_scalar_fn, f, NULL);
    Py_DECREF(f);
    if (t == NULL)
        return -1;
    int rc = put(b, " ", 1) < 0 || put_text(b, t) < 0 || put(b, "\n", 1) < 0 ? -1 : 0;
    Py_DECREF(t);
    return rc;
}

/* A number token: integers as they are (JSON's are canonical but for -0), floats through
 * write_float; huge integers Python would refuse to print are declined. */
static int write_number(Buf *b, Json *j) {
    Span number;
    int integer, rc = read_number(j, &number, &integer);
    if (rc < 0)
        return rc;
    if (!integer)
        return write_float(b, number.p, number.n);
    if (number.n > 4000)
        return DECLINE;
    if (number.n == 2 && number.p[0] == '-' && number.p[1] == '0')
        return put(b, " 0\n", 3);
    return put(b, " ", 1) < 0 || put(b, number.p, number.n) < 0 || put(b, "\n", 1) < 0 ? -1 : 0;
}

/* true, false or null, as they are. */
static int write_literal(Buf *b, Json *j) {
    Span word;
    int rc = read_literal(j, &word);
    if (rc < 0)
        return rc;
    return put(b, " ", 1) < 0 || put(b, word.p, word.n) < 0 || put(b, "\n", 1) < 0 ? -1 : 0;
}

/* Keys of one object seen so far, to decline on duplicates (the dict path keeps the last
 * value at the first key's place, which a stream writer cannot do). */
typedef struct {
    const char *s[16];
    Py_ssize_t n[16];
    uint64_t h[16];
    Py_ssize_t count;
    PyObject *more; /* a set of bytes beyond 16 keys */
} Keys;

static int keys_add(Keys *k, const char *s, Py_ssize_t n) {
    if (k->count < 16) {
        uint64_t h = n <= 16 ? hash_bytes(s, n) : hash_bytes(s, 16) ^ (uint64_t)n;
        for (Py_ssize_t i = 0; i < k->count; i++)
            if (k->h[i] == h && k->n[i] == n && memcmp(k->s[i], s, n) == 0)
                return DECLINE;
        k->s[k->count] = s;
        k->n[k->count] = n;
        k->h[k->count] = h;
        k->count++;
        return 0;
    }
    if (k->more == NULL) {
        k->more = PySet_New(NULL);
        if (k->more == NULL)
            return -1;
        for (Py_ssize_t i = 0; i < 16; i++) {
            PyObject *o = PyBytes_FromStringAndSize(k->s[i], k->n[i]);
            if (o == NULL || PySet_Add(k->more, o) < 0) {
                Py_XDECREF(o);
                return -1;
            }
            Py_DECREF(o);
        }
    }
    PyObject *o = PyBytes_FromStringAndSize(s, n);
    if (o == NULL)
        return -1;
    int seen = PySet_Contains(k->more, o);
    int rc = seen < 0 ? -1 : seen ? DECLINE : PySet_Add(k->more, o);
    Py_DECREF(o);
    return rc;
}

/* A decoded key out of the scratch buffer into a bytes object kept in *owned (a list). */
static int keep_key(PyObject **owned, const char **k, Py_ssize_t klen) {
    if (*owned == NULL && (*owned = PyList_New(0)) == NULL)
        return -1;
    PyObject *copy = PyBytes_FromStringAndSize(*k, klen);
    if (copy == NULL || PyList_Append(*owned, copy) < 0) {
        Py_XDECREF(copy);
        return -1;
    }
    Py_DECREF(copy);
    *k = PyBytes_AS_STRING(copy);
    return 0;
}

static int json_value_in_map(Buf *b, Json *j, Py_ssize_t indent, int explicit_key);
static int json_seq(Buf *b, Json *j, Py_ssize_t indent, Py_ssize_t first);

/* The members of an object (j->p after its '{', known not empty), the first at `first`
 * spaces, the others at `indent`; `skip` (may be NULL) names a key left out. *written counts
 * the members written. */
static int json_map(Buf *b, Json *j, Py_ssize_t indent, Py_ssize_t first, const char *skip,
                    Py_ssize_t *written) {
    if (++j->depth > MAX_DEPTH)
        return DECLINE;
    Keys keys = {.count = 0, .more = NULL};
    PyObject *owned = NULL; /* copies of escaped keys, alive while the keys are compared */
    Py_ssize_t prefix = first, skip_len = skip ? (Py_ssize_t)strlen(skip) : 0;
    int rc = 0;
    *written = 0;
    for (;;) {
        skip_ws(j);
        if (j->p >= j->end || *j->p != '"') {
            rc = DECLINE;
            break;
        }
        const char *k;
        Py_ssize_t klen;
        int escaped, ascii, explicit_key = 0;
        if ((rc = parse_string(j, &k, &klen, &escaped, &ascii)) < 0)
            break;
        if (escaped && (rc = keep_key(&owned, &k, klen)) < 0)
            break; /* (the scratch buffer is the value's next) */
        if ((rc = keys_add(&keys, k, klen)) < 0)
            break;
        if ((rc = read_colon(j)) < 0)
            break;
        if (skip != NULL && klen == skip_len && memcmp(k, skip, klen) == 0) {
            if ((rc = skip_checked_value(j)) < 0) /* left out unread: by its brackets */
                break;
        } else {
            if ((rc = spaces(b, prefix)) < 0 || (rc = write_key(b, k, klen, indent, &explicit_key)) < 0 ||
                (rc = json_value_in_map(b, j, indent, explicit_key)) < 0)
                break;
            prefix = indent;
            (*written)++;
        }
        if ((rc = after_element(j, '}')) <= 0)
            break; /* the end (0), or not JSON */
    }
    Py_XDECREF(keys.more);
    Py_XDECREF(owned);
    j->depth--;
    return rc;
}

/* The value after "key:" (written): as write_map in yaml_writer.py. */
static int json_value_in_map(Buf *b, Json *j, Py_ssize_t indent, int explicit_key) {
    skip_ws(j);
    if (j->p >= j->end)
        return DECLINE;
    char c = *j->p;
    if (c == '"') {
        const char *s;
        Py_ssize_t n;
        int escaped, ascii, rc = parse_string(j, &s, &n, &escaped, &ascii);
        return rc < 0 ? rc : write_string(b, s, n, ascii, indent);
    }
    if (c == '{') {
        if (opens_empty(j, '}'))
            return put(b, " {}\n", 4);
        Py_ssize_t written;
        if (put(b, "\n", 1) < 0)
            return -1;
        return json_map(b, j, indent + 2, indent + 2, NULL, &written);
    }
    if (c == '[') {
        if (opens_empty(j, ']'))
            return put(b, " []\n", 4);
        if (put(b, "\n", 1) < 0)
            return -1;
        return json_seq(b, j, explicit_key ? indent + 2 : indent, -1);
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return write_number(b, j);
    return write_literal(b, j);
}

/* The items of an array (j->p after its '['; not empty): as write_seq in yaml_writer.py. */
static int json_seq(Buf *b, Json *j, Py_ssize_t indent, Py_ssize_t first) {
    if (++j->depth > MAX_DEPTH)
        return DECLINE;
    Py_ssize_t lead = first < 0 ? indent : first;
    int rc = 0;
    for (;;) {
        skip_ws(j);
        if (j->p >= j->end) {
            rc = DECLINE;
            break;
        }
        char c = *j->p;
        if ((rc = spaces(b, lead)) < 0)
            break;
        if (c == '"') {
            const char *s;
            Py_ssize_t n;
            int escaped, ascii;
            if ((rc = put(b, "-", 1)) < 0 || (rc = parse_string(j, &s, &n, &escaped, &ascii)) < 0 ||
                (rc = write_string(b, s, n, ascii, indent)) < 0)
                break;
        } else if (c == '{') {
            Py_ssize_t written;
            if (opens_empty(j, '}'))
                rc = put(b, "- {}\n", 5);
            else if ((rc = put(b, "- ", 2)) == 0)
                rc = json_map(b, j, indent + 2, 0, NULL, &written);
        } else if (c == '[') {
            if (opens_empty(j, ']'))
                rc = put(b, "- []\n", 5);
            else if ((rc = put(b, "- ", 2)) == 0)
                rc = json_seq(b, j, indent + 2, 0);
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            rc = put(b, "-", 1) < 0 ? -1 : write_number(b, j);
        } else {
            rc = put(b, "-", 1) < 0 ? -1 : write_literal(b, j);
        }
        if (rc < 0)
            break;
        lead = indent;
        if ((rc = after_element(j, ']')) <= 0)
            break; /* the end (0), or not JSON */
    }
    j->depth--;
    return rc;
}

typedef struct {
    const char *key, *value; /* the key's bytes; the value's first byte */
    Py_ssize_t klen;
} Member;

static int member_is(const Member *m, const char *name) {
    Py_ssize_t n = (Py_ssize_t)strlen(name);
    return m->klen == n && memcmp(m->key, name, n) == 0;
}

/* apiVersion or kind as manifest.clean() takes it: the object's own non-empty string, or the
 * resource's when missing, empty or null. 1: use the object's, 0: the resource's. */
static int identity_field(Json *j, const Member *m) {
    if (m == NULL)
        return 0;
    j->p = m->value;
    if (*j->p == 'n')
        return 0; /* null */
    if (*j->p != '"')
        return DECLINE; /* a number or an object here: leave it to the dict path */
    return j->p[1] == '"' ? 0 : 1;
}

static int write_identity(Buf *b, Json *j, const char *name, const Member *m, PyObject *fallback) {
    int explicit_key, own = identity_field(j, m);
    if (own < 0)
        return own;
    int rc = write_key(b, name, (Py_ssize_t)strlen(name), 0, &explicit_key);
    if (rc < 0)
        return rc;
    if (own)
        return json_value_in_map(b, j, 0, 0);
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(fallback, &n);
    return s == NULL ? -1 : write_string(b, s, n, is_ascii(s, n), 0);
}

/* "metadata:" and the object at j->p (its '{') without managedFields, as manifest.clean(). */
static int write_metadata(Buf *b, Json *j) {
    int explicit_key, rc;
    Py_ssize_t mark = b->n, written = 0;
    if ((rc = write_key(b, "metadata", 8, 0, &explicit_key)) < 0)
        return rc;
    if (!opens_empty(j, '}')) {
        if ((rc = put(b, "\n", 1)) < 0 || (rc = json_map(b, j, 2, 2, "managedFields", &written)) < 0)
            return rc;
    }
    if (written == 0) { /* empty, or only managedFields */
        b->n = mark;
        if ((rc = write_key(b, "metadata", 8, 0, &explicit_key)) < 0 || (rc = put(b, " {}\n", 4)) < 0)
            return rc;
    }
    return 0;
}

#define REORDER (-3) /* not in the API server's order: take transcode_object()'s two passes */

/* The API server's order -- apiVersion and kind (watch objects) or neither (list items), then
 * metadata, then the rest -- in one pass, writing as it reads. Anything else: REORDER. */
static int transcode_in_order(Buf *b, Json *j, PyObject *api_version, PyObject *kind) {
    Member lead[2];
    const Member *api = NULL, *knd = NULL;
    const char *k;
    Py_ssize_t klen;
    int rc, escaped, ascii, explicit_key;
    skip_ws(j);
    if (j->p >= j->end || *j->p != '{')
        return DECLINE;
    j->p++;
    for (;;) { /* up to metadata */
        skip_ws(j);
        if (j->p >= j->end || *j->p != '"')
            return REORDER;
        if ((rc = parse_string(j, &k, &klen, &escaped, &ascii)) < 0)
            return rc;
        if (escaped || read_colon(j) < 0)
            return REORDER;
        skip_ws(j);
        Member m = {k, j->p, klen};
        if (api == NULL && member_is(&m, "apiVersion")) {
            lead[0] = m;
            api = &lead[0];
        } else if (knd == NULL && member_is(&m, "kind")) {
            lead[1] = m;
            knd = &lead[1];
        } else if (member_is(&m, "metadata") && *j->p == '{' && (api == NULL) == (knd == NULL)) {
            break;
        } else {
            return REORDER;
        }
        if ((rc = skip_value(j, j->depth)) < 0)
            return rc;
        skip_ws(j);
        if (j->p >= j->end || *j->p != ',')
            return REORDER;
        j->p++;
    }
    const char *metadata = j->p;
    if ((rc = write_identity(b, j, "apiVersion", api, api_version)) < 0 ||
        (rc = write_identity(b, j, "kind", knd, kind)) < 0)
        return rc;
    j->p = metadata;
    if ((rc = write_metadata(b, j)) < 0)
        return rc;
    Keys keys = {.count = 0, .more = NULL};
    for (;;) { /* the rest, written in place */
        skip_ws(j);
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            break;
        }
        if (j->p >= j->end || *j->p != ',') {
            rc = DECLINE;
            break;
        }
        j->p++;
        skip_ws(j);
        if (j->p >= j->end || *j->p != '"') {
            rc = DECLINE;
            break;
        }
        if ((rc = parse_string(j, &k, &klen, &escaped, &ascii)) < 0)
            break;
        Member m = {k, NULL, klen};
        if (escaped || member_is(&m, "apiVersion") || member_is(&m, "kind") ||
            member_is(&m, "metadata")) {
            rc = REORDER; /* (an escaped key would not outlive the scratch buffer) */
            break;
        }
        if ((rc = keys_add(&keys, k, klen)) < 0)
            break;
        if ((rc = read_colon(j)) < 0)
            break;
        if ((rc = write_key(b, k, klen, 0, &explicit_key)) < 0 ||
            (rc = json_value_in_map(b, j, 0, explicit_key)) < 0)
            break;
    }
    Py_XDECREF(keys.more);
    if (rc == 0) {
        skip_ws(j);
        if (j->p != j->end)
            rc = DECLINE;
    }
    return rc;
}

static int transcode_object(Buf *b, Json *j, PyObject *api_version, PyObject *kind,
                            PyObject **owned) {
    Member members[64];
    Py_ssize_t count = 0;
    int rc;
    skip_ws(j);
    if (j->p >= j->end || *j->p != '{')
        return DECLINE;
    if (!opens_empty(j, '}')) {
        for (;;) { /* find the members: apiVersion, kind and metadata are written first */
            skip_ws(j);
            if (count == 64 || j->p >= j->end || *j->p != '"')
                return DECLINE;
            Member *m = &members[count];
            int escaped, ascii;
            if ((rc = parse_string(j, &m->key, &m->klen, &escaped, &ascii)) < 0)
                return rc;
            if (escaped && (rc = keep_key(owned, &m->key, m->klen)) < 0)
                return rc;
            for (Py_ssize_t i = 0; i < count; i++)
                if (members[i].klen == m->klen && memcmp(members[i].key, m->key, m->klen) == 0)
                    return DECLINE;
            if ((rc = read_colon(j)) < 0)
                return rc;
            skip_ws(j);
            m->value = j->p;
            if ((rc = skip_value(j, j->depth)) < 0)
                return rc;
            count++;
            if ((rc = after_element(j, '}')) < 0)
                return rc;
            if (rc == 0)
                break;
        }
    }
    skip_ws(j);
    if (j->p != j->end)
        return DECLINE;
    const Member *api = NULL, *knd = NULL, *meta = NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (member_is(&members[i], "apiVersion"))
            api = &members[i];
        else if (member_is(&members[i], "kind"))
            knd = &members[i];
        else if (member_is(&members[i], "metadata"))
            meta = &members[i];
    }
    if (api != NULL && knd == NULL)
        return DECLINE; /* the source sets both when kind is missing: the dict path knows */
    if (meta != NULL && *meta->value != '{')
        return DECLINE; /* not a mapping: clean() keeps it in place */
    if ((rc = write_identity(b, j, "apiVersion", api, api_version)) < 0 ||
        (rc = write_identity(b, j, "kind", knd, kind)) < 0)
        return rc;
    if (meta != NULL) {
        j->p = meta->value;
        if ((rc = write_metadata(b, j)) < 0)
            return rc;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        const Member *m = &members[i];
        if (m == api || m == knd || m == meta)
            continue;
        int explicit_key;
        j->p = m->value;
        if ((rc = write_key(b, m->key, m->klen, 0, &explicit_key)) < 0 ||
            (rc = json_value_in_map(b, j, 0, explicit_key)) < 0)
            return rc;
    }
    return 0;
}

/* transcode(raw, api_version, kind): the manifest's YAML document as bytes, or None. */
static PyObject *transcode(PyObject *self, PyObject *args) {
    PyObject *raw, *api_version, *kind;
    if (!PyArg_ParseTuple(args, "OUU", &raw, &api_version, &kind))
        return NULL;
    if (key_cache == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_yaml_writer.setup() was not called");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Json j = {view.buf, (const char *)view.buf + view.len, {NULL, 0, 0}, 0};
    Buf b = {NULL, 0, 0};
    PyObject *out = NULL;
    int rc = grow(&b, view.len + view.len / 2); /* YAML is about as long as its JSON */
    PyObject *owned = NULL;
    if (rc == 0)
        rc = transcode_in_order(&b, &j, api_version, kind);
    if (rc == REORDER) { /* start again, finding the members first */
        b.n = 0;
        j.p = view.buf;
        j.depth = 0;
        rc = transcode_object(&b, &j, api_version, kind, &owned);
    }
    Py_XDECREF(owned);
    if (rc == 0)
        out = PyBytes_FromStringAndSize(b.p, b.n);
    else if (rc == DECLINE && !PyErr_Occurred())
        out = Py_NewRef(Py_None);
    PyMem_Free(b.p);
    PyMem_Free(j.scratch.p);
    PyBuffer_Release(&view);
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
    {"transcode", transcode, METH_VARARGS,
     "YAML document (bytes) of a Kubernetes object's JSON, cleaned; None to use the dict path."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_yaml_writer", "The C path of meshsync_file.yaml_writer.", -1, methods,
};

PyMODINIT_FUNC PyInit__yaml_writer(void) {
    init_tables();
    return PyModule_Create(&module);
}

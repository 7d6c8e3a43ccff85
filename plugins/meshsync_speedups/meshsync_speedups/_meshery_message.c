/*
 * The C path of meshsync_nats.wire: the message Meshery decodes, written straight
 * from an object's raw JSON.
 *
 * envelope(raw, event_type, cluster_id, kind, api_version) returns the bytes that
 *     wire._message(event_type, wire.event_to_meshery(event))
 * gives for that event, or None for anything it does not write the same way: a field of an
 * unexpected type (the Python path falls back to the dict path for those), duplicate or escaped
 * field names, a non-string label value, the design-id label, Services, invalid JSON or UTF-8.
 * The Python path is the reference; the tests compare both byte for byte. Building the
 * message this way skips msgspec's Struct decoding, the Python re-shaping and the Struct
 * encoding: about 18 -> 3 us for a Pod (docs/performance.md).
 */
#include "jsontext.h"

#define MAX_LABELS 4096

/* Bytes put_quoted must escape: '"', '\\' and the control characters. */
static unsigned char needs_escape[256];

static void init_tables(void) {
    init_json_tables();
    for (int c = 0; c < 256; c++)
        needs_escape[c] = c < 0x20;
    needs_escape['"'] = needs_escape['\\'] = 1;
}

/* ---- writing JSON as msgspec does --------------------------------------------------------- */

static const char HEX[] = "0123456789abcdef";

/* Decoded string bytes as a JSON string: '"', '\' and control characters escaped, the rest
 * (UTF-8 included) as it is -- msgspec's rules. */
static int put_quoted(Buf *b, const char *s, Py_ssize_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    if (put(b, "\"", 1) < 0)
        return -1;
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && !needs_escape[*p]) /* runs of plain bytes: one memcpy each */
            p++;
        if (grow(b, (p - run) + 7) < 0)
            return -1;
        memcpy(b->p + b->n, run, p - run);
        b->n += p - run;
        if (p >= end)
            break;
        unsigned char c = *p++;
        char *o = b->p + b->n;
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\t': *o++ = 't'; break;
        case '\n': *o++ = 'n'; break;
        case '\f': *o++ = 'f'; break;
        case '\r': *o++ = 'r'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = HEX[c >> 4];
            *o++ = HEX[c & 15];
        }
        b->n = o - b->p;
    }
    return put(b, "\"", 1);
}

/* A string token as msgspec would write the string it decodes to. Without escapes that is
 * the token itself (nothing in it needs escaping): copied as it is. */
static int put_string(Buf *b, const Str *str, Buf *scratch) {
    if (!str->escaped)
        return put(b, "\"", 1) < 0 || put(b, str->s, str->n) < 0 || put(b, "\"", 1) < 0 ? -1 : 0;
    if (unescape(str, scratch) < 0)
        return -1;
    return put_quoted(b, scratch->p, scratch->n);
}

/* A str argument as a JSON string. */
static int put_py_string(Buf *b, PyObject *text) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    return s == NULL ? -1 : put_quoted(b, s, n);
}

/* ---- the object ---------------------------------------------------------------------------- */

typedef struct {
    Str key, value;
} Label;

/* What the message needs from the object; an absent Str has s == NULL, an absent Span p. */
typedef struct {
    Str kind, api_version, type;
    Span spec, status, immutable, data, binary_data, string_data;
    int has_metadata;
    /* metadata */
    Str name, generate_name, namespace_, uid, resource_version, creation, deletion;
    Span generation, grace, owner_references, finalizers;
    int grace_null;
    Label *labels, *annotations;
    Str design; /* the design.meshery.io/id label: pattern_resource */
    Py_ssize_t nlabels, nannotations;
    int labels_seen, annotations_seen;
} Fields;

static int name_is(const Str *key, const char *name) {
    Py_ssize_t n = (Py_ssize_t)strlen(name);
    return key->n == n && memcmp(key->s, name, n) == 0;
}

/* A field decoded into a str: only a string will do (null fails msgspec's validation). */
static int read_str_field(Json *j, Str *out) {
    skip_ws(j);
    if (out->s != NULL)
        return DECLINE; /* given twice */
    if (j->p >= j->end || *j->p != '"')
        return DECLINE;
    return read_string(j, out);
}

/* A field kept as raw JSON text (msgspec.Raw): any value. */
static int read_raw_field(Json *j, Span *out) {
    skip_ws(j);
    if (out->p != NULL)
        return DECLINE;
    const char *start = j->p;
    int rc = skip_value(j, 1);
    if (rc < 0)
        return rc;
    out->p = start;
    out->n = j->p - start;
    return 0;
}

/* An int field (generation); `nullable` also takes null (deletionGracePeriodSeconds). */
static int read_int_field(Json *j, Span *out, int nullable, int *is_null) {
    skip_ws(j);
    if (out->p != NULL || (is_null != NULL && *is_null))
        return DECLINE;
    if (nullable && take_null(j)) {
        *is_null = 1;
        return 0;
    }
    int integer;
    int rc = read_number(j, out, &integer);
    if (rc < 0)
        return rc;
    /* floats fail msgspec's int validation; huge integers may not fit its int64 */
    return integer && out->n <= 18 ? 0 : DECLINE;
}

static int compare_labels(const void *a, const void *b) {
    const Str *x = &((const Label *)a)->key, *y = &((const Label *)b)->key;
    Py_ssize_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* A UUID as str(uuid.UUID(text)) writes it: 36 characters, lowercase hex and hyphens. */
static int canonical_uuid(const Str *text) {
    if (text->escaped || text->n != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = text->s[i];
        int hyphen = i == 8 || i == 13 || i == 18 || i == 23;
        if (hyphen ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return 1;
}

/* labels/annotations: a mapping of string values (or null), sorted by key; `design` (labels
 * only) gets the design id label's value. */
static int read_labels(Json *j, Label **out, Py_ssize_t *count, int *seen, Str *design) {
    skip_ws(j);
    if (*seen)
        return DECLINE;
    *seen = 1;
    if (take_null(j))
        return 0;
    if (j->p >= j->end || *j->p != '{')
        return DECLINE;
    if (opens_empty(j, '}'))
        return 0;
    Py_ssize_t cap = 16, n = 0;
    Label *labels = PyMem_Malloc(cap * sizeof(Label));
    if (labels == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int rc;
    do {
        Label label; /* an escaped key (rare) would sort and compare as its decoded form */
        if ((rc = read_member_name(j, &label.key, 0)) < 0)
            break;
        skip_ws(j);
        if (j->p >= j->end || *j->p != '"') { /* a non-string value: json_text() in Python */
            rc = DECLINE;
            break;
        }
        if ((rc = read_string(j, &label.value)) < 0)
            break;
        if (design != NULL && name_is(&label.key, "design.meshery.io/id")) {
            if (!canonical_uuid(&label.value)) { /* uuid.UUID() reads other spellings too */
                rc = DECLINE;
                break;
            }
            *design = label.value; /* pattern_resource */
        }
        if (n == cap) {
            if (cap >= MAX_LABELS) {
                rc = DECLINE;
                break;
            }
            cap *= 2;
            Label *more = PyMem_Realloc(labels, cap * sizeof(Label));
            if (more == NULL) {
                PyErr_NoMemory();
                rc = -1;
                break;
            }
            labels = more;
        }
        labels[n++] = label;
    } while ((rc = after_element(j, '}')) == 1);
    if (rc < 0) {
        PyMem_Free(labels);
        return rc;
    }
    if (n > 1) {
        qsort(labels, n, sizeof(Label), compare_labels);
        for (Py_ssize_t i = 1; i < n; i++) /* a key twice: a dict keeps the last */
            if (compare_labels(&labels[i - 1], &labels[i]) == 0) {
                PyMem_Free(labels);
                return DECLINE;
            }
    }
    *out = labels;
    *count = n;
    return 0;
}

/* How each field the message needs is read, found by name in a table. */
enum { F_STR, F_RAW, F_INT, F_NULLABLE_INT, F_LABELS, F_ANNOTATIONS, F_METADATA };

typedef struct {
    const char *name;
    int kind;
    size_t offset; /* of its Str or Span in Fields */
} FieldSpec;

static const FieldSpec METADATA_FIELDS[] = {
    {"name", F_STR, offsetof(Fields, name)},
    {"generateName", F_STR, offsetof(Fields, generate_name)},
    {"namespace", F_STR, offsetof(Fields, namespace_)},
    {"uid", F_STR, offsetof(Fields, uid)},
    {"resourceVersion", F_STR, offsetof(Fields, resource_version)},
    {"generation", F_INT, offsetof(Fields, generation)},
    {"creationTimestamp", F_STR, offsetof(Fields, creation)},
    {"deletionTimestamp", F_STR, offsetof(Fields, deletion)},
    {"deletionGracePeriodSeconds", F_NULLABLE_INT, offsetof(Fields, grace)},
    {"labels", F_LABELS, 0},
    {"annotations", F_ANNOTATIONS, 0},
    {"ownerReferences", F_RAW, offsetof(Fields, owner_references)},
    {"finalizers", F_RAW, offsetof(Fields, finalizers)},
    {NULL, 0, 0}, /* anything else (managedFields): not sent */
};

static const FieldSpec OBJECT_FIELDS[] = {
    {"kind", F_STR, offsetof(Fields, kind)},
    {"apiVersion", F_STR, offsetof(Fields, api_version)},
    {"metadata", F_METADATA, 0},
    {"spec", F_RAW, offsetof(Fields, spec)},
    {"status", F_RAW, offsetof(Fields, status)},
    {"immutable", F_RAW, offsetof(Fields, immutable)},
    {"data", F_RAW, offsetof(Fields, data)},
    {"binaryData", F_RAW, offsetof(Fields, binary_data)},
    {"stringData", F_RAW, offsetof(Fields, string_data)},
    {"type", F_STR, offsetof(Fields, type)},
    {NULL, 0, 0},
};

static int read_metadata(Json *j, Fields *f);

static int read_field(Json *j, Fields *f, const FieldSpec *spec) {
    char *at = (char *)f + spec->offset;
    switch (spec->kind) {
    case F_STR: return read_str_field(j, (Str *)at);
    case F_RAW: return read_raw_field(j, (Span *)at);
    case F_INT: return read_int_field(j, (Span *)at, 0, NULL);
    case F_NULLABLE_INT: return read_int_field(j, (Span *)at, 1, &f->grace_null);
    case F_LABELS: return read_labels(j, &f->labels, &f->nlabels, &f->labels_seen, &f->design);
    case F_ANNOTATIONS:
        return read_labels(j, &f->annotations, &f->nannotations, &f->annotations_seen, NULL);
    default: return read_metadata(j, f);
    }
}

/* The members of an object (j->p after its '{', not empty): the fields in `specs` read into
 * `f`, the others skipped (checked). */
static int read_fields(Json *j, Fields *f, const FieldSpec *specs, int depth) {
    int rc;
    do {
        Str key;
        if (read_member_name(j, &key, 0) < 0)
            return DECLINE; /* (an escaped name might spell a field's) */
        const FieldSpec *spec = specs;
        while (spec->name != NULL && !name_is(&key, spec->name))
            spec++;
        rc = spec->name != NULL ? read_field(j, f, spec) : skip_value(j, depth);
        if (rc < 0)
            return rc;
    } while ((rc = after_element(j, '}')) == 1);
    return rc;
}

static int read_metadata(Json *j, Fields *f) {
    skip_ws(j);
    if (f->has_metadata)
        return DECLINE;
    f->has_metadata = 1;
    if (take_null(j)) /* metadata: null, all defaults */
        return 0;
    if (j->p >= j->end || *j->p != '{')
        return DECLINE;
    return opens_empty(j, '}') ? 0 : read_fields(j, f, METADATA_FIELDS, 2);
}

static int read_object(Json *j, Fields *f) {
    skip_ws(j);
    if (j->p >= j->end || *j->p != '{')
        return DECLINE;
    if (!opens_empty(j, '}')) {
        int rc = read_fields(j, f, OBJECT_FIELDS, 1);
        if (rc < 0)
            return rc;
    }
    skip_ws(j);
    return j->p == j->end ? 0 : DECLINE;
}

/* ,"name":"value" for a str field, left out when empty (omit_defaults). */
static int put_str_member(Buf *b, const char *member, const Str *value, Buf *scratch) {
    if (value->s == NULL || value->n == 0)
        return 0;
    return put(b, member, (Py_ssize_t)strlen(member)) < 0 ? -1 : put_string(b, value, scratch);
}

/* The raw text of a value as a JSON string; "" when absent or null (wire._text). */
static int raw_text_empty(const Span *raw) {
    return raw->p == NULL || (raw->n == 4 && memcmp(raw->p, "null", 4) == 0);
}

static int put_raw_member(Buf *b, const char *member, const Span *raw) {
    if (raw_text_empty(raw))
        return 0;
    return put(b, member, (Py_ssize_t)strlen(member)) < 0 ? -1 : put_quoted(b, raw->p, raw->n);
}

static int put_attribute(Buf *b, const char *member, const Span *raw) {
    if (raw_text_empty(raw))
        return 0;
    if (put(b, member, (Py_ssize_t)strlen(member)) < 0 || PUT_LIT(b, "{\"id\":\"\",\"attribute\":") < 0 ||
        put_quoted(b, raw->p, raw->n) < 0)
        return -1;
    return put(b, "}", 1);
}

/* An int as msgspec writes the decoded int: its digits, 0 for -0 (then left out). */
static int int_is_zero(const Span *n) {
    return (n->n == 1 && n->p[0] == '0') || (n->n == 2 && n->p[0] == '-' && n->p[1] == '0');
}

static int put_labels(Buf *b, const char *member, const char *kind, const Label *labels,
                      Py_ssize_t n, Buf *scratch) {
    if (n == 0)
        return 0;
    if (put(b, member, (Py_ssize_t)strlen(member)) < 0 || put(b, "[", 1) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((i && put(b, ",", 1) < 0) || PUT_LIT(b, "{\"id\":\"\",\"unique_id\":\"\",\"kind\":\"") < 0 ||
            put(b, kind, (Py_ssize_t)strlen(kind)) < 0 || put(b, "\"", 1) < 0 ||
            put_str_member(b, ",\"key\":", &labels[i].key, scratch) < 0 ||
            put_str_member(b, ",\"value\":", &labels[i].value, scratch) < 0 || put(b, "}", 1) < 0)
            return -1;
    }
    return put(b, "]", 1);
}

static int write_message(Buf *b, Fields *f, PyObject *event_type, PyObject *cluster_id,
                         PyObject *kind, PyObject *api_version, Buf *scratch) {
    if (PUT_LIT(b, "{\"ObjectType\":\"meshsync-data\",\"EventType\":") < 0 ||
        put_py_string(b, event_type) < 0 || PUT_LIT(b, ",\"Request\":null,\"Object\":{\"id\":\"\",\"apiVersion\":") < 0)
        return -1;
    /* list items carry neither: both come from the resource, as in event_to_meshery */
    int own = f->kind.s != NULL;
    if (own) {
        if (f->api_version.s != NULL ? put_string(b, &f->api_version, scratch) < 0 : PUT_LIT(b, "\"\"") < 0)
            return -1;
        if (PUT_LIT(b, ",\"kind\":") < 0 || put_string(b, &f->kind, scratch) < 0)
            return -1;
    } else if (put_py_string(b, api_version) < 0 || PUT_LIT(b, ",\"kind\":") < 0 ||
               put_py_string(b, kind) < 0) {
        return -1;
    }
    if (PUT_LIT(b, ",\"model\":\"\",\"metadata\":{\"id\":\"\"") < 0 ||
        put_str_member(b, ",\"name\":", &f->name, scratch) < 0 ||
        put_str_member(b, ",\"generateName\":", &f->generate_name, scratch) < 0 ||
        put_str_member(b, ",\"namespace\":", &f->namespace_, scratch) < 0 ||
        PUT_LIT(b, ",\"uid\":") < 0 ||
        (f->uid.s != NULL ? put_string(b, &f->uid, scratch) : PUT_LIT(b, "\"\"")) < 0 ||
        put_str_member(b, ",\"resourceVersion\":", &f->resource_version, scratch) < 0)
        return -1;
    if (f->generation.p != NULL && !int_is_zero(&f->generation) &&
        (PUT_LIT(b, ",\"generation\":") < 0 || put(b, f->generation.p, f->generation.n) < 0))
        return -1;
    if (put_str_member(b, ",\"creationTimestamp\":", &f->creation, scratch) < 0 ||
        put_str_member(b, ",\"deletionTimestamp\":", &f->deletion, scratch) < 0)
        return -1;
    if (f->grace.p != NULL) {
        const char *digits = int_is_zero(&f->grace) ? "0" : f->grace.p;
        Py_ssize_t len = int_is_zero(&f->grace) ? 1 : f->grace.n;
        if (PUT_LIT(b, ",\"deletionGracePeriodSeconds\":") < 0 || put(b, digits, len) < 0)
            return -1;
    }
    if (put_labels(b, ",\"labels\":", "label", f->labels, f->nlabels, scratch) < 0 ||
        put_labels(b, ",\"annotations\":", "annotation", f->annotations, f->nannotations, scratch) < 0 ||
        put_raw_member(b, ",\"ownerReferences\":", &f->owner_references) < 0 ||
        put_raw_member(b, ",\"finalizers\":", &f->finalizers) < 0 ||
        PUT_LIT(b, ",\"cluster_id\":\"\"}") < 0 || put_attribute(b, ",\"spec\":", &f->spec) < 0 ||
        put_attribute(b, ",\"status\":", &f->status) < 0 || PUT_LIT(b, ",\"cluster_id\":") < 0 ||
        put_py_string(b, cluster_id) < 0 ||
        PUT_LIT(b, ",\"pattern_resource\":") < 0 ||
        (f->design.s != NULL ? put_string(b, &f->design, scratch) : PUT_LIT(b, "null")) < 0 ||
        PUT_LIT(b, ",\"component_metadata\":null") < 0 ||
        put_raw_member(b, ",\"immutable\":", &f->immutable) < 0 ||
        put_raw_member(b, ",\"data\":", &f->data) < 0 ||
        put_raw_member(b, ",\"binaryData\":", &f->binary_data) < 0 ||
        put_raw_member(b, ",\"stringData\":", &f->string_data) < 0 ||
        put_str_member(b, ",\"type\":", &f->type, scratch) < 0)
        return -1;
    return PUT_LIT(b, "}}");
}

/* envelope(raw, event_type, cluster_id, kind, api_version) -> bytes | None */
static PyObject *envelope(PyObject *self, PyObject *args) {
    PyObject *raw, *event_type, *cluster_id, *kind, *api_version;
    if (!PyArg_ParseTuple(args, "OUUUU", &raw, &event_type, &cluster_id, &kind, &api_version))
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Json j = {view.buf, (const char *)view.buf + view.len, {NULL, 0, 0}, 0};
    Fields f;
    memset(&f, 0, sizeof(f));
    Buf b = {NULL, 0, 0}; /* the decoded strings that had escapes go to j.scratch */
    PyObject *out = NULL;
    int rc = read_object(&j, &f);
    if (rc == 0 && (f.kind.escaped || f.api_version.escaped))
        rc = DECLINE; /* (it might spell Service) */
    if (rc == 0 && f.kind.s != NULL && name_is(&f.kind, "Service") && f.api_version.s != NULL &&
        name_is(&f.api_version, "v1"))
        rc = DECLINE; /* its URLs are worked out from the decoded object */
    if (rc == 0 && (rc = grow(&b, view.len + view.len / 4 + 512)) == 0)
        rc = write_message(&b, &f, event_type, cluster_id, kind, api_version, &j.scratch);
    if (rc == 0)
        out = PyBytes_FromStringAndSize(b.p, b.n);
    else if (rc == DECLINE && !PyErr_Occurred())
        out = Py_NewRef(Py_None);
    PyMem_Free(f.labels);
    PyMem_Free(f.annotations);
    PyMem_Free(b.p);
    PyMem_Free(j.scratch.p);
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"envelope", envelope, METH_VARARGS,
     "The Meshery message of an object's raw JSON (see wire.event_envelope), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_meshery_message", "The C path of meshsync_nats.wire.", -1, methods,
};

PyMODINIT_FUNC PyInit__meshery_message(void) {
    init_tables();
    return PyModule_Create(&module);
}

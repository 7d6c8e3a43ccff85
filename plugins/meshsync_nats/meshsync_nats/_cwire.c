/*
 * Optional C speed-up of meshsync_nats.wire: the message Meshery decodes, written straight
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
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <string.h>

#define DECLINE (-2)
#define MAX_DEPTH 500
#define MAX_LABELS 4096

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

#define PUT_LIT(b, s) put((b), (s), (Py_ssize_t)(sizeof(s) - 1))

/* ---- reading JSON ---------------------------------------------------------------------- */

typedef struct {
    const char *p, *end;
} Json;

/* A string token: its bytes between the quotes, still escaped if `escaped`. */
typedef struct {
    const char *s;
    Py_ssize_t n;
    int escaped;
} Str;

/* A value's JSON text, as it stands in the input. */
typedef struct {
    const char *p;
    Py_ssize_t n;
} Span;

/* Byte classes inside a string (init_tables): 0 plain ASCII, else what needs a look. */
enum { PLAIN = 0, QUOTE, BACKSLASH, CONTROL, HIGH };
static unsigned char string_class[256];
/* Bytes put_quoted must escape: '"', '\\' and the control characters. */
static unsigned char needs_escape[256];

static void init_tables(void) {
    for (int c = 0; c < 256; c++) {
        string_class[c] = c < 0x20 ? CONTROL : c >= 0x80 ? HIGH : PLAIN;
        needs_escape[c] = c < 0x20;
    }
    string_class['"'] = QUOTE;
    string_class['\\'] = BACKSLASH;
    needs_escape['"'] = needs_escape['\\'] = 1;
}

static inline void skip_ws(Json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

/* Length of the valid UTF-8 sequence at p (no surrogates, no overlong forms), or 0. */
static Py_ssize_t utf8_length(const unsigned char *p, const unsigned char *end) {
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return end - p >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (end - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
            return 0; /* overlong, or a surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (end - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

/* A string at j->p (its opening quote), checked: valid escapes, no raw control characters,
 * valid UTF-8. Surrogate escapes must pair up (msgspec refuses lone ones). */
static int read_string(Json *j, Str *out) {
    const unsigned char *p = (const unsigned char *)j->p + 1, *end = (const unsigned char *)j->end;
    const unsigned char *start = p;
    int escaped = 0;
    for (;;) {
        while (p < end && string_class[*p] == PLAIN) /* one table look per byte */
            p++;
        if (p >= end || *p == '"')
            break;
        unsigned char c = *p;
        if (c < 0x20)
            return DECLINE;
        if (c == '\\') {
            escaped = 1;
            if (end - p < 2)
                return DECLINE;
            unsigned char e = p[1];
            if (e == 'u') {
                unsigned cp = 0;
                if (end - p < 6)
                    return DECLINE;
                for (int i = 2; i < 6; i++) {
                    unsigned char h = p[i];
                    cp <<= 4;
                    if (h >= '0' && h <= '9')
                        cp |= h - '0';
                    else if (h >= 'a' && h <= 'f')
                        cp |= h - 'a' + 10;
                    else if (h >= 'A' && h <= 'F')
                        cp |= h - 'A' + 10;
                    else
                        return DECLINE;
                }
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return DECLINE;
                if (cp >= 0xD800 && cp <= 0xDBFF &&
                    (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
                     !(p[8] == 'd' || p[8] == 'D') ||
                     !((p[9] >= 'c' && p[9] <= 'f') || (p[9] >= 'C' && p[9] <= 'F'))))
                    return DECLINE; /* a high surrogate without its low half */
                p += 6;
            } else if (strchr("\"\\/bfnrt", e) != NULL && e) {
                p += 2;
            } else {
                return DECLINE;
            }
            continue;
        }
        Py_ssize_t len = utf8_length(p, end);
        if (len == 0)
            return DECLINE;
        p += len;
    }
    if (p >= end)
        return DECLINE;
    out->s = (const char *)start;
    out->n = (const char *)p - (const char *)start;
    out->escaped = escaped;
    j->p = (const char *)p + 1;
    return 0;
}

static int skip_value(Json *j, int depth);

/* A number token, checked against JSON's grammar; *integer says it has no fraction/exponent. */
static int read_number(Json *j, Span *out, int *integer) {
    const char *p = j->p, *end = j->end;
    if (p < end && *p == '-')
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return DECLINE;
    if (*p == '0')
        p++;
    else
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    *integer = 1;
    if (p < end && *p == '.') {
        *integer = 0;
        const char *digits = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == digits)
            return DECLINE;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *integer = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        const char *digits = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == digits)
            return DECLINE;
    }
    out->p = j->p;
    out->n = p - j->p;
    j->p = p;
    return 0;
}

static int skip_literal(Json *j) {
    static const char *words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        Py_ssize_t n = (Py_ssize_t)strlen(words[i]);
        if (j->end - j->p >= n && memcmp(j->p, words[i], n) == 0) {
            j->p += n;
            return 0;
        }
    }
    return DECLINE;
}

/* After a member or an item: 1 if a ',' follows, 0 at the closing bracket (consumed). */
static int after_element(Json *j, char close) {
    skip_ws(j);
    if (j->p < j->end && *j->p == ',') {
        j->p++;
        return 1;
    }
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    return DECLINE;
}

/* Whether the container at j->p (its opening bracket) is empty; consumes it either way. */
static int opens_empty(Json *j, char close) {
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 1;
    }
    return 0;
}

/* A member's name and the ':' after it; an escaped name only where `escaped_ok`. */
static int read_member_name(Json *j, Str *key, int escaped_ok) {
    skip_ws(j);
    if (j->p >= j->end || *j->p != '"' || read_string(j, key) < 0 || (key->escaped && !escaped_ok))
        return DECLINE;
    skip_ws(j);
    if (j->p >= j->end || *j->p++ != ':')
        return DECLINE;
    return 0;
}

/* Skip one value, checking it is JSON (msgspec checks what it skips too). */
static int skip_value(Json *j, int depth) {
    Str str;
    Span num;
    int integer, rc;
    skip_ws(j);
    if (j->p >= j->end || depth > MAX_DEPTH)
        return DECLINE;
    char c = *j->p;
    if (c == '"')
        return read_string(j, &str);
    if (c == '{') {
        if (opens_empty(j, '}'))
            return 0;
        do {
            if (read_member_name(j, &str, 1) < 0)
                return DECLINE;
            if ((rc = skip_value(j, depth + 1)) < 0)
                return rc;
        } while ((rc = after_element(j, '}')) == 1);
        return rc;
    }
    if (c == '[') {
        if (opens_empty(j, ']'))
            return 0;
        do {
            if ((rc = skip_value(j, depth + 1)) < 0)
                return rc;
        } while ((rc = after_element(j, ']')) == 1);
        return rc;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return read_number(j, &num, &integer);
    return skip_literal(j);
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

static unsigned hex_value(const char *p) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        v = (v << 4) | (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
    }
    return v;
}

/* The decoded bytes of a checked string token (escapes resolved) into `scratch`. */
static int unescape(const Str *str, Buf *scratch) {
    scratch->n = 0;
    const char *p = str->s, *end = str->s + str->n;
    while (p < end) {
        const char *run = p;
        while (p < end && *p != '\\')
            p++;
        if (put(scratch, run, p - run) < 0)
            return -1;
        if (p >= end)
            break;
        char e = p[1], one = 0;
        switch (e) {
        case '"': one = '"'; break;
        case '\\': one = '\\'; break;
        case '/': one = '/'; break;
        case 'b': one = '\b'; break;
        case 'f': one = '\f'; break;
        case 'n': one = '\n'; break;
        case 'r': one = '\r'; break;
        case 't': one = '\t'; break;
        default: break;
        }
        if (e != 'u') {
            if (put(scratch, &one, 1) < 0)
                return -1;
            p += 2;
            continue;
        }
        unsigned cp = hex_value(p + 2);
        p += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* paired: read_string checked the low half */
            cp = 0x10000 + ((cp - 0xD800) << 10) + (hex_value(p + 2) - 0xDC00);
            p += 6;
        }
        char u[4];
        Py_ssize_t len;
        if (cp < 0x80) {
            u[0] = (char)cp;
            len = 1;
        } else if (cp < 0x800) {
            u[0] = (char)(0xC0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3F));
            len = 2;
        } else if (cp < 0x10000) {
            u[0] = (char)(0xE0 | (cp >> 12));
            u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            u[2] = (char)(0x80 | (cp & 0x3F));
            len = 3;
        } else {
            u[0] = (char)(0xF0 | (cp >> 18));
            u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
            u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
            u[3] = (char)(0x80 | (cp & 0x3F));
            len = 4;
        }
        if (put(scratch, u, len) < 0)
            return -1;
    }
    return 0;
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
    if (nullable && j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
        j->p += 4;
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
    if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
        j->p += 4;
        return 0;
    }
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
        skip_ws(j);
        if (j->p >= j->end || *j->p != '"') {
            rc = DECLINE;
            break;
        }
        Label label;
        if ((rc = read_string(j, &label.key)) < 0)
            break;
        if (label.key.escaped) { /* rare; it would sort and compare as its decoded form */
            rc = DECLINE;
            break;
        }
        skip_ws(j);
        if (j->p >= j->end || *j->p++ != ':') {
            rc = DECLINE;
            break;
        }
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
    if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) { /* metadata: null, all defaults */
        j->p += 4;
        return 0;
    }
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
    Json j = {view.buf, (const char *)view.buf + view.len};
    Fields f;
    memset(&f, 0, sizeof(f));
    Buf b = {NULL, 0, 0}, scratch = {NULL, 0, 0};
    PyObject *out = NULL;
    int rc = read_object(&j, &f);
    if (rc == 0 && (f.kind.escaped || f.api_version.escaped))
        rc = DECLINE; /* (it might spell Service) */
    if (rc == 0 && f.kind.s != NULL && name_is(&f.kind, "Service") && f.api_version.s != NULL &&
        name_is(&f.api_version, "v1"))
        rc = DECLINE; /* its URLs are worked out from the decoded object */
    if (rc == 0 && (rc = grow(&b, view.len + view.len / 4 + 512)) == 0)
        rc = write_message(&b, &f, event_type, cluster_id, kind, api_version, &scratch);
    if (rc == 0)
        out = PyBytes_FromStringAndSize(b.p, b.n);
    else if (rc == DECLINE && !PyErr_Occurred())
        out = Py_NewRef(Py_None);
    PyMem_Free(f.labels);
    PyMem_Free(f.annotations);
    PyMem_Free(b.p);
    PyMem_Free(scratch.p);
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"envelope", envelope, METH_VARARGS,
     "The Meshery message of an object's raw JSON (see wire.event_envelope), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cwire", "C speed-up of meshsync_nats.wire.", -1, methods,
};

PyMODINIT_FUNC PyInit__cwire(void) {
    init_tables();
    return PyModule_Create(&module);
}

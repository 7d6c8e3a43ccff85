/*
 * Reading JSON text and writing bytes: what every extension of meshsync_speedups shares.
 *
 * The readers check what they read as strictly as msgspec does (escapes, control characters,
 * UTF-8, surrogate pairs, the number grammar) and answer DECLINE for anything else: an
 * extension that declines hands the object back to its package's Python code, which is the
 * reference. Each extension includes this header once (one translation unit per module), so
 * the functions are static; inline, so that one an extension does not use draws no warning.
 */
#ifndef MESHSYNC_JSONTEXT_H
#define MESHSYNC_JSONTEXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Not an error: this input is not one the C path writes the same way; use the Python path. */
#define DECLINE (-2)
/* Deeper nesting than this is declined (the decoders refuse it too). */
#define JSON_MAX_DEPTH 500

/* ---- an output buffer ------------------------------------------------------------------- */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Buf;

static inline int grow(Buf *b, Py_ssize_t extra) {
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

/* The UTF-8 bytes of code point cp at o (room for 4); how many. */
static inline int utf8_encode(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static inline int put_utf8(Buf *b, unsigned cp) {
    if (grow(b, 4) < 0)
        return -1;
    b->n += utf8_encode(b->p + b->n, cp);
    return 0;
}

/* ---- reading JSON ----------------------------------------------------------------------- */

typedef struct {
    const char *p, *end;
    Buf scratch; /* decoded strings that had escapes (unescape) */
    int depth;   /* of the containers being written, for the writers that recurse */
} Json;

/* A string token: its bytes between the quotes, still escaped if `escaped`; `ascii` when no
 * byte of the token is above 0x7f. */
typedef struct {
    const char *s;
    Py_ssize_t n;
    int escaped, ascii;
} Str;

/* A value's JSON text, as it stands in the input. */
typedef struct {
    const char *p;
    Py_ssize_t n;
} Span;

/* Byte classes inside a string (init_json_tables): 0 plain ASCII, else what needs a look. */
enum { JSON_PLAIN = 0, JSON_QUOTE, JSON_BACKSLASH, JSON_CONTROL, JSON_HIGH };
static unsigned char string_class[256];

static inline void init_json_tables(void) {
    for (int c = 0; c < 256; c++)
        string_class[c] = c < 0x20 ? JSON_CONTROL : c >= 0x80 ? JSON_HIGH : JSON_PLAIN;
    string_class['"'] = JSON_QUOTE;
    string_class['\\'] = JSON_BACKSLASH;
}

static inline void skip_ws(Json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

/* Whether the string of n bytes at s is all ASCII. */
static inline int is_ascii(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

/* Length of the valid UTF-8 sequence at p (no surrogates, no overlong forms), or 0. */
static inline Py_ssize_t utf8_length(const unsigned char *p, const unsigned char *end) {
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

/* The four hex digits at p as a number; -1 if one is not a hex digit. */
static inline int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* The \uXXXX escape at p (its backslash), with its low half if it is a high surrogate: the
 * code point in *cp and the escape's length in bytes (6 or 12); 0 if it is not valid (bad hex
 * digits, a lone surrogate: msgspec refuses those). */
static inline int unicode_escape(const char *p, const char *end, unsigned *cp) {
    unsigned lo;
    if (end - p < 6 || hex4(p + 2, cp) < 0 || (*cp >= 0xDC00 && *cp <= 0xDFFF))
        return 0;
    if (*cp < 0xD800 || *cp > 0xDBFF)
        return 6;
    if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &lo) < 0 || lo < 0xDC00 ||
        lo > 0xDFFF)
        return 0;
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    return 12;
}

/* A string at j->p (its opening quote), checked: valid escapes, no raw control characters,
 * valid UTF-8. */
static inline int read_string(Json *j, Str *out) {
    const unsigned char *p = (const unsigned char *)j->p + 1, *end = (const unsigned char *)j->end;
    const unsigned char *start = p;
    int escaped = 0, ascii = 1;
    for (;;) {
        while (p < end && string_class[*p] == JSON_PLAIN) /* one table look per byte */
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
                unsigned cp;
                int len = unicode_escape((const char *)p, (const char *)end, &cp);
                if (len == 0)
                    return DECLINE;
                p += len;
            } else if (e && strchr("\"\\/bfnrt", e) != NULL) {
                p += 2;
            } else {
                return DECLINE;
            }
            continue;
        }
        Py_ssize_t len = utf8_length(p, end);
        if (len == 0)
            return DECLINE;
        ascii = 0;
        p += len;
    }
    if (p >= end)
        return DECLINE;
    out->s = (const char *)start;
    out->n = (const char *)p - (const char *)start;
    out->escaped = escaped;
    out->ascii = ascii;
    j->p = (const char *)p + 1;
    return 0;
}

/* The decoded bytes of a string token read_string checked (escapes resolved) into `scratch`. */
static inline int unescape(const Str *str, Buf *scratch) {
    scratch->n = 0;
    if (grow(scratch, str->n) < 0) /* decoded text is never longer than its token */
        return -1;
    char *o = scratch->p;
    const char *p = str->s, *end = str->s + str->n;
    while (p < end) {
        /* memchr to the next backslash: the runs between escapes in one copy each */
        const char *escape = memchr(p, '\\', end - p);
        const char *run_end = escape != NULL ? escape : end;
        memcpy(o, p, run_end - p);
        o += run_end - p;
        p = run_end;
        if (escape == NULL)
            break;
        switch (p[1]) {
        case 'u': {
            unsigned cp;
            p += unicode_escape(p, end, &cp); /* checked by read_string: 6 or 12 */
            o += utf8_encode(o, cp);
            continue;
        }
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        default: *o++ = p[1]; /* " \\ / */
        }
        p += 2;
    }
    scratch->n = o - scratch->p;
    return 0;
}

/* A string token's decoded bytes: the token itself when it has no escapes (no copy), else
 * j->scratch, valid until the next decode_string. */
static inline int decode_string(Json *j, const Str *str, const char **s, Py_ssize_t *n) {
    if (!str->escaped) {
        *s = str->s;
        *n = str->n;
        return 0;
    }
    if (unescape(str, &j->scratch) < 0)
        return -1;
    *s = j->scratch.p;
    *n = j->scratch.n;
    return 0;
}

/* A number token, checked against JSON's grammar; *integer says it has no fraction/exponent. */
static inline int read_number(Json *j, Span *out, int *integer) {
    const char *p = j->p, *end = j->end;
    if (p < end && *p == '-')
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return DECLINE;
    if (*p == '0') {
        if (++p < end && *p >= '0' && *p <= '9')
            return DECLINE; /* a leading zero */
    } else
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

/* true, false or null at j->p: its text in *out. */
static inline int read_literal(Json *j, Span *out) {
    static const char *words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        Py_ssize_t n = (Py_ssize_t)strlen(words[i]);
        if (j->end - j->p >= n && memcmp(j->p, words[i], n) == 0) {
            out->p = j->p;
            out->n = n;
            j->p += n;
            return 0;
        }
    }
    return DECLINE;
}

/* Whether `null` stands at j->p; consumed if so. */
static inline int take_null(Json *j) {
    if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
        j->p += 4;
        return 1;
    }
    return 0;
}

/* After a member or an item: 1 if a ',' follows, 0 at the closing bracket (consumed). */
static inline int after_element(Json *j, char close) {
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
static inline int opens_empty(Json *j, char close) {
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 1;
    }
    return 0;
}

/* The ':' after a member's name (white space around it allowed). */
static inline int read_colon(Json *j) {
    skip_ws(j);
    if (j->p >= j->end || *j->p != ':')
        return DECLINE;
    j->p++;
    return 0;
}

/* A member's name and the ':' after it; an escaped name only where `escaped_ok`. */
static inline int read_member_name(Json *j, Str *key, int escaped_ok) {
    skip_ws(j);
    if (j->p >= j->end || *j->p != '"' || read_string(j, key) < 0 || (key->escaped && !escaped_ok))
        return DECLINE;
    return read_colon(j);
}

/* Skip one value, checking it is JSON (msgspec checks what it skips too). */
static inline int skip_value(Json *j, int depth) {
    Str str;
    Span span;
    int integer, rc;
    skip_ws(j);
    if (j->p >= j->end || depth > JSON_MAX_DEPTH)
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
        return read_number(j, &span, &integer);
    return read_literal(j, &span);
}

/* Skip one value of JSON text that has been checked already (msgspec cut it out of a page):
 * only its end is looked for, by its quotes and brackets, several times faster than skip_value,
 * which checks every token as it goes. */
static inline int skip_checked_value(Json *j) {
    const char *p = j->p, *end = j->end;
    int depth = 0;
    do {
        while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
            p++;
        if (p >= end)
            return DECLINE;
        char c = *p;
        if (c == '"') {
            const char *q = p + 1;
            for (;;) { /* memchr to the next quote: long strings (annotations) in big steps */
                q = memchr(q, '"', end - q);
                if (q == NULL)
                    return DECLINE;
                const char *r = q;
                while (r > p + 1 && r[-1] == '\\')
                    r--;
                if (((q - r) & 1) == 0) /* an even run of backslashes before it: its end */
                    break;
                q++;
            }
            p = q + 1;
        } else if (c == '{' || c == '[') {
            depth++;
            p++;
        } else if (c == '}' || c == ']') {
            if (--depth < 0)
                return DECLINE;
            p++;
        } else if (c == ',' || c == ':') {
            if (depth == 0)
                return DECLINE;
            p++;
        } else { /* a number or a literal: up to what ends it */
            const char *start = p;
            while (p < end && *p != ',' && *p != ']' && *p != '}' && *p != ':' && *p != ' ' &&
                   *p != '\n' && *p != '\r' && *p != '\t')
                p++;
            if (p == start)
                return DECLINE;
        }
    } while (depth > 0);
    j->p = p;
    return 0;
}

#endif /* MESHSYNC_JSONTEXT_H */

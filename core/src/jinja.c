/*
 * jinja.c — a Jinja-subset template engine for chat templates (see jinja.h
 * and docs/chat-templates.md).
 *
 * Three stages: a scanner cuts the template into text and tag tokens,
 * applying whitespace control; a recursive-descent parser builds a tree of
 * statement and expression nodes (each with its line:col); an interpreter
 * walks the tree against a scope chain of variables. Parsed trees live in
 * one arena owned by the template; every value made while rendering lives in
 * a per-render arena released at once at the end, so values need no
 * reference counts.
 */
#define _POSIX_C_SOURCE 200809L
#include "jinja.h"
#include "llmh-template.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Limits                                                                    */
/* ------------------------------------------------------------------------ */
#define JJ_MAX_DEPTH 200                    /* parser nesting (blocks + expressions) */
#define JJ_MAX_CALL_DEPTH 64                /* macro recursion */
#define JJ_MAX_STEPS 5000000ull             /* statements + loop iterations per render */
#define JJ_MAX_STRING ((size_t)64 << 20)    /* bytes of one string value */
#define JJ_MAX_ARENA ((size_t)512 << 20)    /* bytes of values per render */
#define JJ_DEFAULT_OUTPUT ((size_t)64 << 20) /* output bytes */
#define JJ_MAX_RANGE 10000000               /* items range() may make */

/* ------------------------------------------------------------------------ */
/* Arena                                                                     */
/* ------------------------------------------------------------------------ */
typedef struct arena_blk {
    struct arena_blk *next;
    size_t used, cap;
    max_align_t data[];
} arena_blk;

typedef struct arena {
    arena_blk *head;
    size_t total, limit;
} arena;

static void *ar_alloc(arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (cap > a->limit || a->total > a->limit - cap) return NULL;
        arena_blk *b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
        a->total += cap;
    }
    void *p = (char *)a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static void ar_free(arena *a) {
    arena_blk *b = a->head;
    while (b) {
        arena_blk *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}

/* ------------------------------------------------------------------------ */
/* Growable byte buffer (malloc'd)                                           */
/* ------------------------------------------------------------------------ */
typedef struct sbuf {
    char *p;
    size_t len, cap, limit;
    bool oom;  /* an allocation failed */
    bool full; /* the limit was reached */
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom || b->full || n == 0) return;
    size_t limit = b->limit ? b->limit : JJ_MAX_STRING;
    if (n > limit || b->len > limit - n) {
        b->full = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_chr(sbuf *b, char c) { sb_put(b, &c, 1); }

static void sb_fmt(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(sbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */
typedef enum vtype {
    V_UNDEF = 0, /* s = the name that was looked up (for messages), may be empty */
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_LIST,
    V_DICT,
    V_FUNC,   /* a global function: fn */
    V_MACRO,  /* a {% macro %}: mac */
    V_METHOD, /* a bound method of a str/list/dict: meth */
    V_LOOP    /* the `loop` object of a for loop */
} vtype;

struct jlist;
struct jdict;
struct node;
struct jmeth;
struct jloop;

typedef struct jv {
    uint8_t t;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct jlist *l;
        struct jdict *d;
        int fn;
        const struct node *mac;
        struct jmeth *meth;
        struct jloop *loop;
    } u;
} jv;

typedef struct jlist {
    size_t n, cap;
    jv *v;
    bool tuple; /* a Python tuple: behaves as a list, printed with ( ) */
} jlist;

typedef struct jdict {
    size_t n, cap;
    jv *k, *v;
    bool ns; /* made by namespace(): attributes can be set */
} jdict;

typedef struct jmeth {
    jv self;
    const char *name;
} jmeth;

typedef struct jloop {
    int64_t index0, length;
    jv prev, next;
    bool has_prev, has_next;
} jloop;

static jv v_undef(const char *name, size_t n) {
    jv v = {.t = V_UNDEF};
    v.u.s.p = name;
    v.u.s.n = n;
    return v;
}
static jv v_none(void) { return (jv){.t = V_NONE}; }
static jv v_bool(bool b) {
    jv v = {.t = V_BOOL};
    v.u.b = b;
    return v;
}
static jv v_int(int64_t i) {
    jv v = {.t = V_INT};
    v.u.i = i;
    return v;
}
static jv v_float(double f) {
    jv v = {.t = V_FLOAT};
    v.u.f = f;
    return v;
}
static jv v_str(const char *p, size_t n) {
    jv v = {.t = V_STR};
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}

/* ------------------------------------------------------------------------ */
/* UTF-8 and Python whitespace                                               */
/* ------------------------------------------------------------------------ */
static uint32_t u8_cp(const char *s, size_t l);

/* Length of the UTF-8 sequence at s; 1 for an invalid byte (a bad lead or
 * continuation, an overlong form, a surrogate, past U+10FFFF), so that every
 * byte string walks forward. */
static size_t u8_len(const char *s, size_t n) {
    unsigned char c = (unsigned char)s[0];
    size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (l == 1 || l > n) return 1;
    for (size_t i = 1; i < l; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) return 1;
    uint32_t cp = u8_cp(s, l);
    if ((l == 2 && cp < 0x80) || (l == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (l == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 1;
    return l;
}

/* Code point of the sequence of length l at s; U+FFFD for a lone byte >= 0x80. */
static uint32_t u8_cp(const char *s, size_t l) {
    const unsigned char *u = (const unsigned char *)s;
    switch (l) {
    case 2: return ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
    case 3: return ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    case 4:
        return ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
               ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    default: return u[0] < 0x80 ? u[0] : 0xFFFD;
    }
}

static size_t u8_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i += u8_len(s + i, n - i)) c++;
    return c;
}

static void u8_put(sbuf *b, uint32_t cp) {
    char t[4];
    if (cp < 0x80) {
        t[0] = (char)cp;
        sb_put(b, t, 1);
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        sb_put(b, t, 2);
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        sb_put(b, t, 3);
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        sb_put(b, t, 4);
    }
}

/* Python's str.isspace() code points. */
static bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Does code point `c` occur in the UTF-8 set `set` (NULL = whitespace)? */
static bool in_set(uint32_t c, const char *set, size_t set_n) {
    if (!set) return py_space(c);
    for (size_t i = 0; i < set_n;) {
        size_t l = u8_len(set + i, set_n - i);
        if (u8_cp(set + i, l) == c) return true;
        i += l;
    }
    return false;
}

/* Python's str.strip/lstrip/rstrip on [*b, *e). */
static void py_strip(const char *s, size_t *b, size_t *e, bool left, bool right, const char *set,
                     size_t set_n) {
    if (left) {
        while (*b < *e) {
            size_t l = u8_len(s + *b, *e - *b);
            if (!in_set(u8_cp(s + *b, l), set, set_n)) break;
            *b += l;
        }
    }
    if (right) {
        while (*e > *b) {
            size_t st = *e - 1;
            while (st > *b && ((unsigned char)s[st] & 0xC0) == 0x80 && *e - st < 4) st--;
            size_t l = u8_len(s + st, *e - st);
            if (st + l != *e) { /* not a whole sequence: treat the last byte alone */
                st = *e - 1;
                l = 1;
            }
            if (!in_set(u8_cp(s + st, l), set, set_n)) break;
            *e = st;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Python number formatting                                                  */
/* ------------------------------------------------------------------------ */
/* repr(float) as Python writes it: shortest round-trip digits, fixed
 * notation for exponents in [-4, 16), else d.ddde+XX. */
static void fmt_float(sbuf *b, double d, bool json) {
    if (isnan(d)) {
        sb_str(b, json ? "NaN" : "nan");
        return;
    }
    if (isinf(d)) {
        sb_str(b, d < 0 ? (json ? "-Infinity" : "-inf") : (json ? "Infinity" : "inf"));
        return;
    }
    char buf[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, d);
        if (strtod(buf, NULL) == d) break;
    }
    /* buf: [-]D[.DDD]e[+-]XX */
    const char *s = buf;
    bool neg = *s == '-';
    if (neg) s++;
    char digits[32];
    size_t nd = 0;
    while (*s && *s != 'e') {
        if (*s != '.' && nd < sizeof digits - 1) digits[nd++] = *s;
        s++;
    }
    digits[nd] = 0;
    int exp = *s == 'e' ? atoi(s + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = 0;
    if (neg) sb_chr(b, '-');
    if (exp >= -4 && exp < 16) {
        if (exp >= 0) {
            for (int i = 0; i <= exp; i++) sb_chr(b, (size_t)i < nd ? digits[i] : '0');
            sb_chr(b, '.');
            if ((size_t)exp + 1 < nd) sb_put(b, digits + exp + 1, nd - (size_t)exp - 1);
            else sb_chr(b, '0');
        } else {
            sb_str(b, "0.");
            for (int i = 0; i < -exp - 1; i++) sb_chr(b, '0');
            sb_put(b, digits, nd);
        }
    } else {
        sb_chr(b, digits[0]);
        if (nd > 1) {
            sb_chr(b, '.');
            sb_put(b, digits + 1, nd - 1);
        }
        sb_fmt(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
}

/* ------------------------------------------------------------------------ */
/* Scanner: text and tag tokens                                              */
/* ------------------------------------------------------------------------ */
typedef enum ttype {
    T_EOF = 0,
    T_TEXT,
    T_VBEGIN, /* {{ */
    T_VEND,   /* }} */
    T_BBEGIN, /* {% */
    T_BEND,   /* %} */
    T_NAME,
    T_STR, /* p/n: the decoded string (arena) */
    T_INT,
    T_FLOAT,
    T_OP
} ttype;

typedef struct tok {
    uint8_t t;
    int line, col;
    const char *p;
    size_t n;
    int64_t i;
    double f;
} tok;

typedef struct scanner {
    const char *s; /* normalized source (arena) */
    size_t len, pos;
    int line, col; /* of pos */
    arena *ar;
    tok *toks;
    size_t n, cap;
    char err[256];
    bool oom;
} scanner;

static void sc_error(scanner *S, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sc_error(scanner *S, int line, int col, const char *fmt, ...) {
    if (S->err[0]) return;
    int k = snprintf(S->err, sizeof S->err, "template line %d:%d: ", line, col);
    if (k < 0 || (size_t)k >= sizeof S->err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S->err + k, sizeof S->err - (size_t)k, fmt, ap);
    va_end(ap);
}

/* Move pos forward to `to`, keeping line/col (col counts code points). */
static void sc_advance(scanner *S, size_t to) {
    while (S->pos < to) {
        if (S->s[S->pos] == '\n') {
            S->line++;
            S->col = 1;
            S->pos++;
        } else {
            size_t l = u8_len(S->s + S->pos, S->len - S->pos);
            S->pos += l;
            S->col++;
        }
    }
}

static tok *sc_push(scanner *S, ttype t, int line, int col, const char *p, size_t n) {
    if (S->n == S->cap) {
        size_t cap = S->cap ? S->cap * 2 : 256;
        tok *nt = realloc(S->toks, cap * sizeof *nt);
        if (!nt) {
            S->oom = true;
            return NULL;
        }
        S->toks = nt;
        S->cap = cap;
    }
    tok *k = &S->toks[S->n++];
    memset(k, 0, sizeof *k);
    k->t = (uint8_t)t;
    k->line = line;
    k->col = col;
    k->p = p;
    k->n = n;
    return k;
}

static bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode a Python string literal starting at S->pos (a quote). */
static bool sc_string(scanner *S) {
    int line = S->line, col = S->col;
    char q = S->s[S->pos];
    size_t i = S->pos + 1;
    sbuf b = {0};
    while (i < S->len && S->s[i] != q) {
        char c = S->s[i];
        if (c != '\\') {
            sb_chr(&b, c);
            i++;
            continue;
        }
        if (i + 1 >= S->len) break;
        char e = S->s[i + 1];
        i += 2;
        switch (e) {
        case 'n': sb_chr(&b, '\n'); break;
        case 't': sb_chr(&b, '\t'); break;
        case 'r': sb_chr(&b, '\r'); break;
        case 'b': sb_chr(&b, '\b'); break;
        case 'f': sb_chr(&b, '\f'); break;
        case 'v': sb_chr(&b, '\v'); break;
        case 'a': sb_chr(&b, '\a'); break;
        case '0': sb_chr(&b, '\0'); break;
        case '\\': sb_chr(&b, '\\'); break;
        case '\'': sb_chr(&b, '\''); break;
        case '"': sb_chr(&b, '"'); break;
        case '\n': break; /* line continuation */
        case 'x':
        case 'u':
        case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            int k;
            for (k = 0; k < nd && i + (size_t)k < S->len && hexval(S->s[i + k]) >= 0; k++)
                cp = cp * 16 + (uint32_t)hexval(S->s[i + k]);
            if (k != nd || cp > 0x10FFFF) {
                free(b.p);
                sc_error(S, line, col, "bad \\%c escape in string literal", e);
                return false;
            }
            i += (size_t)nd;
            u8_put(&b, cp);
            break;
        }
        default: /* Python keeps unknown escapes as they are */
            sb_chr(&b, '\\');
            sb_chr(&b, e);
        }
    }
    if (i >= S->len) {
        free(b.p);
        sc_error(S, line, col, "unterminated string literal");
        return false;
    }
    if (b.oom) {
        free(b.p);
        S->oom = true;
        return false;
    }
    char *p = ar_alloc(S->ar, b.len + 1);
    if (!p) {
        free(b.p);
        S->oom = true;
        return false;
    }
    if (b.len) memcpy(p, b.p, b.len);
    p[b.len] = 0;
    free(b.p);
    if (!sc_push(S, T_STR, line, col, p, b.len)) return false;
    sc_advance(S, i + 1);
    return true;
}

/* Lex the inside of a {{ }} or {% %} tag up to its end marker. Returns the
 * strip mode for the text after it: 0 keep, 1 strip all whitespace, 2 strip
 * one newline (trim_blocks), or -1 on error. */
static int sc_tag(scanner *S, bool block, int open_line, int open_col) {
    static const char *const ops2[] = {"//", "**", "==", "!=", "<=", ">="};
    char stack[JJ_MAX_DEPTH]; /* open brackets */
    int depth = 0;
    for (;;) {
        while (S->pos < S->len && (S->s[S->pos] == ' ' || S->s[S->pos] == '\t' ||
                                   S->s[S->pos] == '\n' || S->s[S->pos] == '\r'))
            sc_advance(S, S->pos + 1);
        if (S->pos >= S->len) {
            sc_error(S, open_line, open_col, "unclosed '%s' tag", block ? "{%" : "{{");
            return -1;
        }
        const char *c = S->s + S->pos;
        size_t left = S->len - S->pos;
        char close = block ? '%' : '}';
        if (depth == 0) {
            size_t skip = 0;
            int mode = 0;
            if (left >= 3 && (c[0] == '-' || c[0] == '+') && c[1] == close && c[2] == '}') {
                skip = 3;
                mode = c[0] == '-' ? 1 : 0;
            } else if (left >= 2 && c[0] == close && c[1] == '}') {
                skip = 2;
                mode = block ? 2 : 0;
            }
            if (skip) {
                if (!sc_push(S, block ? T_BEND : T_VEND, S->line, S->col, c, skip)) return -1;
                sc_advance(S, S->pos + skip);
                return mode;
            }
        }
        int line = S->line, col = S->col;
        if (is_name_start(*c)) {
            size_t n = 1;
            while (n < left && is_name_char(c[n])) n++;
            if (!sc_push(S, T_NAME, line, col, c, n)) return -1;
            sc_advance(S, S->pos + n);
        } else if (is_digit(*c)) {
            size_t n = 0;
            bool fl = false;
            char num[128];
            size_t k = 0;
            while (n < left && (is_digit(c[n]) || c[n] == '_')) {
                if (c[n] != '_' && k < sizeof num - 1) num[k++] = c[n];
                n++;
            }
            if (n + 1 < left && c[n] == '.' && is_digit(c[n + 1])) {
                fl = true;
                num[k < sizeof num - 1 ? k++ : k] = '.';
                n++;
                while (n < left && (is_digit(c[n]) || c[n] == '_')) {
                    if (c[n] != '_' && k < sizeof num - 1) num[k++] = c[n];
                    n++;
                }
            }
            if (n < left && (c[n] == 'e' || c[n] == 'E')) {
                size_t m = n + 1;
                if (m < left && (c[m] == '+' || c[m] == '-')) m++;
                if (m < left && is_digit(c[m])) {
                    fl = true;
                    while (n < m && k < sizeof num - 1) num[k++] = c[n++];
                    while (n < left && is_digit(c[n])) {
                        if (k < sizeof num - 1) num[k++] = c[n];
                        n++;
                    }
                }
            }
            num[k] = 0;
            tok *t = sc_push(S, fl ? T_FLOAT : T_INT, line, col, c, n);
            if (!t) return -1;
            if (fl) {
                t->f = strtod(num, NULL);
            } else {
                char *end;
                unsigned long long u = strtoull(num, &end, 10);
                if (k > 18 || u > (unsigned long long)INT64_MAX) {
                    sc_error(S, line, col, "integer literal %s is too large", num);
                    return -1;
                }
                t->i = (int64_t)u;
            }
            sc_advance(S, S->pos + n);
        } else if (*c == '\'' || *c == '"') {
            if (!sc_string(S)) return -1;
        } else {
            size_t n = 0;
            for (size_t k = 0; k < sizeof ops2 / sizeof *ops2; k++)
                if (left >= 2 && c[0] == ops2[k][0] && c[1] == ops2[k][1]) n = 2;
            if (!n && strchr("+-*/%~<>()[]{}.,:|=", *c)) n = 1;
            if (!n) {
                size_t l = u8_len(c, left);
                sc_error(S, line, col, "unexpected character '%.*s' in tag", (int)l, c);
                return -1;
            }
            if (n == 1 && (*c == '(' || *c == '[' || *c == '{')) {
                if (depth == JJ_MAX_DEPTH) {
                    sc_error(S, line, col, "nesting deeper than %d levels", JJ_MAX_DEPTH);
                    return -1;
                }
                stack[depth++] = *c == '(' ? ')' : *c == '[' ? ']' : '}';
            }
            if (n == 1 && (*c == ')' || *c == ']' || *c == '}')) {
                if (depth == 0 || stack[depth - 1] != *c) {
                    if (depth == 0) sc_error(S, line, col, "unbalanced '%c'", *c);
                    else sc_error(S, line, col, "unbalanced '%c' (expected '%c')", *c, stack[depth - 1]);
                    return -1;
                }
                depth--;
            }
            if (!sc_push(S, T_OP, line, col, c, n)) return -1;
            sc_advance(S, S->pos + n);
        }
    }
}

static bool tok_is(const struct tok *k, ttype t, const char *s);

static bool ws_only_spaces(const char *s, size_t b, size_t e) {
    for (size_t i = b; i < e; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\v' && s[i] != '\f' && s[i] != '\r') return false;
    return true;
}

/* After "{% raw %}": find the matching "{% endraw %}" and turn what lies
 * between into one text token (whitespace control applies at both ends as
 * for any block tag). Returns the strip mode after endraw, or -1. */
static int sc_raw(scanner *S, int mode, int line, int col) {
    S->n -= 3; /* drop {% raw %} */
    size_t k = S->pos;
    for (;; k++) {
        if (k + 1 >= S->len) {
            sc_error(S, line, col, "{%% raw %%} is never closed (expected {%% endraw %%})");
            return -1;
        }
        if (S->s[k] != '{' || S->s[k + 1] != '%') continue;
        size_t j = k + 2;
        char mod = j < S->len && (S->s[j] == '-' || S->s[j] == '+') ? S->s[j++] : 0;
        while (j < S->len && (S->s[j] == ' ' || S->s[j] == '\t' || S->s[j] == '\n')) j++;
        if (S->len - j < 6 || memcmp(S->s + j, "endraw", 6)) continue;
        j += 6;
        while (j < S->len && (S->s[j] == ' ' || S->s[j] == '\t' || S->s[j] == '\n')) j++;
        char endmod = j < S->len && (S->s[j] == '-' || S->s[j] == '+') ? S->s[j++] : 0;
        if (S->len - j < 2 || S->s[j] != '%' || S->s[j + 1] != '}') continue;
        size_t b = S->pos, e = k;
        if (mode == 1) {
            size_t ee = e;
            py_strip(S->s, &b, &ee, true, false, NULL, 0);
        } else if (mode == 2 && b < e && S->s[b] == '\n') {
            b++;
        }
        if (mod == '-') {
            size_t bb = b;
            py_strip(S->s, &bb, &e, false, true, NULL, 0);
        } else if (mod != '+') {
            size_t l = e;
            while (l > b && S->s[l - 1] != '\n') l--;
            if (l > b && ws_only_spaces(S->s, l, e)) e = l;
        }
        sc_advance(S, b);
        if (e > b && !sc_push(S, T_TEXT, S->line, S->col, S->s + b, e - b)) return -1;
        sc_advance(S, j + 2);
        return endmod == '-' ? 1 : endmod == '+' ? 0 : 2;
    }
}

/* Cut the whole template into tokens. */
static bool sc_run(scanner *S) {
    int mode = 0;             /* strip mode for the next text */
    bool line_starting = true; /* jinja's lstrip_blocks: the text starts a line */
    while (S->pos <= S->len) {
        size_t t = S->pos;
        while (t + 1 < S->len && !(S->s[t] == '{' && (S->s[t + 1] == '{' || S->s[t + 1] == '%' ||
                                                      S->s[t + 1] == '#')))
            t++;
        if (t + 1 >= S->len) t = S->len;
        size_t b = S->pos, e = t;
        if (mode == 1) {
            size_t bb = b, ee = e;
            py_strip(S->s, &bb, &ee, true, false, NULL, 0);
            b = bb;
        } else if (mode == 2 && b < e && S->s[b] == '\n') {
            b++;
        }
        if (t < S->len) {
            char kind = S->s[t + 1];
            char mod = t + 2 < S->len ? S->s[t + 2] : 0;
            if (mod == '-') {
                size_t bb = b, ee = e;
                py_strip(S->s, &bb, &ee, false, true, NULL, 0);
                e = ee;
            } else if (mod != '+' && kind != '{') {
                size_t l = e;
                while (l > b && S->s[l - 1] != '\n') l--;
                bool at_line = l > b || line_starting;
                if (at_line && ws_only_spaces(S->s, l, e)) e = l;
            }
        }
        sc_advance(S, b);
        if (e > b && !sc_push(S, T_TEXT, S->line, S->col, S->s + b, e - b)) return false;
        sc_advance(S, t);
        if (t >= S->len) break;
        int line = S->line, col = S->col;
        char kind = S->s[t + 1];
        size_t body = t + 2;
        if (body < S->len && (S->s[body] == '-' || S->s[body] == '+')) body++;
        if (kind == '#') {
            size_t k = body;
            while (k + 1 < S->len && !(S->s[k] == '#' && S->s[k + 1] == '}')) k++;
            if (k + 1 >= S->len) {
                sc_error(S, line, col, "unclosed comment");
                return false;
            }
            char m = k > body ? S->s[k - 1] : 0;
            mode = m == '-' ? 1 : m == '+' ? 0 : 2;
            sc_advance(S, k + 2);
        } else {
            bool block = kind == '%';
            if (!sc_push(S, block ? T_BBEGIN : T_VBEGIN, line, col, S->s + t, body - t)) return false;
            sc_advance(S, body);
            mode = sc_tag(S, block, line, col);
            if (mode < 0) return false;
            if (block && S->n >= 3 && S->toks[S->n - 3].t == T_BBEGIN &&
                tok_is(&S->toks[S->n - 2], T_NAME, "raw") && S->toks[S->n - 1].t == T_BEND) {
                mode = sc_raw(S, mode, line, col);
                if (mode < 0) return false;
            }
        }
        /* what the tag end will eat decides whether the next text starts a line */
        size_t k = S->pos;
        if (mode == 1) {
            size_t bb = k, ee = S->len;
            py_strip(S->s, &bb, &ee, true, false, NULL, 0);
            line_starting = bb > k && S->s[bb - 1] == '\n';
        } else if (mode == 2) {
            line_starting = k < S->len && S->s[k] == '\n';
        } else {
            line_starting = false;
        }
    }
    return sc_push(S, T_EOF, S->line, S->col, S->s + S->len, 0) != NULL;
}

/* ------------------------------------------------------------------------ */
/* Tree                                                                      */
/* ------------------------------------------------------------------------ */
typedef enum nkind {
    N_SEQ = 0, /* v[n]: statements */
    N_TEXT,    /* name/name_n: the text */
    N_OUT,     /* a: expression */
    N_IF,      /* a: condition, b: body, c: else (N_SEQ or N_IF for elif) or NULL */
    N_FOR,     /* name[, name2]: targets, a: iterable, b: body, c: else, d: filter */
    N_SET,     /* a: target (E_NAME or E_ATTR), b: value */
    N_SETBLOCK, /* a: target, b: body */
    N_MACRO,   /* name, kw[nkw]: parameters, kwv: defaults (NULL = none), b: body */
    N_BREAK,
    N_CONTINUE,
    E_LIT,    /* lit */
    E_NAME,   /* name */
    E_ATTR,   /* a.name */
    E_ITEM,   /* a[b] */
    E_SLICE,  /* a[b:c:d], each may be NULL */
    E_CALL,   /* a(v..., kw=kwv...) */
    E_FILTER, /* a | name(v..., kw=kwv...) */
    E_TEST,   /* a is [not] name(v...) */
    E_NOT,
    E_NEG,
    E_POS,
    E_BIN, /* a op b */
    E_AND,
    E_OR,
    E_COND, /* a if b else c */
    E_LIST, /* v[n]; op 1: a tuple */
    E_DICT  /* v[2n]: key, value, ... */
} nkind;

typedef enum binop {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FDIV, OP_MOD, OP_POW, OP_CAT,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN
} binop;

typedef struct node {
    uint8_t k, op;
    bool neg;
    int line, col;
    const char *name, *name2;
    size_t name_n, name2_n;
    jv lit;
    struct node *a, *b, *c, *d;
    struct node **v;
    size_t n;
    const char **kw;
    size_t *kw_n;
    struct node **kwv;
    size_t nkw;
} node;

struct llmh_jinja {
    arena ar;
    node *root;
};

/* ------------------------------------------------------------------------ */
/* Parser                                                                    */
/* ------------------------------------------------------------------------ */
typedef struct parser {
    tok *t;
    size_t n, i;
    arena *ar;
    int depth;
    int loops; /* enclosing for loops (break/continue) */
    char err[256];
    bool oom;
} parser;

static void p_error(parser *P, const tok *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void p_error(parser *P, const tok *k, const char *fmt, ...) {
    if (P->err[0] || P->oom) return;
    int w = snprintf(P->err, sizeof P->err, "template line %d:%d: ", k->line, k->col);
    if (w < 0 || (size_t)w >= sizeof P->err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(P->err + w, sizeof P->err - (size_t)w, fmt, ap);
    va_end(ap);
}

static bool p_failed(const parser *P) { return P->err[0] || P->oom; }
static tok *p_peek(parser *P) { return &P->t[P->i]; }
static tok *p_peek2(parser *P) { return &P->t[P->i + 1 < P->n ? P->i + 1 : P->n - 1]; }
static tok *p_next(parser *P) {
    tok *k = &P->t[P->i];
    if (P->i + 1 < P->n) P->i++;
    return k;
}

static bool tok_is(const tok *k, ttype t, const char *s) {
    if (k->t != t) return false;
    if (!s) return true;
    size_t l = strlen(s);
    return k->n == l && memcmp(k->p, s, l) == 0;
}
static bool p_op(parser *P, const char *s) { return tok_is(p_peek(P), T_OP, s); }
static bool p_kw(parser *P, const char *s) { return tok_is(p_peek(P), T_NAME, s); }
static bool p_accept_op(parser *P, const char *s) {
    if (!p_op(P, s)) return false;
    p_next(P);
    return true;
}
static bool p_accept_kw(parser *P, const char *s) {
    if (!p_kw(P, s)) return false;
    p_next(P);
    return true;
}

static const char *tok_desc(const tok *k, char *buf, size_t n) {
    switch (k->t) {
    case T_EOF: return "end of template";
    case T_TEXT: return "text";
    case T_VBEGIN: return "'{{'";
    case T_VEND: return "'}}'";
    case T_BBEGIN: return "'{%'";
    case T_BEND: return "'%}'";
    case T_STR: return "a string";
    case T_INT:
    case T_FLOAT: return "a number";
    default: snprintf(buf, n, "'%.*s'", (int)(k->n > 40 ? 40 : k->n), k->p); return buf;
    }
}

static bool p_expect_op(parser *P, const char *s) {
    if (p_accept_op(P, s)) return true;
    char b[64];
    p_error(P, p_peek(P), "expected '%s', found %s", s, tok_desc(p_peek(P), b, sizeof b));
    return false;
}

static bool p_expect(parser *P, ttype t, const char *what) {
    if (p_peek(P)->t == t) {
        p_next(P);
        return true;
    }
    char b[64];
    p_error(P, p_peek(P), "expected %s, found %s", what, tok_desc(p_peek(P), b, sizeof b));
    return false;
}

static node *p_node(parser *P, nkind k, const tok *at) {
    node *n = ar_alloc(P->ar, sizeof *n);
    if (!n) {
        P->oom = true;
        return NULL;
    }
    memset(n, 0, sizeof *n);
    n->k = (uint8_t)k;
    n->line = at->line;
    n->col = at->col;
    return n;
}

/* Append to a growing node array (arena; the old copy is abandoned). */
static bool p_push(parser *P, node ***v, size_t *n, size_t *cap, node *x) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        node **nv = ar_alloc(P->ar, nc * sizeof *nv);
        if (!nv) {
            P->oom = true;
            return false;
        }
        if (*n) memcpy(nv, *v, *n * sizeof *nv);
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = x;
    return true;
}

static bool p_push_kw(parser *P, node *call, size_t *cap, const tok *name, node *val) {
    if (call->nkw == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        const char **kw = ar_alloc(P->ar, nc * sizeof *kw);
        size_t *kn = ar_alloc(P->ar, nc * sizeof *kn);
        node **kv = ar_alloc(P->ar, nc * sizeof *kv);
        if (!kw || !kn || !kv) {
            P->oom = true;
            return false;
        }
        if (call->nkw) {
            memcpy(kw, call->kw, call->nkw * sizeof *kw);
            memcpy(kn, call->kw_n, call->nkw * sizeof *kn);
            memcpy(kv, call->kwv, call->nkw * sizeof *kv);
        }
        call->kw = kw;
        call->kw_n = kn;
        call->kwv = kv;
        *cap = nc;
    }
    call->kw[call->nkw] = name->p;
    call->kw_n[call->nkw] = name->n;
    call->kwv[call->nkw] = val;
    call->nkw++;
    return true;
}

static node *p_expr(parser *P);
static node *p_unary(parser *P, bool with_filter);
static node *p_primary(parser *P);
static node *p_postfix(parser *P, node *x);

static bool p_enter(parser *P) {
    if (++P->depth > JJ_MAX_DEPTH) {
        p_error(P, p_peek(P), "nesting deeper than %d levels", JJ_MAX_DEPTH);
        return false;
    }
    return true;
}

/* ( args ) after the '(' was consumed: positional and name=value. */
static bool p_args(parser *P, node *call) {
    size_t cap = 0, kcap = 0;
    while (!p_op(P, ")")) {
        tok *k = p_peek(P);
        if (k->t == T_NAME && tok_is(p_peek2(P), T_OP, "=")) {
            p_next(P);
            p_next(P);
            node *v = p_expr(P);
            if (!v || !p_push_kw(P, call, &kcap, k, v)) return false;
        } else {
            if (call->nkw) {
                p_error(P, k, "positional argument after keyword argument");
                return false;
            }
            node *v = p_expr(P);
            if (!v || !p_push(P, &call->v, &call->n, &cap, v)) return false;
        }
        if (!p_accept_op(P, ",")) break;
    }
    return p_expect_op(P, ")");
}

static node *p_literal(parser *P, const tok *k, jv v) {
    node *n = p_node(P, E_LIT, k);
    if (n) n->lit = v;
    return n;
}

static node *p_primary(parser *P) {
    tok *k = p_peek(P);
    char b[64];
    if (!p_enter(P)) return NULL;
    node *x = NULL;
    if (k->t == T_NAME) {
        p_next(P);
        if (tok_is(k, T_NAME, "true") || tok_is(k, T_NAME, "True")) x = p_literal(P, k, v_bool(true));
        else if (tok_is(k, T_NAME, "false") || tok_is(k, T_NAME, "False"))
            x = p_literal(P, k, v_bool(false));
        else if (tok_is(k, T_NAME, "none") || tok_is(k, T_NAME, "None")) x = p_literal(P, k, v_none());
        else {
            x = p_node(P, E_NAME, k);
            if (x) {
                x->name = k->p;
                x->name_n = k->n;
            }
        }
    } else if (k->t == T_STR) {
        p_next(P);
        if (p_peek(P)->t != T_STR) {
            x = p_literal(P, k, v_str(k->p, k->n));
        } else { /* adjacent literals concatenate */
            sbuf s = {0};
            sb_put(&s, k->p, k->n);
            while (p_peek(P)->t == T_STR) {
                tok *m = p_next(P);
                sb_put(&s, m->p, m->n);
            }
            char *c = s.oom ? NULL : ar_alloc(P->ar, s.len + 1);
            if (!c) {
                P->oom = true;
            } else {
                if (s.len) memcpy(c, s.p, s.len);
                c[s.len] = 0;
                x = p_literal(P, k, v_str(c, s.len));
            }
            free(s.p);
        }
    } else if (k->t == T_INT) {
        p_next(P);
        x = p_literal(P, k, v_int(k->i));
    } else if (k->t == T_FLOAT) {
        p_next(P);
        x = p_literal(P, k, v_float(k->f));
    } else if (tok_is(k, T_OP, "(")) {
        p_next(P);
        if (p_accept_op(P, ")")) { /* () is an empty tuple */
            x = p_node(P, E_LIST, k);
            if (x) x->op = 1;
        } else {
            node *e = p_expr(P);
            if (e && p_op(P, ",")) {
                x = p_node(P, E_LIST, k);
                if (x) x->op = 1; /* a tuple */
                size_t cap = 0;
                if (x && !p_push(P, &x->v, &x->n, &cap, e)) x = NULL;
                while (x && p_accept_op(P, ",") && !p_op(P, ")")) {
                    node *f = p_expr(P);
                    if (!f || !p_push(P, &x->v, &x->n, &cap, f)) x = NULL;
                }
            } else {
                x = e;
            }
            if (x && !p_expect_op(P, ")")) x = NULL;
        }
    } else if (tok_is(k, T_OP, "[")) {
        p_next(P);
        x = p_node(P, E_LIST, k);
        size_t cap = 0;
        while (x && !p_op(P, "]")) {
            node *e = p_expr(P);
            if (!e || !p_push(P, &x->v, &x->n, &cap, e)) x = NULL;
            else if (!p_accept_op(P, ",")) break;
        }
        if (x && !p_expect_op(P, "]")) x = NULL;
    } else if (tok_is(k, T_OP, "{")) {
        p_next(P);
        x = p_node(P, E_DICT, k);
        size_t cap = 0;
        while (x && !p_op(P, "}")) {
            node *key = p_expr(P);
            if (!key || !p_expect_op(P, ":")) {
                x = NULL;
                break;
            }
            node *val = p_expr(P);
            if (!val || !p_push(P, &x->v, &x->n, &cap, key) || !p_push(P, &x->v, &x->n, &cap, val))
                x = NULL;
            else if (!p_accept_op(P, ",")) break;
        }
        if (x && !p_expect_op(P, "}")) x = NULL;
    } else {
        p_error(P, k, "expected an expression, found %s", tok_desc(k, b, sizeof b));
    }
    P->depth--;
    return x;
}

static node *p_postfix(parser *P, node *x) {
    while (x) {
        tok *k = p_peek(P);
        if (tok_is(k, T_OP, ".")) {
            p_next(P);
            tok *nm = p_peek(P);
            if (nm->t == T_NAME) {
                p_next(P);
                node *a = p_node(P, E_ATTR, nm);
                if (!a) return NULL;
                a->a = x;
                a->name = nm->p;
                a->name_n = nm->n;
                x = a;
            } else if (nm->t == T_INT) { /* x.0 is x[0] */
                p_next(P);
                node *a = p_node(P, E_ITEM, nm);
                node *i = p_literal(P, nm, v_int(nm->i));
                if (!a || !i) return NULL;
                a->a = x;
                a->b = i;
                x = a;
            } else {
                char b[64];
                p_error(P, nm, "expected an attribute name after '.', found %s",
                        tok_desc(nm, b, sizeof b));
                return NULL;
            }
        } else if (tok_is(k, T_OP, "[")) {
            p_next(P);
            node *idx[3] = {NULL, NULL, NULL};
            int parts = 0;
            bool slice = false;
            for (;;) {
                if (!p_op(P, ":") && !p_op(P, "]")) {
                    idx[parts] = p_expr(P);
                    if (!idx[parts]) return NULL;
                }
                if (parts < 2 && p_accept_op(P, ":")) {
                    slice = true;
                    parts++;
                    continue;
                }
                break;
            }
            if (!p_expect_op(P, "]")) return NULL;
            node *a = p_node(P, slice ? E_SLICE : E_ITEM, k);
            if (!a) return NULL;
            a->a = x;
            if (!slice && !idx[0]) {
                p_error(P, k, "empty subscript");
                return NULL;
            }
            a->b = idx[0];
            a->c = idx[1];
            a->d = idx[2];
            x = a;
        } else if (tok_is(k, T_OP, "(")) {
            p_next(P);
            node *c = p_node(P, E_CALL, k);
            if (!c) return NULL;
            c->line = x->line; /* errors name the callee */
            c->col = x->col;
            c->a = x;
            if (!p_args(P, c)) return NULL;
            x = c;
        } else {
            break;
        }
    }
    return x;
}

static bool is_reserved(const tok *k) {
    static const char *const kws[] = {"and", "or", "not", "in", "is", "if", "else", NULL};
    for (size_t i = 0; kws[i]; i++)
        if (tok_is(k, T_NAME, kws[i])) return true;
    return false;
}

static node *p_filters(parser *P, node *x) {
    while (x) {
        tok *k = p_peek(P);
        if (tok_is(k, T_OP, "|")) {
            p_next(P);
            tok *nm = p_peek(P);
            if (!p_expect(P, T_NAME, "a filter name")) return NULL;
            node *f = p_node(P, E_FILTER, nm);
            if (!f) return NULL;
            f->a = x;
            f->name = nm->p;
            f->name_n = nm->n;
            /* dotted filter names are not used by chat templates */
            if (p_accept_op(P, "(") && !p_args(P, f)) return NULL;
            x = f;
        } else if (tok_is(k, T_NAME, "is")) {
            p_next(P);
            bool neg = p_accept_kw(P, "not");
            tok *nm = p_peek(P);
            if (!p_expect(P, T_NAME, "a test name")) return NULL;
            node *t = p_node(P, E_TEST, nm);
            if (!t) return NULL;
            t->a = x;
            t->neg = neg;
            t->name = nm->p;
            t->name_n = nm->n;
            tok *nx = p_peek(P);
            if (tok_is(nx, T_OP, "(")) {
                p_next(P);
                if (!p_args(P, t)) return NULL;
            } else if ((nx->t == T_NAME && !is_reserved(nx)) || nx->t == T_STR ||
                       nx->t == T_INT || nx->t == T_FLOAT || tok_is(nx, T_OP, "[") ||
                       tok_is(nx, T_OP, "{")) {
                node *arg = p_postfix(P, p_primary(P));
                size_t cap = 0;
                if (!arg || !p_push(P, &t->v, &t->n, &cap, arg)) return NULL;
            }
            x = t;
        } else if (tok_is(k, T_OP, "(")) {
            x = p_postfix(P, x);
        } else {
            break;
        }
    }
    return x;
}

static node *p_unary(parser *P, bool with_filter) {
    tok *k = p_peek(P);
    node *x;
    if (!p_enter(P)) return NULL;
    if (tok_is(k, T_OP, "-") || tok_is(k, T_OP, "+")) {
        p_next(P);
        node *o = p_unary(P, false);
        x = o ? p_node(P, tok_is(k, T_OP, "-") ? E_NEG : E_POS, k) : NULL;
        if (x) x->a = o;
    } else {
        x = p_primary(P);
    }
    x = p_postfix(P, x);
    if (with_filter) x = p_filters(P, x);
    P->depth--;
    return x;
}

static node *p_bin(parser *P, const tok *at, binop op, node *a, node *b) {
    if (!a || !b) return NULL;
    node *x = p_node(P, E_BIN, at);
    if (!x) return NULL;
    x->op = (uint8_t)op;
    x->a = a;
    x->b = b;
    return x;
}

static node *p_pow(parser *P) {
    node *x = p_unary(P, true);
    while (x && p_op(P, "**")) {
        tok *k = p_next(P);
        x = p_bin(P, k, OP_POW, x, p_unary(P, true));
    }
    return x;
}

static node *p_math2(parser *P) {
    node *x = p_pow(P);
    for (;;) {
        binop op;
        if (p_op(P, "*")) op = OP_MUL;
        else if (p_op(P, "/")) op = OP_DIV;
        else if (p_op(P, "//")) op = OP_FDIV;
        else if (p_op(P, "%")) op = OP_MOD;
        else break;
        tok *k = p_next(P);
        x = p_bin(P, k, op, x, p_pow(P));
        if (!x) break;
    }
    return x;
}

static node *p_concat(parser *P) {
    node *x = p_math2(P);
    while (x && p_op(P, "~")) {
        tok *k = p_next(P);
        x = p_bin(P, k, OP_CAT, x, p_math2(P));
    }
    return x;
}

static node *p_math1(parser *P) {
    node *x = p_concat(P);
    while (x && (p_op(P, "+") || p_op(P, "-"))) {
        tok *k = p_next(P);
        x = p_bin(P, k, tok_is(k, T_OP, "+") ? OP_ADD : OP_SUB, x, p_concat(P));
    }
    return x;
}

static node *p_compare(parser *P) {
    node *x = p_math1(P);
    while (x) {
        tok *k = p_peek(P);
        binop op;
        if (tok_is(k, T_OP, "==")) op = OP_EQ;
        else if (tok_is(k, T_OP, "!=")) op = OP_NE;
        else if (tok_is(k, T_OP, "<")) op = OP_LT;
        else if (tok_is(k, T_OP, "<=")) op = OP_LE;
        else if (tok_is(k, T_OP, ">")) op = OP_GT;
        else if (tok_is(k, T_OP, ">=")) op = OP_GE;
        else if (tok_is(k, T_NAME, "in")) op = OP_IN;
        else if (tok_is(k, T_NAME, "not") && tok_is(p_peek2(P), T_NAME, "in")) {
            p_next(P);
            op = OP_NOTIN;
        } else break;
        p_next(P);
        x = p_bin(P, k, op, x, p_math1(P));
    }
    return x;
}

static node *p_not(parser *P) {
    if (p_kw(P, "not")) {
        tok *k = p_next(P);
        if (!p_enter(P)) return NULL;
        node *o = p_not(P);
        P->depth--;
        node *x = o ? p_node(P, E_NOT, k) : NULL;
        if (x) x->a = o;
        return x;
    }
    return p_compare(P);
}

/* A left-associative chain of keyword operators: sub (kw sub)*. */
static node *p_kw_chain(parser *P, const char *kw, nkind kind, node *(*sub)(parser *)) {
    node *x = sub(P);
    while (x && p_kw(P, kw)) {
        tok *k = p_next(P);
        node *r = sub(P);
        node *y = r ? p_node(P, kind, k) : NULL;
        if (y) {
            y->a = x;
            y->b = r;
        }
        x = y;
    }
    return x;
}

static node *p_and(parser *P) { return p_kw_chain(P, "and", E_AND, p_not); }

static node *p_or(parser *P) { return p_kw_chain(P, "or", E_OR, p_and); }

static node *p_expr(parser *P) {
    if (!p_enter(P)) return NULL;
    node *x = p_or(P);
    while (x && p_kw(P, "if")) {
        tok *k = p_next(P);
        node *cond = p_or(P);
        node *alt = NULL;
        if (cond && p_accept_kw(P, "else")) {
            alt = p_expr(P);
            if (!alt) cond = NULL;
        }
        node *y = cond ? p_node(P, E_COND, k) : NULL;
        if (y) {
            y->a = x;
            y->b = cond;
            y->c = alt;
        }
        x = y;
    }
    P->depth--;
    return x;
}

/* Statements ------------------------------------------------------------- */
static node *p_seq(parser *P, const char *const *ends, const tok *opener, const char *opener_name);

static bool p_end_tag(parser *P) { return p_expect(P, T_BEND, "'%}'"); }

/* After a p_seq stopped at "{% NAME": consume "{%" and return the name token. */
static tok *p_take_end(parser *P) {
    p_next(P); /* {% */
    return p_next(P);
}

static node *p_if(parser *P, const tok *at) {
    node *n = p_node(P, N_IF, at);
    if (!n) return NULL;
    n->a = p_expr(P);
    if (!n->a || !p_end_tag(P)) return NULL;
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    n->b = p_seq(P, ends, at, "if");
    if (!n->b) return NULL;
    tok *e = p_take_end(P);
    if (tok_is(e, T_NAME, "elif")) {
        n->c = p_if(P, e);
        if (!n->c) return NULL;
        return n; /* the nested if consumed endif */
    }
    if (tok_is(e, T_NAME, "else")) {
        if (!p_end_tag(P)) return NULL;
        static const char *const ends2[] = {"endif", NULL};
        n->c = p_seq(P, ends2, at, "if");
        if (!n->c) return NULL;
        p_take_end(P);
    }
    return p_end_tag(P) ? n : NULL;
}

static node *p_for(parser *P, const tok *at) {
    node *n = p_node(P, N_FOR, at);
    if (!n) return NULL;
    tok *v1 = p_peek(P);
    if (!p_expect(P, T_NAME, "a loop variable")) return NULL;
    n->name = v1->p;
    n->name_n = v1->n;
    if (p_accept_op(P, ",")) {
        tok *v2 = p_peek(P);
        if (!p_expect(P, T_NAME, "a second loop variable")) return NULL;
        n->name2 = v2->p;
        n->name2_n = v2->n;
        if (p_op(P, ",")) {
            p_error(P, p_peek(P), "at most two loop variables are supported");
            return NULL;
        }
    }
    if (!p_kw(P, "in")) {
        char b[64];
        p_error(P, p_peek(P), "expected 'in', found %s", tok_desc(p_peek(P), b, sizeof b));
        return NULL;
    }
    p_next(P);
    /* the iterable is parsed without the conditional expression so that
     * "for x in xs if cond" is the loop filter */
    n->a = p_or(P);
    if (!n->a) return NULL;
    if (p_accept_kw(P, "if")) {
        n->d = p_expr(P);
        if (!n->d) return NULL;
    }
    if (p_kw(P, "recursive")) {
        p_error(P, p_peek(P), "recursive loops are not supported");
        return NULL;
    }
    if (!p_end_tag(P)) return NULL;
    static const char *const ends[] = {"else", "endfor", NULL};
    P->loops++;
    n->b = p_seq(P, ends, at, "for");
    P->loops--;
    if (!n->b) return NULL;
    tok *e = p_take_end(P);
    if (tok_is(e, T_NAME, "else")) {
        if (!p_end_tag(P)) return NULL;
        static const char *const ends2[] = {"endfor", NULL};
        n->c = p_seq(P, ends2, at, "for");
        if (!n->c) return NULL;
        p_take_end(P);
    }
    return p_end_tag(P) ? n : NULL;
}

static node *p_set(parser *P, const tok *at) {
    tok *nm = p_peek(P);
    if (!p_expect(P, T_NAME, "a variable name")) return NULL;
    node *target = p_node(P, E_NAME, nm);
    if (!target) return NULL;
    target->name = nm->p;
    target->name_n = nm->n;
    if (p_accept_op(P, ".")) {
        tok *attr = p_peek(P);
        if (!p_expect(P, T_NAME, "an attribute name")) return NULL;
        node *t2 = p_node(P, E_ATTR, attr);
        if (!t2) return NULL;
        t2->a = target;
        t2->name = attr->p;
        t2->name_n = attr->n;
        target = t2;
    }
    if (p_accept_op(P, "=")) {
        node *n = p_node(P, N_SET, at);
        if (!n) return NULL;
        n->a = target;
        n->b = p_expr(P);
        if (!n->b || !p_end_tag(P)) return NULL;
        return n;
    }
    if (p_op(P, ",")) {
        p_error(P, p_peek(P), "tuple assignment in {%% set %%} is not supported");
        return NULL;
    }
    node *n = p_node(P, N_SETBLOCK, at);
    if (!n) return NULL;
    n->a = target;
    if (p_op(P, "|")) {
        p_error(P, p_peek(P), "filtered block {%% set %%} is not supported");
        return NULL;
    }
    if (!p_end_tag(P)) return NULL;
    static const char *const ends[] = {"endset", NULL};
    n->b = p_seq(P, ends, at, "set");
    if (!n->b) return NULL;
    p_take_end(P);
    return p_end_tag(P) ? n : NULL;
}

static node *p_macro(parser *P, const tok *at) {
    tok *nm = p_peek(P);
    if (!p_expect(P, T_NAME, "a macro name")) return NULL;
    node *n = p_node(P, N_MACRO, at);
    if (!n) return NULL;
    n->name = nm->p;
    n->name_n = nm->n;
    if (!p_expect_op(P, "(")) return NULL;
    size_t cap = 0;
    while (!p_op(P, ")")) {
        tok *pn = p_peek(P);
        if (!p_expect(P, T_NAME, "a parameter name")) return NULL;
        node *def = NULL;
        if (p_accept_op(P, "=")) {
            def = p_expr(P);
            if (!def) return NULL;
        }
        if (!p_push_kw(P, n, &cap, pn, def)) return NULL;
        if (!p_accept_op(P, ",")) break;
    }
    if (!p_expect_op(P, ")") || !p_end_tag(P)) return NULL;
    static const char *const ends[] = {"endmacro", NULL};
    int loops = P->loops;
    P->loops = 0;
    n->b = p_seq(P, ends, at, "macro");
    P->loops = loops;
    if (!n->b) return NULL;
    p_take_end(P);
    if (p_peek(P)->t == T_NAME) p_next(P); /* {% endmacro name %} */
    return p_end_tag(P) ? n : NULL;
}

static node *p_stmt(parser *P) {
    p_next(P); /* {% */
    tok *k = p_peek(P);
    char b[64];
    if (k->t != T_NAME) {
        p_error(P, k, "expected a tag name, found %s", tok_desc(k, b, sizeof b));
        return NULL;
    }
    p_next(P);
    if (tok_is(k, T_NAME, "if")) return p_if(P, k);
    if (tok_is(k, T_NAME, "for")) return p_for(P, k);
    if (tok_is(k, T_NAME, "set")) return p_set(P, k);
    if (tok_is(k, T_NAME, "macro")) return p_macro(P, k);
    if (tok_is(k, T_NAME, "break") || tok_is(k, T_NAME, "continue")) {
        if (P->loops <= 0) {
            p_error(P, k, "'%.*s' outside a loop", (int)k->n, k->p);
            return NULL;
        }
        node *n = p_node(P, tok_is(k, T_NAME, "break") ? N_BREAK : N_CONTINUE, k);
        return n && p_end_tag(P) ? n : NULL;
    }
    if (tok_is(k, T_NAME, "generation")) { /* transformers' marker for assistant masks */
        if (!p_end_tag(P)) return NULL;
        static const char *const ends[] = {"endgeneration", NULL};
        node *body = p_seq(P, ends, k, "generation");
        if (!body) return NULL;
        p_take_end(P);
        return p_end_tag(P) ? body : NULL;
    }
    p_error(P, k, "unknown tag '%.*s'", (int)(k->n > 40 ? 40 : k->n), k->p);
    return NULL;
}

static node *p_seq(parser *P, const char *const *ends, const tok *opener, const char *opener_name) {
    if (!p_enter(P)) return NULL;
    node *seq = p_node(P, N_SEQ, opener ? opener : p_peek(P));
    size_t cap = 0;
    while (seq && !p_failed(P)) {
        tok *k = p_peek(P);
        node *x = NULL;
        if (k->t == T_EOF) {
            if (ends) {
                p_error(P, opener, "{%% %s %%} is never closed (expected {%% end%s %%})",
                        opener_name, opener_name);
                seq = NULL;
            }
            break;
        }
        if (k->t == T_TEXT) {
            p_next(P);
            x = p_node(P, N_TEXT, k);
            if (x) {
                x->name = k->p;
                x->name_n = k->n;
            }
        } else if (k->t == T_VBEGIN) {
            p_next(P);
            x = p_node(P, N_OUT, k);
            if (x) x->a = p_expr(P);
            if (!x || !x->a || !p_expect(P, T_VEND, "'}}'")) x = NULL;
        } else if (k->t == T_BBEGIN) {
            tok *nm = p_peek2(P);
            bool is_end = false;
            for (size_t i = 0; ends && ends[i]; i++)
                if (tok_is(nm, T_NAME, ends[i])) is_end = true;
            if (is_end) break;
            if (nm->t == T_NAME && ((nm->n > 3 && !memcmp(nm->p, "end", 3)) ||
                                    tok_is(nm, T_NAME, "else") || tok_is(nm, T_NAME, "elif"))) {
                if (opener_name)
                    p_error(P, nm, "unexpected {%% %.*s %%} inside '%s' opened at line %d:%d",
                            (int)(nm->n > 40 ? 40 : nm->n), nm->p, opener_name, opener->line,
                            opener->col);
                else
                    p_error(P, nm, "unexpected {%% %.*s %%} with no open block",
                            (int)(nm->n > 40 ? 40 : nm->n), nm->p);
                seq = NULL;
                break;
            }
            x = p_stmt(P);
        } else {
            char b[64];
            p_error(P, k, "unexpected %s", tok_desc(k, b, sizeof b));
        }
        if (!x || !p_push(P, &seq->v, &seq->n, &cap, x)) seq = NULL;
    }
    P->depth--;
    return p_failed(P) ? NULL : seq;
}

/* ------------------------------------------------------------------------ */
/* Interpreter state                                                         */
/* ------------------------------------------------------------------------ */
typedef struct frame {
    struct frame *parent;
    size_t n, cap;
    const char **names;
    size_t *lens;
    jv *vals;
} frame;

typedef struct rctx {
    arena ar;
    sbuf *out;
    frame *globals;
    char err[512];
    bool failed;
    bool oom;
    uint64_t steps, max_steps;
    size_t max_string;
    int call_depth;
    int64_t now;
} rctx;

enum { EX_OK = 0, EX_ERR = -1, EX_BREAK = 1, EX_CONTINUE = 2 };

static bool r_error(rctx *R, const node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool r_error(rctx *R, const node *n, const char *fmt, ...) {
    if (R->failed) return false;
    R->failed = true;
    int w = n ? snprintf(R->err, sizeof R->err, "template line %d:%d: ", n->line, n->col)
              : snprintf(R->err, sizeof R->err, "template: ");
    if (w < 0 || (size_t)w >= sizeof R->err) return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R->err + w, sizeof R->err - (size_t)w, fmt, ap);
    va_end(ap);
    return false;
}

static bool r_oom(rctx *R, const node *n) {
    if (!R->failed) R->oom = true;
    return r_error(R, n, "out of memory (a render may use at most %zu MiB)", JJ_MAX_ARENA >> 20);
}

static void *r_alloc(rctx *R, const node *n, size_t sz) {
    void *p = ar_alloc(&R->ar, sz);
    if (!p) r_oom(R, n);
    return p;
}

static bool r_str(rctx *R, const node *n, const char *p, size_t len, jv *out) {
    char *c = r_alloc(R, n, len + 1);
    if (!c) return false;
    if (len) memcpy(c, p, len);
    c[len] = 0;
    *out = v_str(c, len);
    return true;
}

/* Move a scratch buffer into an arena string (and free the buffer). */
static bool r_take(rctx *R, const node *n, sbuf *b, jv *out) {
    if (b->oom || b->full || b->len > R->max_string) {
        free(b->p);
        return b->oom ? r_oom(R, n) : r_error(R, n, "string too long (the limit is %zu bytes)", R->max_string);
    }
    bool ok = r_str(R, n, b->p ? b->p : "", b->len, out);
    free(b->p);
    return ok;
}

static jlist *r_list(rctx *R, const node *n, size_t cap) {
    jlist *l = r_alloc(R, n, sizeof *l);
    if (!l) return NULL;
    l->n = 0;
    l->cap = cap;
    l->v = NULL;
    l->tuple = false;
    if (cap && !(l->v = r_alloc(R, n, cap * sizeof *l->v))) return NULL;
    return l;
}

static bool list_push(rctx *R, const node *n, jlist *l, jv x) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        jv *nv = r_alloc(R, n, cap * sizeof *nv);
        if (!nv) return false;
        if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return true;
}

static jv v_list(jlist *l) {
    jv v = {.t = V_LIST};
    v.u.l = l;
    return v;
}
static jv v_dict(jdict *d) {
    jv v = {.t = V_DICT};
    v.u.d = d;
    return v;
}

static bool v_eq(jv a, jv b);

static jv *dict_find(const jdict *d, jv key) {
    for (size_t i = 0; i < d->n; i++)
        if (v_eq(d->k[i], key)) return &d->v[i];
    return NULL;
}

static jv *dict_find_str(const jdict *d, const char *s, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == V_STR && d->k[i].u.s.n == n && !memcmp(d->k[i].u.s.p, s, n))
            return &d->v[i];
    return NULL;
}

static bool dict_set(rctx *R, const node *n, jdict *d, jv key, jv val) {
    jv *slot = dict_find(d, key);
    if (slot) {
        *slot = val;
        return true;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        jv *nk = r_alloc(R, n, cap * sizeof *nk);
        jv *nv = r_alloc(R, n, cap * sizeof *nv);
        if (!nk || !nv) return false;
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n] = val;
    d->n++;
    return true;
}

static jdict *r_dict(rctx *R, const node *n) {
    jdict *d = r_alloc(R, n, sizeof *d);
    if (d) memset(d, 0, sizeof *d);
    return d;
}

static frame *frame_new(rctx *R, const node *n, frame *parent) {
    frame *f = r_alloc(R, n, sizeof *f);
    if (f) {
        memset(f, 0, sizeof *f);
        f->parent = parent;
    }
    return f;
}

static bool frame_set(rctx *R, const node *n, frame *f, const char *name, size_t len, jv v) {
    for (size_t i = 0; i < f->n; i++)
        if (f->lens[i] == len && !memcmp(f->names[i], name, len)) {
            f->vals[i] = v;
            return true;
        }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        const char **nn = r_alloc(R, n, cap * sizeof *nn);
        size_t *nl = r_alloc(R, n, cap * sizeof *nl);
        jv *nv = r_alloc(R, n, cap * sizeof *nv);
        if (!nn || !nl || !nv) return false;
        if (f->n) {
            memcpy(nn, f->names, f->n * sizeof *nn);
            memcpy(nl, f->lens, f->n * sizeof *nl);
            memcpy(nv, f->vals, f->n * sizeof *nv);
        }
        f->names = nn;
        f->lens = nl;
        f->vals = nv;
        f->cap = cap;
    }
    f->names[f->n] = name;
    f->lens[f->n] = len;
    f->vals[f->n] = v;
    f->n++;
    return true;
}

static bool frame_get(const frame *f, const char *name, size_t len, jv *out) {
    for (; f; f = f->parent)
        for (size_t i = f->n; i-- > 0;)
            if (f->lens[i] == len && !memcmp(f->names[i], name, len)) {
                *out = f->vals[i];
                return true;
            }
    return false;
}

/* Global functions */
enum { FN_RANGE, FN_NAMESPACE, FN_RAISE, FN_STRFTIME, FN_DICT, FN_COUNT };
static const char *const g_fn_names[FN_COUNT] = {"range", "namespace", "raise_exception",
                                                 "strftime_now", "dict"};

/* ------------------------------------------------------------------------ */
/* Value operations                                                          */
/* ------------------------------------------------------------------------ */
static const char *type_name(jv v) {
    switch (v.t) {
    case V_UNDEF: return "undefined";
    case V_NONE: return "none";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STR: return "string";
    case V_LIST: return "list";
    case V_DICT: return v.u.d->ns ? "namespace" : "dict";
    case V_LOOP: return "loop";
    default: return "function";
    }
}

static bool truthy(jv v) {
    switch (v.t) {
    case V_UNDEF:
    case V_NONE: return false;
    case V_BOOL: return v.u.b;
    case V_INT: return v.u.i != 0;
    case V_FLOAT: return v.u.f != 0.0;
    case V_STR: return v.u.s.n != 0;
    case V_LIST: return v.u.l->n != 0;
    case V_DICT: return v.u.d->ns || v.u.d->n != 0;
    default: return true;
    }
}

static bool is_num(jv v) { return v.t == V_INT || v.t == V_FLOAT || v.t == V_BOOL; }
static double num_f(jv v) {
    return v.t == V_FLOAT ? v.u.f : v.t == V_INT ? (double)v.u.i : v.t == V_BOOL ? v.u.b : 0.0;
}
static int64_t num_i(jv v) { return v.t == V_INT ? v.u.i : v.t == V_BOOL ? v.u.b : (int64_t)v.u.f; }

static bool v_eq(jv a, jv b) {
    if (is_num(a) && is_num(b)) {
        if (a.t == V_FLOAT || b.t == V_FLOAT) return num_f(a) == num_f(b);
        return num_i(a) == num_i(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case V_UNDEF:
    case V_NONE: return true;
    case V_STR: return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case V_LIST:
        if (a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!v_eq(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case V_DICT:
        if (a.u.d == b.u.d) return true;
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = dict_find(b.u.d, a.u.d->k[i]);
            if (!o || !v_eq(a.u.d->v[i], *o)) return false;
        }
        return true;
    case V_FUNC: return a.u.fn == b.u.fn;
    case V_MACRO: return a.u.mac == b.u.mac;
    case V_LOOP: return a.u.loop == b.u.loop;
    default: return false;
    }
}

/* Ordering: <0, 0, >0; false when the types do not order. */
static bool v_cmp(jv a, jv b, int *res) {
    if (is_num(a) && is_num(b)) {
        if (a.t == V_FLOAT || b.t == V_FLOAT) {
            double x = num_f(a), y = num_f(b);
            *res = x < y ? -1 : x > y ? 1 : 0;
        } else {
            int64_t x = num_i(a), y = num_i(b);
            *res = x < y ? -1 : x > y ? 1 : 0;
        }
        return true;
    }
    if (a.t == V_STR && b.t == V_STR) {
        size_t m = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int c = m ? memcmp(a.u.s.p, b.u.s.p, m) : 0;
        *res = c ? c : a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n ? 1 : 0;
        return true;
    }
    if (a.t == V_LIST && b.t == V_LIST) {
        for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++) {
            int c;
            if (!v_cmp(a.u.l->v[i], b.u.l->v[i], &c)) return false;
            if (c) {
                *res = c;
                return true;
            }
        }
        *res = a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n ? 1 : 0;
        return true;
    }
    return false;
}

static void py_repr(sbuf *b, jv v, int depth);

/* Python str(v). */
static void py_str(sbuf *b, jv v) {
    switch (v.t) {
    case V_UNDEF: break;
    case V_STR: sb_put(b, v.u.s.p, v.u.s.n); break;
    default: py_repr(b, v, 0);
    }
}

static void py_repr_str(sbuf *b, const char *s, size_t n) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    sb_chr(b, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == (unsigned char)q || c == '\\') {
            sb_chr(b, '\\');
            sb_chr(b, (char)c);
        } else if (c == '\n') sb_str(b, "\\n");
        else if (c == '\r') sb_str(b, "\\r");
        else if (c == '\t') sb_str(b, "\\t");
        else if (c < 0x20 || c == 0x7f) sb_fmt(b, "\\x%02x", c);
        else sb_chr(b, (char)c);
    }
    sb_chr(b, q);
}

static void py_repr(sbuf *b, jv v, int depth) {
    if (depth > 500) {
        sb_str(b, "...");
        return;
    }
    switch (v.t) {
    case V_UNDEF: break;
    case V_NONE: sb_str(b, "None"); break;
    case V_BOOL: sb_str(b, v.u.b ? "True" : "False"); break;
    case V_INT: sb_fmt(b, "%lld", (long long)v.u.i); break;
    case V_FLOAT: fmt_float(b, v.u.f, false); break;
    case V_STR:
        if (depth == 0) sb_put(b, v.u.s.p, v.u.s.n);
        else py_repr_str(b, v.u.s.p, v.u.s.n);
        break;
    case V_LIST:
        sb_chr(b, v.u.l->tuple ? '(' : '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) sb_str(b, ", ");
            py_repr(b, v.u.l->v[i], depth + 1);
        }
        if (v.u.l->tuple && v.u.l->n == 1) sb_chr(b, ',');
        sb_chr(b, v.u.l->tuple ? ')' : ']');
        break;
    case V_DICT:
        if (v.u.d->ns) sb_str(b, "<Namespace {");
        else sb_chr(b, '{');
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) sb_str(b, ", ");
            py_repr(b, v.u.d->k[i], depth + 1);
            sb_str(b, ": ");
            py_repr(b, v.u.d->v[i], depth + 1);
        }
        sb_str(b, v.u.d->ns ? "}>" : "}");
        break;
    case V_LOOP: sb_str(b, "<LoopContext>"); break;
    default: sb_str(b, "<function>"); break;
    }
}

typedef struct json_opts {
    int indent; /* <0: none */
    bool sort_keys, ensure_ascii;
    const char *item_sep, *key_sep;
} json_opts;

static void json_str(sbuf *b, const char *s, size_t n, bool ascii) {
    sb_chr(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') sb_str(b, "\\\"");
        else if (c == '\\') sb_str(b, "\\\\");
        else if (c == '\n') sb_str(b, "\\n");
        else if (c == '\r') sb_str(b, "\\r");
        else if (c == '\t') sb_str(b, "\\t");
        else if (c == '\b') sb_str(b, "\\b");
        else if (c == '\f') sb_str(b, "\\f");
        else if (c < 0x20) sb_fmt(b, "\\u%04x", c);
        else if (c >= 0x80 && ascii) {
            size_t l = u8_len(s + i, n - i);
            uint32_t cp = l > 1 ? u8_cp(s + i, l) : 0xFFFD;
            if (cp >= 0x10000) {
                cp -= 0x10000;
                sb_fmt(b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else {
                sb_fmt(b, "\\u%04x", cp);
            }
            i += l;
            continue;
        } else sb_chr(b, (char)c);
        i++;
    }
    sb_chr(b, '"');
}

static void json_nl(sbuf *b, const json_opts *o, int level) {
    sb_chr(b, '\n');
    for (int i = 0; i < o->indent * level && !b->full && !b->oom; i++) sb_chr(b, ' ');
}

/* json.dumps(v) as transformers' tojson calls it. */
static bool json_dump(rctx *R, const node *n, sbuf *b, jv v, const json_opts *o, int level) {
    if (level > 500) return r_error(R, n, "tojson: value nested too deeply");
    switch (v.t) {
    case V_NONE: sb_str(b, "null"); return true;
    case V_BOOL: sb_str(b, v.u.b ? "true" : "false"); return true;
    case V_INT: sb_fmt(b, "%lld", (long long)v.u.i); return true;
    case V_FLOAT: fmt_float(b, v.u.f, true); return true;
    case V_STR: json_str(b, v.u.s.p, v.u.s.n, o->ensure_ascii); return true;
    case V_LIST:
        if (!v.u.l->n) {
            sb_str(b, "[]");
            return true;
        }
        sb_chr(b, '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) sb_str(b, o->item_sep);
            if (o->indent >= 0) json_nl(b, o, level + 1);
            if (!json_dump(R, n, b, v.u.l->v[i], o, level + 1)) return false;
        }
        if (o->indent >= 0) json_nl(b, o, level);
        sb_chr(b, ']');
        return true;
    case V_DICT: {
        jdict *d = v.u.d;
        if (!d->n) {
            sb_str(b, "{}");
            return true;
        }
        size_t *order = r_alloc(R, n, d->n * sizeof *order);
        if (!order) return false;
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        if (o->sort_keys) /* insertion sort: dicts in templates are small */
            for (size_t i = 1; i < d->n; i++)
                for (size_t j = i; j > 0; j--) {
                    int c = 0;
                    if (!v_cmp(d->k[order[j - 1]], d->k[order[j]], &c))
                        return r_error(R, n, "tojson: sort_keys needs keys of one type");
                    if (c <= 0) break;
                    size_t t = order[j];
                    order[j] = order[j - 1];
                    order[j - 1] = t;
                }
        sb_chr(b, '{');
        for (size_t i = 0; i < d->n; i++) {
            jv k = d->k[order[i]];
            if (i) sb_str(b, o->item_sep);
            if (o->indent >= 0) json_nl(b, o, level + 1);
            if (k.t == V_STR) json_str(b, k.u.s.p, k.u.s.n, o->ensure_ascii);
            else if (k.t == V_INT || k.t == V_FLOAT || k.t == V_BOOL || k.t == V_NONE) {
                sbuf t = {0};
                if (!json_dump(R, n, &t, k, o, level + 1)) {
                    free(t.p);
                    return false;
                }
                json_str(b, t.p ? t.p : "", t.len, false);
                free(t.p);
            } else {
                return r_error(R, n, "tojson: dict keys must be strings, not %s", type_name(k));
            }
            sb_str(b, o->key_sep);
            if (!json_dump(R, n, b, d->v[order[i]], o, level + 1)) return false;
        }
        if (o->indent >= 0) json_nl(b, o, level);
        sb_chr(b, '}');
        return true;
    }
    default: return r_error(R, n, "tojson: %s is not JSON serializable", type_name(v));
    }
}

/* cJSON -> value */
static bool from_cjson(rctx *R, const cJSON *j, jv *out, int depth) {
    if (depth > 1000) return r_error(R, NULL, "context JSON nested too deeply");
    if (cJSON_IsNull(j)) *out = v_none();
    else if (cJSON_IsBool(j)) *out = v_bool(cJSON_IsTrue(j));
    else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) <= 9007199254740992.0) *out = v_int((int64_t)d);
        else *out = v_float(d);
    } else if (cJSON_IsString(j)) {
        const char *s = j->valuestring ? j->valuestring : "";
        *out = v_str(s, strlen(s)); /* borrowed from the cJSON tree, alive for the render */
    } else if (cJSON_IsArray(j)) {
        jlist *l = r_list(R, NULL, 0);
        if (!l) return false;
        for (const cJSON *c = j->child; c; c = c->next) {
            jv x;
            if (!from_cjson(R, c, &x, depth + 1) || !list_push(R, NULL, l, x)) return false;
        }
        *out = v_list(l);
    } else if (cJSON_IsObject(j)) {
        jdict *d = r_dict(R, NULL);
        if (!d) return false;
        for (const cJSON *c = j->child; c; c = c->next) {
            jv x;
            const char *k = c->string ? c->string : "";
            if (!from_cjson(R, c, &x, depth + 1) || !dict_set(R, NULL, d, v_str(k, strlen(k)), x))
                return false;
        }
        *out = v_dict(d);
    } else {
        *out = v_none();
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Evaluation                                                                */
/* ------------------------------------------------------------------------ */
typedef struct args {
    jv *pos;
    size_t npos;
    const char **kw;
    size_t *kw_n;
    jv *kwv;
    size_t nkw;
} args;

static bool eval(rctx *R, frame *f, const node *n, jv *out);
static int exec(rctx *R, frame *f, const node *n);

static bool name_is(const char *p, size_t n, const char *s) {
    size_t l = strlen(s);
    return n == l && !memcmp(p, s, l);
}

/* Argument `i` by position, else by keyword `name`; NULL when absent. */
static const jv *arg_get(const args *a, size_t i, const char *name) {
    if (i < a->npos) return &a->pos[i];
    for (size_t k = 0; name && k < a->nkw; k++)
        if (name_is(a->kw[k], a->kw_n[k], name)) return &a->kwv[k];
    return NULL;
}

static bool eval_args(rctx *R, frame *f, const node *call, args *a) {
    memset(a, 0, sizeof *a);
    if (call->n) {
        a->pos = r_alloc(R, call, call->n * sizeof *a->pos);
        if (!a->pos) return false;
        for (size_t i = 0; i < call->n; i++)
            if (!eval(R, f, call->v[i], &a->pos[i])) return false;
        a->npos = call->n;
    }
    if (call->nkw) {
        a->kwv = r_alloc(R, call, call->nkw * sizeof *a->kwv);
        if (!a->kwv) return false;
        for (size_t i = 0; i < call->nkw; i++)
            if (!eval(R, f, call->kwv[i], &a->kwv[i])) return false;
        a->kw = call->kw;
        a->kw_n = call->kw_n;
        a->nkw = call->nkw;
    }
    return true;
}

static bool need_str(rctx *R, const node *n, const jv *v, const char *what) {
    if (v && v->t == V_STR) return true;
    return r_error(R, n, "%s must be a string, not %s", what, v ? type_name(*v) : "missing");
}

/* Items of an iterable: list items, dict keys, string characters;
 * undefined iterates as empty. */
static bool iter_items(rctx *R, const node *n, jv v, jlist **out) {
    if (v.t == V_LIST) {
        *out = v.u.l;
        return true;
    }
    if (v.t == V_UNDEF) {
        *out = r_list(R, n, 0);
        return *out != NULL;
    }
    if (v.t == V_DICT && !v.u.d->ns) {
        jlist *l = r_list(R, n, v.u.d->n);
        if (!l) return false;
        for (size_t i = 0; i < v.u.d->n; i++) l->v[l->n++] = v.u.d->k[i];
        *out = l;
        return true;
    }
    if (v.t == V_STR) {
        jlist *l = r_list(R, n, 0);
        if (!l) return false;
        for (size_t i = 0; i < v.u.s.n;) {
            size_t c = u8_len(v.u.s.p + i, v.u.s.n - i);
            if (!list_push(R, n, l, v_str(v.u.s.p + i, c))) return false;
            i += c;
        }
        *out = l;
        return true;
    }
    return r_error(R, n, "%s is not iterable", type_name(v));
}

/* Byte offsets of the code points of s (n_cp + 1 entries). */
static size_t *cp_offsets(rctx *R, const node *n, const char *s, size_t len, size_t *n_cp) {
    size_t c = u8_count(s, len);
    size_t *o = r_alloc(R, n, (c + 1) * sizeof *o);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i += u8_len(s + i, len - i)) o[k++] = i;
    o[k] = len;
    *n_cp = c;
    return o;
}

/* "'name'" of an undefined value, or what made it when it has no name. */
static const char *undef_name(jv v, char *buf, size_t cap) {
    if (v.u.s.p && v.u.s.n) snprintf(buf, cap, "'%.*s'", (int)(v.u.s.n > 60 ? 60 : v.u.s.n), v.u.s.p);
    else snprintf(buf, cap, "a value (an index out of range or a missing item)");
    return buf;
}

static bool get_index(rctx *R, const node *n, jv obj, jv key, jv *out) {
    if (obj.t == V_LIST || obj.t == V_STR) {
        if (key.t != V_INT && key.t != V_BOOL) { /* Jinja's sandbox: undefined, not an error */
            *out = v_undef("", 0);
            return true;
        }
        int64_t i = num_i(key);
        if (obj.t == V_LIST) {
            int64_t len = (int64_t)obj.u.l->n;
            if (i < 0) i += len;
            if (i < 0 || i >= len) {
                *out = v_undef("", 0);
                return true;
            }
            *out = obj.u.l->v[i];
            return true;
        }
        size_t ncp;
        size_t *o = cp_offsets(R, n, obj.u.s.p, obj.u.s.n, &ncp);
        if (!o) return false;
        if (i < 0) i += (int64_t)ncp;
        if (i < 0 || i >= (int64_t)ncp) {
            *out = v_undef("", 0);
            return true;
        }
        *out = v_str(obj.u.s.p + o[i], o[i + 1] - o[i]);
        return true;
    }
    if (obj.t == V_DICT) {
        jv *x = dict_find(obj.u.d, key);
        *out = x ? *x : v_undef(key.t == V_STR ? key.u.s.p : "", key.t == V_STR ? key.u.s.n : 0);
        return true;
    }
    if (obj.t == V_LOOP) {
        return r_error(R, n, "loop object cannot be subscripted");
    }
    char nb[96];
    if (obj.t == V_UNDEF) return r_error(R, n, "%s is undefined", undef_name(obj, nb, sizeof nb));
    return r_error(R, n, "%s cannot be subscripted", type_name(obj));
}

static bool is_method_name(jv obj, const char *name, size_t len) {
    static const char *const str_m[] = {"startswith", "endswith", "split", "rsplit", "strip", "lstrip",
                                        "rstrip", "lower", "upper", "title", "capitalize", "replace",
                                        "find", "count", "join", "splitlines", "isdigit", "isalpha",
                                        "isspace", "format", NULL};
    static const char *const dict_m[] = {"items", "keys", "values", "get", NULL};
    static const char *const list_m[] = {"index", "count", NULL};
    const char *const *m = obj.t == V_STR ? str_m : obj.t == V_DICT && !obj.u.d->ns ? dict_m
                           : obj.t == V_LIST ? list_m : NULL;
    for (size_t i = 0; m && m[i]; i++)
        if (name_is(name, len, m[i])) return true;
    return false;
}

static bool get_attr(rctx *R, const node *n, jv obj, const char *name, size_t len, jv *out) {
    char nb[96];
    if (obj.t == V_UNDEF)
        return r_error(R, n, "%s is undefined (reading its attribute '%.*s')",
                       undef_name(obj, nb, sizeof nb), (int)len, name);
    if (obj.t == V_LOOP) {
        jloop *l = obj.u.loop;
        if (name_is(name, len, "index")) *out = v_int(l->index0 + 1);
        else if (name_is(name, len, "index0")) *out = v_int(l->index0);
        else if (name_is(name, len, "revindex")) *out = v_int(l->length - l->index0);
        else if (name_is(name, len, "revindex0")) *out = v_int(l->length - l->index0 - 1);
        else if (name_is(name, len, "first")) *out = v_bool(l->index0 == 0);
        else if (name_is(name, len, "last")) *out = v_bool(l->index0 == l->length - 1);
        else if (name_is(name, len, "length")) *out = v_int(l->length);
        else if (name_is(name, len, "depth")) *out = v_int(1);
        else if (name_is(name, len, "depth0")) *out = v_int(0);
        else if (name_is(name, len, "previtem")) *out = l->has_prev ? l->prev : v_undef("previtem", 8);
        else if (name_is(name, len, "nextitem")) *out = l->has_next ? l->next : v_undef("nextitem", 8);
        else if (name_is(name, len, "cycle")) {
            jmeth *m = r_alloc(R, n, sizeof *m);
            if (!m) return false;
            m->self = obj;
            m->name = "cycle";
            jv v = {.t = V_METHOD};
            v.u.meth = m;
            *out = v;
        } else *out = v_undef(name, len);
        return true;
    }
    if (is_method_name(obj, name, len)) {
        jmeth *m = r_alloc(R, n, sizeof *m);
        char *nm = r_alloc(R, n, len + 1);
        if (!m || !nm) return false;
        memcpy(nm, name, len);
        nm[len] = 0;
        m->self = obj;
        m->name = nm;
        jv v = {.t = V_METHOD};
        v.u.meth = m;
        *out = v;
        return true;
    }
    if (obj.t == V_DICT) {
        jv *x = dict_find_str(obj.u.d, name, len);
        *out = x ? *x : v_undef(name, len);
        return true;
    }
    *out = v_undef(name, len);
    return true;
}

static int64_t clamp_idx(int64_t i, int64_t len, bool neg_step) {
    if (i < 0) {
        i += len;
        if (i < 0) i = neg_step ? -1 : 0;
    } else if (i >= len) {
        i = neg_step ? len - 1 : len;
    }
    return i;
}

static bool eval_slice(rctx *R, frame *f, const node *n, jv obj, jv *out) {
    jv parts[3];
    const node *pn[3] = {n->b, n->c, n->d};
    for (int i = 0; i < 3; i++) {
        parts[i] = v_none();
        if (pn[i] && !eval(R, f, pn[i], &parts[i])) return false;
        if (parts[i].t != V_NONE && parts[i].t != V_INT && parts[i].t != V_BOOL)
            return r_error(R, n, "slice indices must be integers or none, not %s",
                           type_name(parts[i]));
    }
    int64_t step = parts[2].t == V_NONE ? 1 : num_i(parts[2]);
    if (step == 0) return r_error(R, n, "slice step cannot be zero");
    size_t ncp = 0;
    size_t *offs = NULL;
    int64_t len;
    if (obj.t == V_LIST) len = (int64_t)obj.u.l->n;
    else if (obj.t == V_STR) {
        offs = cp_offsets(R, n, obj.u.s.p, obj.u.s.n, &ncp);
        if (!offs) return false;
        len = (int64_t)ncp;
    } else if (obj.t == V_UNDEF) {
        char nb[96];
        return r_error(R, n, "%s is undefined", undef_name(obj, nb, sizeof nb));
    } else {
        return r_error(R, n, "%s cannot be sliced", type_name(obj));
    }
    bool neg = step < 0;
    int64_t start = parts[0].t == V_NONE ? (neg ? len - 1 : 0) : clamp_idx(num_i(parts[0]), len, neg);
    int64_t stop = parts[1].t == V_NONE ? (neg ? -1 : len) : clamp_idx(num_i(parts[1]), len, neg);
    if (obj.t == V_LIST) {
        jlist *l = r_list(R, n, 0);
        if (!l) return false;
        l->tuple = obj.u.l->tuple;
        for (int64_t i = start; neg ? i > stop : i < stop; i += step)
            if (!list_push(R, n, l, obj.u.l->v[i])) return false;
        *out = v_list(l);
        return true;
    }
    if (step == 1) {
        if (stop < start) stop = start;
        *out = v_str(obj.u.s.p + offs[start], offs[stop] - offs[start]);
        return true;
    }
    sbuf b = {0};
    for (int64_t i = start; neg ? i > stop : i < stop; i += step)
        sb_put(&b, obj.u.s.p + offs[i], offs[i + 1] - offs[i]);
    return r_take(R, n, &b, out);
}

static bool do_in(rctx *R, const node *n, jv a, jv b, bool *res) {
    if (b.t == V_STR) {
        if (a.t != V_STR) return r_error(R, n, "'in <string>' needs a string on the left, not %s", type_name(a));
        if (a.u.s.n == 0) {
            *res = true;
            return true;
        }
        *res = false;
        for (size_t i = 0; i + a.u.s.n <= b.u.s.n; i++)
            if (!memcmp(b.u.s.p + i, a.u.s.p, a.u.s.n)) {
                *res = true;
                break;
            }
        return true;
    }
    if (b.t == V_LIST) {
        *res = false;
        for (size_t i = 0; i < b.u.l->n; i++)
            if (v_eq(a, b.u.l->v[i])) {
                *res = true;
                break;
            }
        return true;
    }
    if (b.t == V_DICT) {
        *res = dict_find(b.u.d, a) != NULL;
        return true;
    }
    char nb[96];
    if (b.t == V_UNDEF) return r_error(R, n, "%s is undefined (right of 'in')", undef_name(b, nb, sizeof nb));
    return r_error(R, n, "'in' needs a string, list or dict on the right, not %s", type_name(b));
}

/* Python's printf-style `fmt % args`: flags - + space 0, width, precision,
 * conversions s r d i f F e E g G x X o c %, and %(key)s with a dict. */
/* %o, %x, %X as Python has them, not C: a negative number is a sign and
 * its magnitude (C prints two's complement), '#' adds 0o/0x/0X (C: 0
 * for octal, nothing for 0), and '0' pads between the prefix and the
 * digits. False when the field is too wide. */
static bool py_radix(sbuf *b, const char *flags, int width, int prec, char conv, long long v) {
    if (width > 1000 || prec > 1000) return false;
    unsigned long long mag = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    char digits[32], head[4] = "";
    snprintf(digits, sizeof digits, conv == 'o' ? "%llo" : conv == 'x' ? "%llx" : "%llX", mag);
    size_t nh = 0;
    if (v < 0) head[nh++] = '-';
    else if (strchr(flags, '+')) head[nh++] = '+';
    else if (strchr(flags, ' ')) head[nh++] = ' ';
    if (strchr(flags, '#')) {
        head[nh++] = '0';
        head[nh++] = conv == 'o' ? 'o' : conv;
    }
    head[nh] = 0;
    size_t nd = strlen(digits), zeros = prec > 0 && (size_t)prec > nd ? (size_t)prec - nd : 0;
    size_t body = nh + zeros + nd, pad = width > 0 && (size_t)width > body ? (size_t)width - body : 0;
    bool left = strchr(flags, '-') != NULL, zero_pad = !left && strchr(flags, '0') != NULL;
    if (!left && !zero_pad)
        for (size_t k = 0; k < pad; k++) sb_chr(b, ' ');
    sb_str(b, head);
    if (zero_pad) zeros += pad;
    for (size_t k = 0; k < zeros; k++) sb_chr(b, '0');
    sb_str(b, digits);
    if (left)
        for (size_t k = 0; k < pad; k++) sb_chr(b, ' ');
    return true;
}

static bool str_format(rctx *R, const node *n, jv fmt, jv fa, jv *out) {
    bool tuple = fa.t == V_LIST && fa.u.l->tuple;
    bool mapping = fa.t == V_DICT || (fa.t == V_LIST && !tuple);
    size_t nargs = tuple ? fa.u.l->n : 1, used = 0;
    const char *p = fmt.u.s.p;
    size_t len = fmt.u.s.n;
    sbuf b = {0};
    for (size_t i = 0; i < len;) {
        if (p[i] != '%') {
            sb_chr(&b, p[i++]);
            continue;
        }
        if (++i >= len) goto bad;
        jv arg;
        bool have = false;
        if (p[i] == '(') { /* %(key)s */
            size_t e = i + 1;
            while (e < len && p[e] != ')') e++;
            if (e >= len) goto bad;
            if (fa.t != V_DICT) {
                free(b.p);
                return r_error(R, n, "format: %%(key) requires a dict");
            }
            jv *x = dict_find_str(fa.u.d, p + i + 1, e - i - 1);
            if (!x) {
                free(b.p);
                return r_error(R, n, "format: no key '%.*s'", (int)(e - i - 1), p + i + 1);
            }
            arg = *x;
            have = true;
            i = e + 1;
        }
        char flags[8];
        size_t nf = 0;
        while (i < len && strchr("-+ 0#", p[i]) && nf < sizeof flags - 1) flags[nf++] = p[i++];
        flags[nf] = 0;
        int width = -1, prec = -1;
        if (i < len && is_digit(p[i])) {
            width = 0;
            while (i < len && is_digit(p[i]) && width < 1000) width = width * 10 + (p[i++] - '0');
        }
        if (i < len && p[i] == '.') {
            i++;
            prec = 0;
            while (i < len && is_digit(p[i]) && prec < 1000) prec = prec * 10 + (p[i++] - '0');
        }
        if (i >= len) goto bad;
        char conv = p[i++];
        if (conv == '%') {
            sb_chr(&b, '%');
            continue;
        }
        if (!have) {
            if (used >= nargs) {
                free(b.p);
                return r_error(R, n, "format: not enough arguments for the format string");
            }
            arg = tuple ? fa.u.l->v[used] : fa;
            used++;
        }
        char spec[32], tmp[1100];
        sbuf piece = {0};
        if (conv == 's' || conv == 'r') {
            if (conv == 's') py_str(&piece, arg);
            else py_repr(&piece, arg, 1);
            size_t plen = piece.len;
            if (prec >= 0) { /* precision counts code points */
                size_t k = 0, c = 0;
                while (k < piece.len && c < (size_t)prec) {
                    k += u8_len(piece.p + k, piece.len - k);
                    c++;
                }
                plen = k;
            }
            size_t cps = piece.p ? u8_count(piece.p, plen) : 0;
            bool left = strchr(flags, '-') != NULL;
            if (!left)
                for (int k = (int)cps; k < width; k++) sb_chr(&b, ' ');
            if (plen) sb_put(&b, piece.p, plen);
            if (left)
                for (int k = (int)cps; k < width; k++) sb_chr(&b, ' ');
            free(piece.p);
            continue;
        }
        bool is_int = strchr("diouxXc", conv) != NULL;
        if (!is_int && !strchr("fFeEgG", conv)) {
            free(b.p);
            return r_error(R, n, "format: unsupported conversion '%%%c'", conv);
        }
        if (!is_num(arg)) {
            free(b.p);
            return r_error(R, n, "format: %%%c needs a number, not %s", conv, type_name(arg));
        }
        if (conv == 'c') {
            long long v = (long long)num_i(arg);
            u8_put(&b, (uint32_t)(v < 0 || v > 0x10FFFF ? 0xFFFD : v));
            continue;
        }
        if (conv == 'o' || conv == 'x' || conv == 'X') {
            if (arg.t == V_FLOAT) { /* Python: "an integer is required" */
                free(b.p);
                return r_error(R, n, "format: %%%c needs an integer, not float", conv);
            }
            if (!py_radix(&b, flags, width, prec, conv, num_i(arg))) {
                free(b.p);
                return r_error(R, n, "format: field too wide");
            }
            continue;
        }
        /* "%" flags [width] [.prec] then "ll" + d or the float conversion */
        int o = snprintf(spec, sizeof spec, "%%%s", flags);
        if (width >= 0) o += snprintf(spec + o, sizeof spec - (size_t)o, "%d", width);
        if (prec >= 0) o += snprintf(spec + o, sizeof spec - (size_t)o, ".%d", prec);
        if (is_int) {
            snprintf(spec + o, sizeof spec - (size_t)o, "ll%c", conv == 'i' || conv == 'u' ? 'd' : conv);
            snprintf(tmp, sizeof tmp, spec, (long long)num_i(arg));
        } else {
            snprintf(spec + o, sizeof spec - (size_t)o, "%c", conv);
            snprintf(tmp, sizeof tmp, spec, num_f(arg));
        }
        if (strlen(tmp) >= sizeof tmp - 1) {
            free(b.p);
            return r_error(R, n, "format: field too wide");
        }
        sb_str(&b, tmp);
    }
    if (used < nargs && tuple) {
        free(b.p);
        return r_error(R, n, "format: not all arguments converted during string formatting");
    }
    if (!tuple && !mapping && used == 0) {
        free(b.p);
        return r_error(R, n, "format: not all arguments converted during string formatting");
    }
    return r_take(R, n, &b, out);
bad:
    free(b.p);
    return r_error(R, n, "format: incomplete format");
}

static bool undef_error(rctx *R, const node *n, jv v) {
    char nb[96];
    return r_error(R, n, "%s is undefined", undef_name(v, nb, sizeof nb));
}

static bool eval_bin(rctx *R, const node *n, binop op, jv a, jv b, jv *out) {
    if ((op == OP_CAT || op == OP_ADD) && a.t == V_STR && b.t == V_STR &&
        a.u.s.n + b.u.s.n > R->max_string)
        return r_error(R, n, "string too long (the limit is %zu bytes)", R->max_string);
    if (op == OP_CAT) {
        sbuf s = {0};
        py_str(&s, a);
        py_str(&s, b);
        return r_take(R, n, &s, out);
    }
    if (op == OP_EQ || op == OP_NE) {
        bool e = v_eq(a, b);
        *out = v_bool(op == OP_EQ ? e : !e);
        return true;
    }
    if (op == OP_IN || op == OP_NOTIN) {
        bool r;
        if (!do_in(R, n, a, b, &r)) return false;
        *out = v_bool(op == OP_IN ? r : !r);
        return true;
    }
    if (a.t == V_UNDEF) return undef_error(R, n, a);
    if (b.t == V_UNDEF) return undef_error(R, n, b);
    if (op >= OP_LT && op <= OP_GE) {
        int c;
        if (!v_cmp(a, b, &c))
            return r_error(R, n, "cannot compare %s with %s", type_name(a), type_name(b));
        *out = v_bool(op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0);
        return true;
    }
    static const char *const opname[] = {"+", "-", "*", "/", "//", "%", "**"};
    if (op == OP_ADD && a.t == V_STR && b.t == V_STR) {
        sbuf s = {0};
        sb_put(&s, a.u.s.p, a.u.s.n);
        sb_put(&s, b.u.s.p, b.u.s.n);
        return r_take(R, n, &s, out);
    }
    if (op == OP_ADD && a.t == V_LIST && b.t == V_LIST) {
        jlist *l = r_list(R, n, a.u.l->n + b.u.l->n);
        if (!l) return false;
        for (size_t i = 0; i < a.u.l->n; i++) l->v[l->n++] = a.u.l->v[i];
        for (size_t i = 0; i < b.u.l->n; i++) l->v[l->n++] = b.u.l->v[i];
        *out = v_list(l);
        return true;
    }
    if (op == OP_MOD && a.t == V_STR) return str_format(R, n, a, b, out);
    if (op == OP_MUL && ((a.t == V_STR && b.t == V_INT) || (a.t == V_INT && b.t == V_STR))) {
        jv s = a.t == V_STR ? a : b;
        int64_t k = a.t == V_INT ? a.u.i : b.u.i;
        if (k > 0 && s.u.s.n && (uint64_t)k > (64u << 20) / s.u.s.n)
            return r_error(R, n, "string repetition too large");
        sbuf t = {0};
        for (int64_t i = 0; i < k; i++) sb_put(&t, s.u.s.p, s.u.s.n);
        return r_take(R, n, &t, out);
    }
    if (!is_num(a) || !is_num(b))
        return r_error(R, n, "unsupported operand types for %s: %s and %s", opname[op],
                       type_name(a), type_name(b));
    bool fl = a.t == V_FLOAT || b.t == V_FLOAT || op == OP_DIV;
    if (op == OP_POW && !fl && num_i(b) < 0) fl = true;
    if (fl) {
        double x = num_f(a), y = num_f(b), r = 0;
        switch (op) {
        case OP_ADD: r = x + y; break;
        case OP_SUB: r = x - y; break;
        case OP_MUL: r = x * y; break;
        case OP_DIV:
        case OP_FDIV:
        case OP_MOD:
            if (y == 0) return r_error(R, n, "division by zero");
            r = op == OP_DIV ? x / y : op == OP_FDIV ? floor(x / y) : x - floor(x / y) * y;
            break;
        case OP_POW: r = pow(x, y); break;
        default: break;
        }
        *out = v_float(r);
        return true;
    }
    int64_t x = num_i(a), y = num_i(b), r = 0;
    switch (op) {
    case OP_ADD:
        if (__builtin_add_overflow(x, y, &r)) return r_error(R, n, "integer overflow");
        break;
    case OP_SUB:
        if (__builtin_sub_overflow(x, y, &r)) return r_error(R, n, "integer overflow");
        break;
    case OP_MUL:
        if (__builtin_mul_overflow(x, y, &r)) return r_error(R, n, "integer overflow");
        break;
    case OP_FDIV:
    case OP_MOD:
        if (y == 0) return r_error(R, n, "division by zero");
        if (x == INT64_MIN && y == -1) return r_error(R, n, "integer overflow");
        r = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) r--; /* floor */
        if (op == OP_MOD) r = x - r * y;
        break;
    case OP_POW: {
        int64_t base = x;
        r = 1;
        for (int64_t e = y; e > 0; e >>= 1) { /* square and multiply */
            if ((e & 1) && __builtin_mul_overflow(r, base, &r)) return r_error(R, n, "integer overflow");
            if (e > 1 && __builtin_mul_overflow(base, base, &base))
                return r_error(R, n, "integer overflow");
        }
        break;
    }
    default: break;
    }
    *out = v_int(r);
    return true;
}

/* ------------------------------------------------------------------------ */
/* Methods of str, dict and list                                             */
/* ------------------------------------------------------------------------ */
static bool str_find(const char *h, size_t hn, const char *nd, size_t nn, size_t from, size_t *at) {
    if (nn == 0) {
        *at = from;
        return from <= hn;
    }
    for (size_t i = from; i + nn <= hn; i++)
        if (!memcmp(h + i, nd, nn)) {
            *at = i;
            return true;
        }
    return false;
}

static bool str_split(rctx *R, const node *n, jv s, const jv *sep, int64_t maxsplit, jv *out) {
    jlist *l = r_list(R, n, 0);
    if (!l) return false;
    const char *p = s.u.s.p;
    size_t len = s.u.s.n;
    if (!sep || sep->t == V_NONE) { /* runs of whitespace, no empty strings */
        size_t i = 0;
        int64_t splits = 0;
        for (;;) {
            size_t e = len;
            py_strip(p, &i, &e, true, false, NULL, 0);
            if (i >= len) break;
            if (maxsplit >= 0 && splits >= maxsplit) {
                size_t b2 = i, e2 = len;
                py_strip(p, &b2, &e2, false, true, NULL, 0);
                if (!list_push(R, n, l, v_str(p + i, e2 - b2))) return false;
                break;
            }
            size_t j = i;
            while (j < len) {
                size_t c = u8_len(p + j, len - j);
                if (py_space(u8_cp(p + j, c))) break;
                j += c;
            }
            if (!list_push(R, n, l, v_str(p + i, j - i))) return false;
            splits++;
            i = j;
        }
        *out = v_list(l);
        return true;
    }
    if (sep->t != V_STR) return r_error(R, n, "split() separator must be a string");
    if (sep->u.s.n == 0) return r_error(R, n, "split(): empty separator");
    size_t i = 0, at;
    int64_t splits = 0;
    while ((maxsplit < 0 || splits < maxsplit) && str_find(p, len, sep->u.s.p, sep->u.s.n, i, &at)) {
        if (!list_push(R, n, l, v_str(p + i, at - i))) return false;
        i = at + sep->u.s.n;
        splits++;
    }
    if (!list_push(R, n, l, v_str(p + i, len - i))) return false;
    *out = v_list(l);
    return true;
}

static bool str_case(rctx *R, const node *n, jv s, int mode, jv *out) {
    /* mode 0 lower, 1 upper, 2 str.title(), 3 capitalize (ASCII letters),
     * 4 Jinja's title filter: words start after - ( { [ < or white space,
     * their first character upper-cased and the rest lower-cased */
    if (mode == 4) {
        char *c = r_alloc(R, n, s.u.s.n + 1);
        if (!c) return false;
        bool start = true;
        for (size_t i = 0; i < s.u.s.n; i++) {
            char ch = s.u.s.p[i];
            bool sep = ch == '-' || ch == '(' || ch == '{' || ch == '[' || ch == '<' || ch == ' ' ||
                       (ch >= 9 && ch <= 13);
            if (sep) c[i] = ch;
            else if (start) c[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
            else c[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
            start = sep;
        }
        c[s.u.s.n] = 0;
        *out = v_str(c, s.u.s.n);
        return true;
    }
    char *c = r_alloc(R, n, s.u.s.n + 1);
    if (!c) return false;
    bool word_start = true;
    for (size_t i = 0; i < s.u.s.n; i++) {
        char ch = s.u.s.p[i];
        bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        bool up = mode == 1 || ((mode == 2 || mode == 3) && word_start);
        if (mode == 3 && i > 0) up = false;
        if (alpha) ch = up ? (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch)
                           : (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        c[i] = ch;
        word_start = !alpha && !((unsigned char)ch >= 0x80) && !(ch >= '0' && ch <= '9');
    }
    c[s.u.s.n] = 0;
    *out = v_str(c, s.u.s.n);
    return true;
}

static bool str_replace(rctx *R, const node *n, jv s, jv from, jv to, int64_t count, jv *out) {
    sbuf b = {0};
    size_t i = 0, at;
    int64_t done = 0;
    if (from.u.s.n == 0) { /* Python inserts `to` between characters */
        for (size_t k = 0; k <= s.u.s.n;) {
            if (count < 0 || done < count) {
                sb_put(&b, to.u.s.p, to.u.s.n);
                done++;
            }
            if (k == s.u.s.n) break;
            size_t c = u8_len(s.u.s.p + k, s.u.s.n - k);
            sb_put(&b, s.u.s.p + k, c);
            k += c;
        }
        return r_take(R, n, &b, out);
    }
    while ((count < 0 || done < count) && str_find(s.u.s.p, s.u.s.n, from.u.s.p, from.u.s.n, i, &at)) {
        sb_put(&b, s.u.s.p + i, at - i);
        sb_put(&b, to.u.s.p, to.u.s.n);
        i = at + from.u.s.n;
        done++;
    }
    sb_put(&b, s.u.s.p + i, s.u.s.n - i);
    return r_take(R, n, &b, out);
}

static bool do_strip(rctx *R, const node *n, jv s, const jv *chars, bool l, bool r, jv *out) {
    if (chars && chars->t != V_NONE && chars->t != V_STR)
        return r_error(R, n, "strip characters must be a string");
    size_t b = 0, e = s.u.s.n;
    bool have = chars && chars->t == V_STR;
    py_strip(s.u.s.p, &b, &e, l, r, have ? chars->u.s.p : NULL, have ? chars->u.s.n : 0);
    *out = v_str(s.u.s.p + b, e - b);
    return true;
}

static bool prefix_test(rctx *R, const node *n, jv s, jv arg, bool end, bool *res) {
    if (arg.t == V_LIST) {
        *res = false;
        for (size_t i = 0; i < arg.u.l->n && !*res; i++)
            if (!prefix_test(R, n, s, arg.u.l->v[i], end, res)) return false;
        return true;
    }
    if (arg.t != V_STR)
        return r_error(R, n, "%s() needs a string, not %s", end ? "endswith" : "startswith",
                       type_name(arg));
    *res = arg.u.s.n <= s.u.s.n &&
           !memcmp(s.u.s.p + (end ? s.u.s.n - arg.u.s.n : 0), arg.u.s.p, arg.u.s.n);
    return true;
}

static bool call_method(rctx *R, const node *n, const jmeth *m, const args *a, jv *out) {
    jv self = m->self;
    const char *nm = m->name;
    const jv *a0 = arg_get(a, 0, NULL), *a1 = arg_get(a, 1, NULL);
    if (self.t == V_STR) {
        if (!strcmp(nm, "startswith") || !strcmp(nm, "endswith")) {
            bool r;
            if (!a0) return r_error(R, n, "%s() needs an argument", nm);
            if (!prefix_test(R, n, self, *a0, nm[0] == 'e', &r)) return false;
            *out = v_bool(r);
            return true;
        }
        if (!strcmp(nm, "split") || !strcmp(nm, "rsplit")) {
            const jv *sep = arg_get(a, 0, "sep");
            const jv *mx = arg_get(a, 1, "maxsplit");
            int64_t maxsplit = mx && (mx->t == V_INT) ? mx->u.i : -1;
            if (nm[0] == 'r' && maxsplit >= 0)
                return r_error(R, n, "rsplit() with maxsplit is not supported");
            return str_split(R, n, self, sep, maxsplit, out);
        }
        if (!strcmp(nm, "strip")) return do_strip(R, n, self, a0, true, true, out);
        if (!strcmp(nm, "lstrip")) return do_strip(R, n, self, a0, true, false, out);
        if (!strcmp(nm, "rstrip")) return do_strip(R, n, self, a0, false, true, out);
        if (!strcmp(nm, "lower")) return str_case(R, n, self, 0, out);
        if (!strcmp(nm, "upper")) return str_case(R, n, self, 1, out);
        if (!strcmp(nm, "title")) return str_case(R, n, self, 2, out);
        if (!strcmp(nm, "capitalize")) {
            jv low;
            if (!str_case(R, n, self, 0, &low)) return false;
            return str_case(R, n, low, 3, out);
        }
        if (!strcmp(nm, "replace")) {
            if (!a0 || !a1 || a0->t != V_STR || a1->t != V_STR)
                return r_error(R, n, "replace() needs two strings");
            const jv *c = arg_get(a, 2, "count");
            return str_replace(R, n, self, *a0, *a1, c && c->t == V_INT ? c->u.i : -1, out);
        }
        if (!strcmp(nm, "find") || !strcmp(nm, "count")) {
            if (!need_str(R, n, a0, nm)) return false;
            if (nm[0] == 'f') {
                size_t at;
                if (!str_find(self.u.s.p, self.u.s.n, a0->u.s.p, a0->u.s.n, 0, &at)) *out = v_int(-1);
                else *out = v_int((int64_t)u8_count(self.u.s.p, at));
                return true;
            }
            int64_t c = 0;
            size_t i = 0, at;
            if (a0->u.s.n == 0) {
                *out = v_int((int64_t)u8_count(self.u.s.p, self.u.s.n) + 1);
                return true;
            }
            while (str_find(self.u.s.p, self.u.s.n, a0->u.s.p, a0->u.s.n, i, &at)) {
                c++;
                i = at + a0->u.s.n;
            }
            *out = v_int(c);
            return true;
        }
        if (!strcmp(nm, "join")) {
            jlist *items;
            if (!a0 || !iter_items(R, n, *a0, &items)) return a0 ? false : r_error(R, n, "join() needs an argument");
            sbuf b = {0};
            for (size_t i = 0; i < items->n; i++) {
                if (items->v[i].t != V_STR) {
                    free(b.p);
                    return r_error(R, n, "join(): item %zu is %s, not a string", i, type_name(items->v[i]));
                }
                if (i) sb_put(&b, self.u.s.p, self.u.s.n);
                sb_put(&b, items->v[i].u.s.p, items->v[i].u.s.n);
            }
            return r_take(R, n, &b, out);
        }
        if (!strcmp(nm, "splitlines")) {
            jlist *l = r_list(R, n, 0);
            if (!l) return false;
            size_t i = 0;
            while (i < self.u.s.n) {
                size_t j = i;
                while (j < self.u.s.n && self.u.s.p[j] != '\n' && self.u.s.p[j] != '\r') j++;
                if (!list_push(R, n, l, v_str(self.u.s.p + i, j - i))) return false;
                if (j < self.u.s.n && self.u.s.p[j] == '\r' && j + 1 < self.u.s.n && self.u.s.p[j + 1] == '\n') j++;
                i = j + 1;
            }
            *out = v_list(l);
            return true;
        }
        if (!strcmp(nm, "isdigit") || !strcmp(nm, "isalpha") || !strcmp(nm, "isspace")) {
            bool r = self.u.s.n > 0;
            for (size_t i = 0; i < self.u.s.n && r; i++) {
                char c = self.u.s.p[i];
                r = nm[2] == 'd' ? (c >= '0' && c <= '9')
                    : nm[2] == 'a' ? ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                                   : (c == ' ' || (c >= 9 && c <= 13));
            }
            *out = v_bool(r);
            return true;
        }
        return r_error(R, n, "string method %s() is not supported", nm);
    }
    if (self.t == V_DICT) {
        jdict *d = self.u.d;
        if (!strcmp(nm, "get")) {
            if (!a0) return r_error(R, n, "get() needs a key");
            jv *x = dict_find(d, *a0);
            *out = x ? *x : a1 ? *a1 : v_none();
            return true;
        }
        jlist *l = r_list(R, n, d->n);
        if (!l) return false;
        for (size_t i = 0; i < d->n; i++) {
            if (!strcmp(nm, "keys")) l->v[l->n++] = d->k[i];
            else if (!strcmp(nm, "values")) l->v[l->n++] = d->v[i];
            else {
                jlist *pair = r_list(R, n, 2);
                if (!pair) return false;
                pair->tuple = true;
                pair->v[0] = d->k[i];
                pair->v[1] = d->v[i];
                pair->n = 2;
                l->v[l->n++] = v_list(pair);
            }
        }
        *out = v_list(l);
        return true;
    }
    if (self.t == V_LOOP) { /* loop.cycle(a, b, ...) */
        if (!a->npos) return r_error(R, n, "loop.cycle() needs at least one argument");
        *out = a->pos[(size_t)self.u.loop->index0 % a->npos];
        return true;
    }
    if (self.t == V_LIST) {
        jlist *l = self.u.l;
        if (!a0) return r_error(R, n, "%s() needs an argument", nm);
        int64_t c = 0, first = -1;
        for (size_t i = 0; i < l->n; i++)
            if (v_eq(l->v[i], *a0)) {
                if (first < 0) first = (int64_t)i;
                c++;
            }
        if (!strcmp(nm, "index") && first < 0) return r_error(R, n, "index(): value not in list");
        *out = v_int(!strcmp(nm, "index") ? first : c);
        return true;
    }
    return r_error(R, n, "%s has no method %s()", type_name(self), nm);
}

/* ------------------------------------------------------------------------ */
/* Tests (x is NAME)                                                         */
/* ------------------------------------------------------------------------ */
static bool apply_test(rctx *R, const node *n, const char *nm, size_t nl, jv v, const args *a,
                       bool *res) {
    const jv *a0 = arg_get(a, 0, NULL);
#define T(s) name_is(nm, nl, s)
    if (T("defined")) *res = v.t != V_UNDEF;
    else if (T("undefined")) *res = v.t == V_UNDEF;
    else if (T("none")) *res = v.t == V_NONE;
    else if (T("boolean")) *res = v.t == V_BOOL;
    else if (T("true")) *res = v.t == V_BOOL && v.u.b;
    else if (T("false")) *res = v.t == V_BOOL && !v.u.b;
    else if (T("integer")) *res = v.t == V_INT;
    else if (T("float")) *res = v.t == V_FLOAT;
    else if (T("number")) *res = is_num(v);
    else if (T("string")) *res = v.t == V_STR;
    else if (T("mapping")) *res = v.t == V_DICT;
    else if (T("iterable")) *res = v.t == V_STR || v.t == V_LIST || v.t == V_DICT;
    else if (T("sequence")) *res = v.t == V_STR || v.t == V_LIST || v.t == V_DICT;
    else if (T("callable")) *res = v.t == V_FUNC || v.t == V_MACRO || v.t == V_METHOD;
    else if (T("odd") || T("even") || T("divisibleby")) {
        if (v.t != V_INT && v.t != V_BOOL)
            return r_error(R, n, "test '%.*s' needs an integer, not %s", (int)nl, nm, type_name(v));
        int64_t x = num_i(v);
        if (T("divisibleby")) {
            if (!a0 || (a0->t != V_INT && a0->t != V_BOOL) || num_i(*a0) == 0)
                return r_error(R, n, "divisibleby needs a non-zero integer");
            *res = num_i(*a0) == -1 || x % num_i(*a0) == 0;
        } else {
            *res = (x % 2 != 0) == T("odd");
        }
    } else if (T("lower") || T("upper")) {
        if (v.t != V_STR) {
            *res = false;
            return true;
        }
        bool any = false, ok = true;
        for (size_t i = 0; i < v.u.s.n; i++) {
            char c = v.u.s.p[i];
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
                any = true;
                if (T("lower") ? (c >= 'A' && c <= 'Z') : (c >= 'a' && c <= 'z')) ok = false;
            }
        }
        *res = any && ok;
    } else if (T("eq") || T("equalto") || T("==") || T("sameas")) {
        if (!a0) return r_error(R, n, "test '%.*s' needs an argument", (int)nl, nm);
        *res = T("sameas") ? (v.t == a0->t && v_eq(v, *a0)) : v_eq(v, *a0);
    } else if (T("ne") || T("!=")) {
        if (!a0) return r_error(R, n, "test 'ne' needs an argument");
        *res = !v_eq(v, *a0);
    } else if (T("lt") || T("le") || T("gt") || T("ge") || T("lessthan") || T("greaterthan")) {
        int c;
        if (!a0 || !v_cmp(v, *a0, &c)) return r_error(R, n, "test '%.*s' cannot compare these values", (int)nl, nm);
        *res = T("lt") || T("lessthan") ? c < 0 : T("le") ? c <= 0 : T("gt") || T("greaterthan") ? c > 0 : c >= 0;
    } else if (T("in")) {
        if (!a0) return r_error(R, n, "test 'in' needs an argument");
        return do_in(R, n, v, *a0, res);
    } else {
        return r_error(R, n, "unknown test '%.*s'", (int)(nl > 40 ? 40 : nl), nm);
    }
#undef T
    return true;
}

/* ------------------------------------------------------------------------ */
/* Filters                                                                   */
/* ------------------------------------------------------------------------ */
static bool apply_filter(rctx *R, const node *n, const char *nm, size_t nl, jv v, const args *a, jv *out);

/* Attribute lookup by a dotted path ("a.b", "0") for map/selectattr/sort. */
static bool attr_path(rctx *R, const node *n, jv v, jv path, jv *out) {
    if (path.t == V_INT) return get_index(R, n, v, path, out);
    if (path.t != V_STR) return r_error(R, n, "attribute must be a string");
    const char *p = path.u.s.p;
    size_t len = path.u.s.n, i = 0;
    *out = v;
    while (i <= len) {
        size_t j = i;
        while (j < len && p[j] != '.') j++;
        bool digits = j > i;
        for (size_t k = i; k < j; k++) digits = digits && is_digit(p[k]);
        if (out->t == V_UNDEF) return true;
        if (digits && out->t == V_LIST) {
            if (!get_index(R, n, *out, v_int(strtoll(p + i, NULL, 10)), out)) return false;
        } else if (out->t == V_DICT) {
            jv *x = dict_find_str(out->u.d, p + i, j - i);
            *out = x ? *x : v_undef(p + i, j - i);
        } else if (!get_attr(R, n, *out, p + i, j - i, out)) {
            return false;
        }
        i = j + 1;
    }
    return true;
}

static bool filter_select(rctx *R, const node *n, const char *nm, jv v, const args *a, jv *out) {
    bool attr = nm[strlen(nm) - 4] == 'a'; /* selectattr / rejectattr */
    bool reject = nm[0] == 'r';
    jlist *items;
    if (!iter_items(R, n, v, &items)) return false;
    size_t base = attr ? 1 : 0;
    const jv *path = attr ? arg_get(a, 0, NULL) : NULL;
    if (attr && !path) return r_error(R, n, "%s needs an attribute name", nm);
    const jv *test = arg_get(a, base, NULL);
    if (test && test->t != V_STR) return r_error(R, n, "%s: test name must be a string", nm);
    args ta = {0};
    if (a->npos > base + 1) {
        ta.pos = a->pos + base + 1;
        ta.npos = a->npos - base - 1;
    }
    jlist *l = r_list(R, n, 0);
    if (!l) return false;
    for (size_t i = 0; i < items->n; i++) {
        jv x = items->v[i];
        if (attr && !attr_path(R, n, x, *path, &x)) return false;
        bool r;
        if (test) {
            if (!apply_test(R, n, test->u.s.p, test->u.s.n, x, &ta, &r)) return false;
        } else {
            r = truthy(x);
        }
        if (r != reject && !list_push(R, n, l, items->v[i])) return false;
    }
    *out = v_list(l);
    return true;
}

static bool filter_map(rctx *R, const node *n, jv v, const args *a, jv *out) {
    jlist *items;
    if (!iter_items(R, n, v, &items)) return false;
    const jv *attr = arg_get(a, (size_t)-1, "attribute");
    const jv *deflt = arg_get(a, (size_t)-1, "default");
    jlist *l = r_list(R, n, items->n);
    if (!l) return false;
    for (size_t i = 0; i < items->n; i++) {
        jv x = items->v[i];
        if (attr) {
            if (!attr_path(R, n, x, *attr, &x)) return false;
            if (x.t == V_UNDEF && deflt) x = *deflt;
        } else {
            const jv *fname = arg_get(a, 0, NULL);
            if (!fname || fname->t != V_STR) return r_error(R, n, "map needs a filter name or attribute=");
            args fa = {0};
            if (a->npos > 1) {
                fa.pos = a->pos + 1;
                fa.npos = a->npos - 1;
            }
            fa.kw = a->kw;
            fa.kw_n = a->kw_n;
            fa.kwv = a->kwv;
            fa.nkw = a->nkw;
            if (!apply_filter(R, n, fname->u.s.p, fname->u.s.n, x, &fa, &x)) return false;
        }
        l->v[l->n++] = x;
    }
    *out = v_list(l);
    return true;
}

static bool to_str(rctx *R, const node *n, jv v, jv *out) {
    if (v.t == V_STR) {
        *out = v;
        return true;
    }
    sbuf b = {0};
    py_str(&b, v);
    return r_take(R, n, &b, out);
}

/* Jinja's sort/unique/min/max compare strings case-insensitively unless
 * case_sensitive is true: the key of one item. */
static bool fold_key(rctx *R, const node *n, jv v, bool case_sensitive, jv *out) {
    if (case_sensitive || v.t != V_STR) {
        *out = v;
        return true;
    }
    return str_case(R, n, v, 0, out);
}

static bool apply_filter(rctx *R, const node *n, const char *nm, size_t nl, jv v, const args *a, jv *out) {
    const jv *a0 = arg_get(a, 0, NULL);
#define F(s) name_is(nm, nl, s)
    if (F("safe") || (F("list") && v.t == V_LIST && !v.u.l->tuple)) {
        *out = v;
        return true;
    }
    if (F("string")) return to_str(R, n, v, out);
    if (F("length") || F("count")) {
        if (v.t == V_STR) *out = v_int((int64_t)u8_count(v.u.s.p, v.u.s.n));
        else if (v.t == V_LIST) *out = v_int((int64_t)v.u.l->n);
        else if (v.t == V_DICT) *out = v_int((int64_t)v.u.d->n);
        else if (v.t == V_UNDEF) *out = v_int(0);
        else return r_error(R, n, "length of %s is not defined", type_name(v));
        return true;
    }
    if (F("tojson")) {
        json_opts o = {-1, false, false, ", ", ": "};
        const jv *ind = arg_get(a, 0, "indent");
        if (ind && ind->t == V_INT) {
            if (ind->u.i < 0 || ind->u.i > 64) return r_error(R, n, "tojson: indent must be 0..64");
            o.indent = (int)ind->u.i;
            o.item_sep = ",";
        } else if (ind && ind->t != V_NONE) {
            return r_error(R, n, "tojson: indent must be an integer");
        }
        const jv *sk = arg_get(a, (size_t)-1, "sort_keys");
        const jv *ea = arg_get(a, (size_t)-1, "ensure_ascii");
        const jv *sep = arg_get(a, (size_t)-1, "separators");
        o.sort_keys = sk && truthy(*sk);
        o.ensure_ascii = ea && truthy(*ea);
        char *seps[2] = {NULL, NULL};
        if (sep && sep->t == V_LIST && sep->u.l->n == 2 && sep->u.l->v[0].t == V_STR &&
            sep->u.l->v[1].t == V_STR) {
            for (int i = 0; i < 2; i++) {
                jv s;
                if (!r_str(R, n, sep->u.l->v[i].u.s.p, sep->u.l->v[i].u.s.n, &s)) return false;
                seps[i] = (char *)s.u.s.p;
            }
            o.item_sep = seps[0];
            o.key_sep = seps[1];
        } else if (sep && sep->t != V_NONE) {
            return r_error(R, n, "tojson: separators must be a pair of strings");
        }
        sbuf b = {0};
        if (!json_dump(R, n, &b, v, &o, 0)) {
            free(b.p);
            return false;
        }
        return r_take(R, n, &b, out);
    }
    if (F("trim")) {
        jv s;
        if (!to_str(R, n, v, &s)) return false;
        return do_strip(R, n, s, a0, true, true, out);
    }
    if (F("lower") || F("upper") || F("capitalize") || F("title")) {
        jv s;
        if (!to_str(R, n, v, &s)) return false;
        if (F("capitalize")) {
            jv low;
            return str_case(R, n, s, 0, &low) && str_case(R, n, low, 3, out);
        }
        return str_case(R, n, s, F("lower") ? 0 : F("upper") ? 1 : 4, out);
    }
    if (F("replace")) {
        jv s;
        const jv *a1 = arg_get(a, 1, NULL), *c = arg_get(a, 2, "count");
        if (!a0 || !a1 || a0->t != V_STR || a1->t != V_STR)
            return r_error(R, n, "replace needs two strings");
        if (!to_str(R, n, v, &s)) return false;
        return str_replace(R, n, s, *a0, *a1, c && c->t == V_INT ? c->u.i : -1, out);
    }
    if (F("default") || F("d")) {
        const jv *b = arg_get(a, 1, "boolean");
        bool use = v.t == V_UNDEF || (b && truthy(*b) && !truthy(v));
        const jv *dv = arg_get(a, 0, "default_value");
        *out = use ? (dv ? *dv : v_str("", 0)) : v;
        return true;
    }
    if (F("first") || F("last")) {
        jlist *items;
        if (!iter_items(R, n, v, &items)) return false;
        *out = items->n ? items->v[F("first") ? 0 : items->n - 1] : v_undef("", 0);
        return true;
    }
    if (F("join")) {
        jlist *items;
        if (!iter_items(R, n, v, &items)) return false;
        const jv *sep = arg_get(a, 0, "d");
        const jv *attr = arg_get(a, 1, "attribute");
        if (sep && sep->t != V_STR) return r_error(R, n, "join separator must be a string");
        sbuf b = {0};
        for (size_t i = 0; i < items->n; i++) {
            jv x = items->v[i];
            if (attr && !attr_path(R, n, x, *attr, &x)) {
                free(b.p);
                return false;
            }
            if (i && sep) sb_put(&b, sep->u.s.p, sep->u.s.n);
            py_str(&b, x);
        }
        return r_take(R, n, &b, out);
    }
    if (F("items")) {
        if (v.t == V_UNDEF) {
            jlist *l = r_list(R, n, 0);
            if (!l) return false;
            *out = v_list(l);
            return true;
        }
        if (v.t != V_DICT) return r_error(R, n, "items needs a dict, not %s", type_name(v));
        jmeth m = {v, "items"};
        args none = {0};
        return call_method(R, n, &m, &none, out);
    }
    if (F("list")) {
        jlist *items;
        if (!iter_items(R, n, v, &items)) return false;
        jlist *l = r_list(R, n, items->n);
        if (!l) return false;
        if (items->n) memcpy(l->v, items->v, items->n * sizeof *l->v);
        l->n = items->n;
        *out = v_list(l);
        return true;
    }
    if (F("reverse")) {
        if (v.t == V_STR) {
            sbuf b = {0};
            size_t ncp;
            size_t *o = cp_offsets(R, n, v.u.s.p, v.u.s.n, &ncp);
            if (!o) return false;
            for (size_t i = ncp; i-- > 0;) sb_put(&b, v.u.s.p + o[i], o[i + 1] - o[i]);
            return r_take(R, n, &b, out);
        }
        jlist *items;
        if (!iter_items(R, n, v, &items)) return false;
        jlist *l = r_list(R, n, items->n);
        if (!l) return false;
        for (size_t i = items->n; i-- > 0;) l->v[l->n++] = items->v[i];
        *out = v_list(l);
        return true;
    }
    if (F("sort")) {
        jlist *items;
        if (!iter_items(R, n, v, &items)) return false;
        const jv *rev = arg_get(a, 0, "reverse");
        const jv *cs = arg_get(a, 1, "case_sensitive");
        const jv *attr = arg_get(a, 2, "attribute");
        jlist *l = r_list(R, n, items->n);
        jv *keys = r_alloc(R, n, (items->n + 1) * sizeof *keys);
        if (!l || !keys) return false;
        for (size_t i = 0; i < items->n; i++) {
            l->v[i] = items->v[i];
            keys[i] = items->v[i];
            if (attr && !attr_path(R, n, items->v[i], *attr, &keys[i])) return false;
            if (!fold_key(R, n, keys[i], cs && truthy(*cs), &keys[i])) return false;
        }
        l->n = items->n;
        bool desc = rev && truthy(*rev);
        for (size_t i = 1; i < l->n; i++) /* stable insertion sort */
            for (size_t j = i; j > 0; j--) {
                int c;
                if (!v_cmp(keys[j - 1], keys[j], &c))
                    return r_error(R, n, "sort: cannot compare %s with %s", type_name(keys[j - 1]),
                                   type_name(keys[j]));
                if (desc ? c >= 0 : c <= 0) break;
                jv t = keys[j];
                keys[j] = keys[j - 1];
                keys[j - 1] = t;
                t = l->v[j];
                l->v[j] = l->v[j - 1];
                l->v[j - 1] = t;
            }
        *out = v_list(l);
        return true;
    }
    if (F("unique")) {
        jlist *items;
        if (!iter_items(R, n, v, &items)) return false;
        const jv *cs = arg_get(a, 0, "case_sensitive");
        jlist *l = r_list(R, n, items->n);
        jv *keys = r_alloc(R, n, (items->n + 1) * sizeof *keys);
        if (!l || !keys) return false;
        for (size_t i = 0; i < items->n; i++) {
            jv k;
            if (!fold_key(R, n, items->v[i], cs && truthy(*cs), &k)) return false;
            bool seen = false;
            for (size_t j = 0; j < l->n && !seen; j++) seen = v_eq(keys[j], k);
            if (!seen) {
                keys[l->n] = k;
                l->v[l->n++] = items->v[i];
            }
        }
        *out = v_list(l);
        return true;
    }
    if (F("selectattr") || F("rejectattr") || F("select") || F("reject")) {
        char name[16];
        snprintf(name, sizeof name, "%.*s", (int)nl, nm);
        return filter_select(R, n, name, v, a, out);
    }
    if (F("map")) return filter_map(R, n, v, a, out);
    if (F("int")) {
        const jv *dv = arg_get(a, 0, "default");
        if (v.t == V_INT || v.t == V_BOOL) *out = v_int(num_i(v));
        else if (v.t == V_FLOAT && isfinite(v.u.f) && fabs(v.u.f) < 9.2e18) *out = v_int((int64_t)v.u.f);
        else if (v.t == V_STR) {
            char *end;
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(v.u.s.n < 63 ? v.u.s.n : 63), v.u.s.p);
            double d = strtod(tmp, &end);
            if (end != tmp && !*end && isfinite(d) && fabs(d) < 9.2e18) *out = v_int((int64_t)d);
            else *out = dv ? *dv : v_int(0);
        } else *out = dv ? *dv : v_int(0);
        return true;
    }
    if (F("float")) {
        const jv *dv = arg_get(a, 0, "default");
        if (is_num(v)) *out = v_float(num_f(v));
        else if (v.t == V_STR) {
            char *end;
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%.*s", (int)(v.u.s.n < 63 ? v.u.s.n : 63), v.u.s.p);
            double d = strtod(tmp, &end);
            *out = end != tmp && !*end ? v_float(d) : dv ? *dv : v_float(0);
        } else *out = dv ? *dv : v_float(0);
        return true;
    }
    if (F("abs")) {
        if (v.t == V_BOOL) *out = v_int(v.u.b);
        else if (v.t == V_INT && v.u.i != INT64_MIN) *out = v_int(v.u.i < 0 ? -v.u.i : v.u.i);
        else if (v.t == V_FLOAT) *out = v_float(fabs(v.u.f));
        else return r_error(R, n, "abs needs a number, not %s", type_name(v));
        return true;
    }
    if (F("round")) {
        const jv *pr = arg_get(a, 0, "precision");
        const jv *me = arg_get(a, 1, "method");
        if (!is_num(v)) return r_error(R, n, "round needs a number, not %s", type_name(v));
        double p = pow(10.0, pr && pr->t == V_INT ? (double)pr->u.i : 0.0), x = num_f(v) * p;
        if (me && me->t == V_STR && name_is(me->u.s.p, me->u.s.n, "floor")) x = floor(x);
        else if (me && me->t == V_STR && name_is(me->u.s.p, me->u.s.n, "ceil")) x = ceil(x);
        else x = round(x);
        *out = v_float(x / p);
        return true;
    }
    if (F("indent")) {
        jv s;
        if (!to_str(R, n, v, &s)) return false;
        const jv *w = arg_get(a, 0, "width");
        const jv *first = arg_get(a, 1, "first");
        const jv *blank = arg_get(a, 2, "blank");
        sbuf pad = {0};
        if (w && w->t == V_STR) sb_put(&pad, w->u.s.p, w->u.s.n);
        else
            for (int64_t i = 0; i < (w && w->t == V_INT ? w->u.i : 4) && i < 256; i++) sb_chr(&pad, ' ');
        sbuf b = {0};
        size_t i = 0;
        bool line0 = true;
        while (i <= s.u.s.n) {
            size_t j = i;
            while (j < s.u.s.n && s.u.s.p[j] != '\n') j++;
            bool empty = j == i;
            if ((!line0 || (first && truthy(*first))) && (!empty || (blank && truthy(*blank))))
                sb_put(&b, pad.p, pad.len);
            sb_put(&b, s.u.s.p + i, j - i);
            if (j < s.u.s.n) sb_chr(&b, '\n');
            line0 = false;
            i = j + 1;
        }
        free(pad.p);
        return r_take(R, n, &b, out);
    }
    if (F("escape") || F("e") || F("forceescape")) {
        jv s;
        if (!to_str(R, n, v, &s)) return false;
        sbuf b = {0};
        for (size_t i = 0; i < s.u.s.n; i++) {
            char c = s.u.s.p[i];
            if (c == '&') sb_str(&b, "&amp;");
            else if (c == '<') sb_str(&b, "&lt;");
            else if (c == '>') sb_str(&b, "&gt;");
            else if (c == '"') sb_str(&b, "&#34;");
            else if (c == '\'') sb_str(&b, "&#39;");
            else sb_chr(&b, c);
        }
        return r_take(R, n, &b, out);
    }
    if (F("wordcount")) {
        jv s, parts;
        if (!to_str(R, n, v, &s) || !str_split(R, n, s, NULL, -1, &parts)) return false;
        *out = v_int((int64_t)parts.u.l->n);
        return true;
    }
    if (F("min") || F("max") || F("sum")) {
        jlist *items;
        if (!iter_items(R, n, v, &items)) return false;
        if (F("sum")) {
            jv acc = v_int(0);
            for (size_t i = 0; i < items->n; i++)
                if (!eval_bin(R, n, OP_ADD, acc, items->v[i], &acc)) return false;
            *out = acc;
            return true;
        }
        if (!items->n) {
            *out = v_undef("", 0);
            return true;
        }
        const jv *cs = arg_get(a, 0, "case_sensitive");
        size_t best = 0;
        jv best_key;
        if (!fold_key(R, n, items->v[0], cs && truthy(*cs), &best_key)) return false;
        for (size_t i = 1; i < items->n; i++) {
            int c;
            jv k;
            if (!fold_key(R, n, items->v[i], cs && truthy(*cs), &k)) return false;
            if (!v_cmp(k, best_key, &c)) return r_error(R, n, "%.*s: values do not compare", (int)nl, nm);
            if (F("min") ? c < 0 : c > 0) {
                best = i;
                best_key = k;
            }
        }
        *out = items->v[best];
        return true;
    }
#undef F
    return r_error(R, n, "unknown filter '%.*s'", (int)(nl > 40 ? 40 : nl), nm);
}

/* ------------------------------------------------------------------------ */
/* Calls                                                                     */
/* ------------------------------------------------------------------------ */
static bool call_func(rctx *R, const node *n, int fn, const args *a, jv *out) {
    switch (fn) {
    case FN_RANGE: {
        int64_t start = 0, stop, step = 1;
        for (size_t i = 0; i < a->npos; i++)
            if (a->pos[i].t != V_INT) return r_error(R, n, "range() needs integers");
        if (a->npos == 1) stop = a->pos[0].u.i;
        else if (a->npos == 2 || a->npos == 3) {
            start = a->pos[0].u.i;
            stop = a->pos[1].u.i;
            if (a->npos == 3) step = a->pos[2].u.i;
        } else return r_error(R, n, "range() takes 1 to 3 arguments");
        if (step == 0) return r_error(R, n, "range() step must not be zero");
        double count = ceil(((double)stop - (double)start) / (double)step);
        if (count > JJ_MAX_RANGE) return r_error(R, n, "range() of more than %d items", JJ_MAX_RANGE);
        jlist *l = r_list(R, n, count > 0 ? (size_t)count : 0);
        if (!l) return false;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            l->v[l->n++] = v_int(i);
            if (l->n >= l->cap) break;
        }
        *out = v_list(l);
        return true;
    }
    case FN_NAMESPACE:
    case FN_DICT: {
        jdict *d = r_dict(R, n);
        if (!d) return false;
        d->ns = fn == FN_NAMESPACE;
        for (size_t i = 0; i < a->npos; i++) { /* namespace(a_dict) copies it */
            if (a->pos[i].t != V_DICT) return r_error(R, n, "%s() takes a dict or keyword arguments", g_fn_names[fn]);
            for (size_t k = 0; k < a->pos[i].u.d->n; k++)
                if (!dict_set(R, n, d, a->pos[i].u.d->k[k], a->pos[i].u.d->v[k])) return false;
        }
        for (size_t i = 0; i < a->nkw; i++)
            if (!dict_set(R, n, d, v_str(a->kw[i], a->kw_n[i]), a->kwv[i])) return false;
        *out = v_dict(d);
        return true;
    }
    case FN_RAISE: {
        sbuf b = {0};
        if (a->npos) py_str(&b, a->pos[0]);
        r_error(R, n, "raise_exception: %.*s", (int)(b.len > 300 ? 300 : b.len), b.p ? b.p : "");
        free(b.p);
        return false;
    }
    case FN_STRFTIME: {
        if (a->npos != 1 || a->pos[0].t != V_STR) return r_error(R, n, "strftime_now() needs a format string");
        char fmt[128], buf[512];
        if (a->pos[0].u.s.n >= sizeof fmt) return r_error(R, n, "strftime_now(): format too long");
        memcpy(fmt, a->pos[0].u.s.p, a->pos[0].u.s.n);
        fmt[a->pos[0].u.s.n] = 0;
        time_t t = (time_t)(R->now ? R->now : (int64_t)time(NULL));
        struct tm tm;
        if (!localtime_r(&t, &tm)) return r_error(R, n, "strftime_now(): no local time");
        size_t len = strftime(buf, sizeof buf, fmt, &tm);
        return r_str(R, n, buf, len, out);
    }
    default: return r_error(R, n, "not callable");
    }
}

static bool call_macro(rctx *R, const node *n, const node *mac, const args *a, jv *out) {
    if (R->call_depth >= JJ_MAX_CALL_DEPTH)
        return r_error(R, n, "macro calls nested deeper than %d", JJ_MAX_CALL_DEPTH);
    if (a->npos > mac->nkw)
        return r_error(R, n, "macro '%.*s' takes %zu arguments, %zu given", (int)mac->name_n,
                       mac->name, mac->nkw, a->npos);
    frame *f = frame_new(R, n, R->globals);
    if (!f) return false;
    for (size_t i = 0; i < a->nkw; i++) {
        bool found = false;
        for (size_t k = 0; k < mac->nkw && !found; k++)
            found = mac->kw_n[k] == a->kw_n[i] && !memcmp(mac->kw[k], a->kw[i], a->kw_n[i]);
        if (!found)
            return r_error(R, n, "macro '%.*s' has no parameter '%.*s'", (int)mac->name_n, mac->name,
                           (int)a->kw_n[i], a->kw[i]);
    }
    for (size_t k = 0; k < mac->nkw; k++) {
        jv v;
        const jv *given = k < a->npos ? &a->pos[k] : NULL;
        for (size_t i = 0; !given && i < a->nkw; i++)
            if (mac->kw_n[k] == a->kw_n[i] && !memcmp(mac->kw[k], a->kw[i], a->kw_n[i])) given = &a->kwv[i];
        if (given) v = *given;
        else if (mac->kwv[k]) {
            if (!eval(R, f, mac->kwv[k], &v)) return false;
        } else v = v_undef(mac->kw[k], mac->kw_n[k]);
        if (!frame_set(R, n, f, mac->kw[k], mac->kw_n[k], v)) return false;
    }
    sbuf body = {0};
    body.limit = R->out->limit;
    sbuf *saved = R->out;
    R->out = &body;
    R->call_depth++;
    int st = exec(R, f, mac->b);
    R->call_depth--;
    R->out = saved;
    if (st == EX_ERR) {
        free(body.p);
        return false;
    }
    return r_take(R, n, &body, out);
}

static bool do_call(rctx *R, frame *f, const node *n, jv callee, jv *out) {
    args a;
    if (!eval_args(R, f, n, &a)) return false;
    switch (callee.t) {
    case V_FUNC: return call_func(R, n, callee.u.fn, &a, out);
    case V_MACRO: return call_macro(R, n, callee.u.mac, &a, out);
    case V_METHOD: return call_method(R, n, callee.u.meth, &a, out);
    case V_UNDEF: {
        char nb[96];
        return r_error(R, n, "%s is undefined (called as a function)", undef_name(callee, nb, sizeof nb));
    }
    default: return r_error(R, n, "%s is not callable", type_name(callee));
    }
}

/* ------------------------------------------------------------------------ */
/* Expressions                                                               */
/* ------------------------------------------------------------------------ */
static bool eval(rctx *R, frame *f, const node *n, jv *out) {
    switch (n->k) {
    case E_LIT: *out = n->lit; return true;
    case E_NAME:
        if (frame_get(f, n->name, n->name_n, out)) return true;
        for (int i = 0; i < FN_COUNT; i++)
            if (name_is(n->name, n->name_n, g_fn_names[i])) {
                jv v = {.t = V_FUNC};
                v.u.fn = i;
                *out = v;
                return true;
            }
        *out = v_undef(n->name, n->name_n);
        return true;
    case E_ATTR: {
        jv o;
        return eval(R, f, n->a, &o) && get_attr(R, n, o, n->name, n->name_n, out);
    }
    case E_ITEM: {
        jv o, k;
        if (!eval(R, f, n->a, &o) || !eval(R, f, n->b, &k)) return false;
        if (o.t == V_DICT && k.t == V_STR && o.u.d->ns) {
            jv *x = dict_find(o.u.d, k);
            *out = x ? *x : v_undef(k.u.s.p, k.u.s.n);
            return true;
        }
        return get_index(R, n, o, k, out);
    }
    case E_SLICE: {
        jv o;
        return eval(R, f, n->a, &o) && eval_slice(R, f, n, o, out);
    }
    case E_CALL: {
        jv c;
        return eval(R, f, n->a, &c) && do_call(R, f, n, c, out);
    }
    case E_FILTER: {
        jv v;
        args a;
        if (!eval(R, f, n->a, &v) || !eval_args(R, f, n, &a)) return false;
        return apply_filter(R, n, n->name, n->name_n, v, &a, out);
    }
    case E_TEST: {
        jv v;
        args a;
        bool r;
        if (!eval(R, f, n->a, &v) || !eval_args(R, f, n, &a)) return false;
        if (!apply_test(R, n, n->name, n->name_n, v, &a, &r)) return false;
        *out = v_bool(n->neg ? !r : r);
        return true;
    }
    case E_NOT: {
        jv v;
        if (!eval(R, f, n->a, &v)) return false;
        *out = v_bool(!truthy(v));
        return true;
    }
    case E_NEG:
    case E_POS: {
        jv v;
        if (!eval(R, f, n->a, &v)) return false;
        if (v.t == V_UNDEF) return undef_error(R, n, v);
        if (!is_num(v)) return r_error(R, n, "bad operand type for unary %c: %s", n->k == E_NEG ? '-' : '+', type_name(v));
        if (n->k == E_POS) *out = v.t == V_BOOL ? v_int(v.u.b) : v;
        else if (v.t == V_FLOAT) *out = v_float(-v.u.f);
        else if (num_i(v) == INT64_MIN) return r_error(R, n, "integer overflow");
        else *out = v_int(-num_i(v));
        return true;
    }
    case E_BIN: {
        jv a, b;
        return eval(R, f, n->a, &a) && eval(R, f, n->b, &b) && eval_bin(R, n, (binop)n->op, a, b, out);
    }
    case E_AND:
    case E_OR: {
        jv a;
        if (!eval(R, f, n->a, &a)) return false;
        if (truthy(a) == (n->k == E_OR)) {
            *out = a;
            return true;
        }
        return eval(R, f, n->b, out);
    }
    case E_COND: {
        jv c;
        if (!eval(R, f, n->b, &c)) return false;
        if (truthy(c)) return eval(R, f, n->a, out);
        if (n->c) return eval(R, f, n->c, out);
        *out = v_undef("", 0);
        return true;
    }
    case E_LIST: {
        jlist *l = r_list(R, n, n->n);
        if (!l) return false;
        l->tuple = n->op == 1;
        for (size_t i = 0; i < n->n; i++)
            if (!eval(R, f, n->v[i], &l->v[l->n++])) return false;
        *out = v_list(l);
        return true;
    }
    case E_DICT: {
        jdict *d = r_dict(R, n);
        if (!d) return false;
        for (size_t i = 0; i + 1 < n->n; i += 2) {
            jv k, v;
            if (!eval(R, f, n->v[i], &k) || !eval(R, f, n->v[i + 1], &v) || !dict_set(R, n, d, k, v))
                return false;
        }
        *out = v_dict(d);
        return true;
    }
    default: return r_error(R, n, "internal error: node %d is not an expression", n->k);
    }
}

/* ------------------------------------------------------------------------ */
/* Statements                                                                */
/* ------------------------------------------------------------------------ */
static bool out_check(rctx *R, const node *n) {
    if (R->out->oom) return r_oom(R, n);
    if (R->out->full) return r_error(R, n, "output larger than %zu bytes", R->out->limit);
    return true;
}

static bool step(rctx *R, const node *n) {
    if (++R->steps > R->max_steps)
        return r_error(R, n, "template ran more than %llu steps", (unsigned long long)R->max_steps);
    return true;
}

static bool assign(rctx *R, frame *f, const node *n, const node *target, jv v) {
    if (target->k == E_NAME) return frame_set(R, n, f, target->name, target->name_n, v);
    jv obj;
    if (!eval(R, f, target->a, &obj)) return false;
    if (obj.t != V_DICT || !obj.u.d->ns)
        return r_error(R, target, "cannot set attribute '%.*s' of %s (only namespace() objects)",
                       (int)target->name_n, target->name, type_name(obj));
    return dict_set(R, n, obj.u.d, v_str(target->name, target->name_n), v);
}

static int exec_for(rctx *R, frame *f, const node *n) {
    jv it;
    jlist *items;
    if (!eval(R, f, n->a, &it)) return EX_ERR;
    if (it.t == V_DICT && it.u.d->ns) return r_error(R, n->a, "namespace is not iterable"), EX_ERR;
    if (!iter_items(R, n->a, it, &items)) return EX_ERR;
    frame *lf = frame_new(R, n, f);
    if (!lf) return EX_ERR;
    /* snapshot, filtered */
    jlist *sel = r_list(R, n, items->n);
    if (!sel) return EX_ERR;
    for (size_t i = 0; i < items->n; i++) {
        jv x = items->v[i];
        if (n->d) {
            if (!step(R, n)) return EX_ERR;
            jv c;
            if (n->name2) {
                if (x.t != V_LIST || x.u.l->n != 2) return r_error(R, n, "cannot unpack %s into two loop variables", type_name(x)), EX_ERR;
                if (!frame_set(R, n, lf, n->name, n->name_n, x.u.l->v[0]) ||
                    !frame_set(R, n, lf, n->name2, n->name2_n, x.u.l->v[1]))
                    return EX_ERR;
            } else if (!frame_set(R, n, lf, n->name, n->name_n, x)) {
                return EX_ERR;
            }
            if (!eval(R, lf, n->d, &c)) return EX_ERR;
            if (!truthy(c)) continue;
        }
        sel->v[sel->n++] = x;
    }
    jloop *lp = r_alloc(R, n, sizeof *lp);
    if (!lp) return EX_ERR;
    memset(lp, 0, sizeof *lp);
    lp->length = (int64_t)sel->n;
    jv lv = {.t = V_LOOP};
    lv.u.loop = lp;
    for (size_t i = 0; i < sel->n; i++) {
        if (!step(R, n)) return EX_ERR;
        jv x = sel->v[i];
        /* each iteration has its own scope, as in Jinja: a set in one
         * iteration is not seen by the next */
        lf = frame_new(R, n, f);
        if (!lf) return EX_ERR;
        lp->index0 = (int64_t)i;
        lp->has_prev = i > 0;
        lp->prev = i > 0 ? sel->v[i - 1] : v_none();
        lp->has_next = i + 1 < sel->n;
        lp->next = i + 1 < sel->n ? sel->v[i + 1] : v_none();
        if (n->name2) {
            if (x.t != V_LIST || x.u.l->n != 2)
                return r_error(R, n, "cannot unpack %s into two loop variables", type_name(x)), EX_ERR;
            if (!frame_set(R, n, lf, n->name, n->name_n, x.u.l->v[0]) ||
                !frame_set(R, n, lf, n->name2, n->name2_n, x.u.l->v[1]))
                return EX_ERR;
        } else if (!frame_set(R, n, lf, n->name, n->name_n, x)) {
            return EX_ERR;
        }
        if (!frame_set(R, n, lf, "loop", 4, lv)) return EX_ERR;
        int st = exec(R, lf, n->b);
        if (st == EX_ERR) return EX_ERR;
        if (st == EX_BREAK) break;
    }
    if (sel->n == 0 && n->c) return exec(R, f, n->c) == EX_ERR ? EX_ERR : EX_OK;
    return EX_OK;
}

static int exec(rctx *R, frame *f, const node *n) {
    if (!step(R, n)) return EX_ERR;
    switch (n->k) {
    case N_SEQ:
        for (size_t i = 0; i < n->n; i++) {
            int st = exec(R, f, n->v[i]);
            if (st != EX_OK) return st;
        }
        return EX_OK;
    case N_TEXT:
        sb_put(R->out, n->name, n->name_n);
        return out_check(R, n) ? EX_OK : EX_ERR;
    case N_OUT: {
        jv v;
        if (!eval(R, f, n->a, &v)) return EX_ERR;
        py_str(R->out, v);
        return out_check(R, n) ? EX_OK : EX_ERR;
    }
    case N_IF: {
        jv c;
        if (!eval(R, f, n->a, &c)) return EX_ERR;
        if (truthy(c)) return exec(R, f, n->b);
        return n->c ? exec(R, f, n->c) : EX_OK;
    }
    case N_FOR: return exec_for(R, f, n);
    case N_SET: {
        jv v;
        if (!eval(R, f, n->b, &v)) return EX_ERR;
        return assign(R, f, n, n->a, v) ? EX_OK : EX_ERR;
    }
    case N_SETBLOCK: {
        sbuf body = {0};
        body.limit = R->out->limit;
        sbuf *saved = R->out;
        R->out = &body;
        int st = exec(R, f, n->b);
        R->out = saved;
        jv v;
        if (st == EX_ERR) {
            free(body.p);
            return EX_ERR;
        }
        if (!r_take(R, n, &body, &v)) return EX_ERR;
        return assign(R, f, n, n->a, v) ? EX_OK : EX_ERR;
    }
    case N_MACRO: {
        jv v = {.t = V_MACRO};
        v.u.mac = n;
        return frame_set(R, n, f, n->name, n->name_n, v) ? EX_OK : EX_ERR;
    }
    case N_BREAK: return EX_BREAK;
    case N_CONTINUE: return EX_CONTINUE;
    default: return r_error(R, n, "internal error: node %d is not a statement", n->k), EX_ERR;
    }
}

/* ------------------------------------------------------------------------ */
/* API                                                                       */
/* ------------------------------------------------------------------------ */
llmh_status llmh__jinja_parse(const char *text, size_t len, llmh_jinja **out) {
    if (!out || (!text && len)) {
        llmh_set_error("jinja: parse() needs text and an out pointer");
        return LLMH_ERR_INVALID_ARG;
    }
    *out = NULL;
    llmh_jinja *t = calloc(1, sizeof *t);
    if (!t) {
        llmh_set_error("jinja: out of memory");
        return LLMH_ERR_NO_MEMORY;
    }
    t->ar.limit = (len > SIZE_MAX / 512 ? SIZE_MAX / 2 : len * 256) + ((size_t)1 << 20);
    /* normalize newlines as Jinja does: \r\n and \r become \n, and one
     * trailing newline is dropped (keep_trailing_newline = False) */
    char *src = ar_alloc(&t->ar, len + 1);
    scanner S = {0};
    llmh_status st = LLMH_OK;
    if (!src) {
        st = LLMH_ERR_NO_MEMORY;
        goto done;
    }
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\r') {
            src[k++] = '\n';
            if (i + 1 < len && text[i + 1] == '\n') i++;
        } else {
            src[k++] = text[i];
        }
    }
    if (k && src[k - 1] == '\n') k--;
    src[k] = 0;
    S.s = src;
    S.len = k;
    S.line = S.col = 1;
    S.ar = &t->ar;
    if (!sc_run(&S)) {
        st = S.oom ? LLMH_ERR_NO_MEMORY : LLMH_ERR_FORMAT;
        if (!S.oom) llmh_set_error("%s", S.err);
        goto done;
    }
    parser P = {S.toks, S.n, 0, &t->ar, 0, 0, {0}, false};
    t->root = p_seq(&P, NULL, NULL, NULL);
    if (!t->root) {
        st = P.oom ? LLMH_ERR_NO_MEMORY : LLMH_ERR_FORMAT;
        if (!P.oom) llmh_set_error("%s", P.err);
    }
done:
    free(S.toks);
    if (st == LLMH_ERR_NO_MEMORY) llmh_set_error("jinja: out of memory parsing a %zu-byte template", len);
    if (st != LLMH_OK) {
        llmh__jinja_free(t);
        return st;
    }
    *out = t;
    return LLMH_OK;
}

void llmh__jinja_free(llmh_jinja *t) {
    if (!t) return;
    ar_free(&t->ar);
    free(t);
}

llmh_status llmh__jinja_render(const llmh_jinja *t, const cJSON *vars, const llmh_jinja_opts *opts,
                               char **out, size_t *out_len) {
    if (!t || !out) {
        llmh_set_error("jinja: render() needs a template and an out pointer");
        return LLMH_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (out_len) *out_len = 0;
    if (vars && !cJSON_IsObject(vars)) {
        llmh_set_error("jinja: the variables must be a JSON object");
        return LLMH_ERR_INVALID_ARG;
    }
    rctx R;
    memset(&R, 0, sizeof R);
    R.ar.limit = JJ_MAX_ARENA;
    R.now = opts ? opts->now : 0;
    R.max_steps = opts && opts->max_steps ? opts->max_steps : JJ_MAX_STEPS;
    R.max_string = opts && opts->max_string && opts->max_string < JJ_MAX_STRING ? opts->max_string
                                                                              : JJ_MAX_STRING;
    sbuf ob = {0};
    ob.limit = opts && opts->max_output ? opts->max_output : JJ_DEFAULT_OUTPUT;
    R.out = &ob;
    bool ok = true;
    frame *ctx = frame_new(&R, NULL, NULL);
    ok = ctx != NULL;
    for (const cJSON *c = vars ? vars->child : NULL; ok && c; c = c->next) {
        jv v;
        const char *k = c->string ? c->string : "";
        ok = from_cjson(&R, c, &v, 0) && frame_set(&R, NULL, ctx, k, strlen(k), v);
    }
    frame *top = ok ? frame_new(&R, NULL, ctx) : NULL;
    if (top) {
        R.globals = top;
        ok = exec(&R, top, t->root) != EX_ERR;
    } else {
        ok = false;
    }
    ar_free(&R.ar);
    if (!ok) {
        free(ob.p);
        llmh_set_error("%s", R.err[0] ? R.err : "template: render failed");
        return R.oom ? LLMH_ERR_NO_MEMORY : LLMH_ERR_INVALID_ARG;
    }
    if (!ob.p) {
        ob.p = malloc(1);
        if (!ob.p) {
            llmh_set_error("jinja: out of memory");
            return LLMH_ERR_NO_MEMORY;
        }
        ob.p[0] = 0;
    }
    *out = ob.p;
    if (out_len) *out_len = ob.len;
    return LLMH_OK;
}

llmh_status llmh_template_render(const char *template_text, const char *context_json, char **out) {
    if (!out) {
        llmh_set_error("llmh_template_render: out is NULL");
        return LLMH_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (!template_text) {
        llmh_set_error("llmh_template_render: template_text is NULL");
        return LLMH_ERR_INVALID_ARG;
    }
    cJSON *vars = NULL;
    if (context_json && *context_json) {
        const char *end = NULL;
        vars = cJSON_ParseWithOpts(context_json, &end, 1);
        if (!vars) {
            size_t off = end && end >= context_json ? (size_t)(end - context_json) : 0;
            llmh_set_error("llmh_template_render: context is not valid JSON (near byte %zu)", off);
            return LLMH_ERR_INVALID_ARG;
        }
        if (!cJSON_IsObject(vars)) {
            cJSON_Delete(vars);
            llmh_set_error("llmh_template_render: context must be a JSON object");
            return LLMH_ERR_INVALID_ARG;
        }
    }
    llmh_jinja *t = NULL;
    llmh_status st = llmh__jinja_parse(template_text, strlen(template_text), &t);
    if (st == LLMH_OK) st = llmh__jinja_render(t, vars, NULL, out, NULL);
    llmh__jinja_free(t);
    cJSON_Delete(vars);
    return st;
}

/*
 * kmodcompat/parse/_accel.h: what _accel.c's readers share: the row classes and limits register() was
 * given, bounded field reads, rows built as tuple.__new__ builds them, one string table's reads with
 * elf/image.py StringTable's budget, and a set of raw names. Included by _accel.c alone (one translation unit).
 */
#ifndef KMODCOMPAT_ACCEL_H
#define KMODCOMPAT_ACCEL_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Row classes and limits, handed over once by kmodcompat/parse/accel.py (their one home is Python). */
static PyObject *T_ElfHeader, *T_Section, *T_Import, *T_CrcSymbol, *T_Modversion;
static unsigned long long max_table_entries, max_symbols, budget_factor, budget_slack;
static PyObject *KIND_NOTYPE, *KIND_OBJECT, *KIND_FUNC, *KIND_OTHER;

#define SHN_UNDEF 0
#define SHN_ABS 0xFFF1
#define EM_SPARC 2
#define EM_SPARCV9 43
#define STT_SPARC_REGISTER 13
#define MODVERSION_ENTRY_SIZE 64
#define BAD_CRC 0xFFFFFFFFFFFFFFFFULL /* kmod's (uint64_t)-1 */

/* ---- reading fields ------------------------------------------------------------------------------- */

static inline uint16_t rd16(const uint8_t *p, int little)
{
    return little ? (uint16_t)(p[0] | p[1] << 8) : (uint16_t)(p[1] | p[0] << 8);
}

static inline uint32_t rd32(const uint8_t *p, int little)
{
    if (little)
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
}

static inline uint64_t rd64(const uint8_t *p, int little)
{
    uint64_t lo = rd32(p, little), hi = rd32(p + 4, little);
    return little ? (hi << 32 | lo) : (lo << 32 | hi);
}

/* [off, off + len) lies inside a buffer of n bytes (no sum that can wrap). */
static inline int inside(uint64_t off, uint64_t len, uint64_t n)
{
    return off <= n && len <= n - off;
}

/* ---- rows ------------------------------------------------------------------------------------------ */

/* tuple.__new__(cls, values), as the Python path builds its rows (never the NamedTuple's __new__).
 * Before 3.14 a tuple subclass instance is tp_alloc'd and filled (tuple_subtype_new() does just that);
 * from 3.14, whose tuples cache their hash, the values go through tuple's own tp_new. */
static PyObject *row_new(PyObject *cls, Py_ssize_t n)
{
#if PY_VERSION_HEX < 0x030E0000
    return ((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, n);
#else
    (void)cls;
    return PyTuple_New(n);
#endif
}

/* Finish a row from row_new (stolen); NULL if any value was NULL (an error is set). */
static PyObject *row_done(PyObject *cls, PyObject *row)
{
    if (row == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(row); i++) {
        if (PyTuple_GET_ITEM(row, i) == NULL) {
            Py_DECREF(row);
            return NULL;
        }
    }
#if PY_VERSION_HEX < 0x030E0000
    (void)cls;
    return row;
#else
    PyObject *args = PyTuple_Pack(1, row);
    Py_DECREF(row);
    if (args == NULL)
        return NULL;
    PyObject *out = PyTuple_Type.tp_new((PyTypeObject *)cls, args, NULL);
    Py_DECREF(args);
    return out;
#endif
}

/* Steal v into slot i (v may be NULL after a failed allocation: row_done reports it). */
#define ROW_SET(row, i, v) PyTuple_SET_ITEM((row), (i), (v))

static PyObject *u64(uint64_t v) { return PyLong_FromUnsignedLongLong(v); }

/* records.text(): UTF-8 with surrogateescape, so every byte string round-trips; interned like the
 * Python readers' strings (sys.intern), so a name shared by records pickles once. */
static PyObject *text(const uint8_t *p, Py_ssize_t len)
{
    PyObject *s = PyUnicode_DecodeUTF8((const char *)p, len, "surrogateescape");
    if (s != NULL)
        PyUnicode_InternInPlace(&s);
    return s;
}

/* ---- one string table (elf/image.py StringTable) ---------------------------------------------------- */

/* The table's bytes and what is left of its read budget. StringTable caches strings by offset and
 * spends budget once per distinct offset; here every read spends it, so this never spends less than
 * the reference: when every read here finds its NUL within the budget left, each of the reference's
 * reads (in any order, cached or not) finds the same NUL, and the strings are the same. */
typedef struct {
    const uint8_t *p;
    uint64_t size;
    uint64_t budget;
} strtab;

static void strtab_init(strtab *t, const uint8_t *data, uint64_t n, uint64_t start, uint64_t end)
{
    /* StringTable: size = max(0, min(end, len(data)) - start) */
    uint64_t stop = end < n ? end : n;
    t->size = stop > start ? stop - start : 0;
    t->p = t->size ? data + start : data;
    t->budget = budget_factor * t->size + budget_slack;
}

enum { READ_OK, READ_OUT_OF_RANGE, READ_REFER };

/* The string at `offset`: READ_OK with its bytes; READ_OUT_OF_RANGE (the reference reads None, at no
 * cost); READ_REFER when the reference would read None for want of a NUL or of budget, or might. */
static int strtab_read(strtab *t, uint64_t offset, const uint8_t **s, Py_ssize_t *len)
{
    if (offset >= t->size)
        return READ_OUT_OF_RANGE;
    uint64_t room = t->size - offset;
    if (room > t->budget)
        room = t->budget;
    const uint8_t *nul = memchr(t->p + offset, 0, (size_t)room);
    if (nul == NULL)
        return READ_REFER;
    *s = t->p + offset;
    *len = nul - *s;
    t->budget -= (uint64_t)*len + 1;
    return READ_OK;
}

/* ---- a set of raw names ------------------------------------------------------------------------ */

/* Raw names of the __ksymtab_ labels: an open-addressed set of (pointer, length) into .strtab, to tell
 * which defined globals are exported without decoding every global's name. */
typedef struct {
    const uint8_t **p;
    Py_ssize_t *len;
    size_t mask;
} nameset;

static size_t name_hash(const uint8_t *p, Py_ssize_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (Py_ssize_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return (size_t)h;
}

static int nameset_init(nameset *s, size_t count)
{
    size_t cap = 8;
    while (cap < 2 * count)
        cap <<= 1;
    s->mask = cap - 1;
    s->p = PyMem_Calloc(cap, sizeof *s->p);
    s->len = PyMem_Calloc(cap, sizeof *s->len);
    if (s->p == NULL || s->len == NULL) {
        PyMem_Free(s->p);
        PyMem_Free(s->len);
        PyErr_NoMemory();
        return 0;
    }
    return 1;
}

static void nameset_free(nameset *s)
{
    PyMem_Free(s->p);
    PyMem_Free(s->len);
}

/* Whether the name is in the set; with add, put it there. */
static int nameset_has(nameset *s, const uint8_t *p, Py_ssize_t len, int add)
{
    for (size_t i = name_hash(p, len) & s->mask;; i = (i + 1) & s->mask) {
        if (s->p[i] == NULL) {
            if (add) {
                s->p[i] = p;
                s->len[i] = len;
            }
            return 0;
        }
        if (s->len[i] == len && memcmp(s->p[i], p, (size_t)len) == 0)
            return 1;
    }
}

#endif /* KMODCOMPAT_ACCEL_H */

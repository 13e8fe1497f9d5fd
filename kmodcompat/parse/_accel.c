/*
 * kmodcompat.parse._accel: the parse hot path in C, behind the same records.
 *
 * The pure-Python readers (elf/image.py ElfImage, parse/ksymtab.py scan_symbols,
 * parse/modinfo.py parse, modversions/basic.py read_entries) are the reference:
 * each function here returns what its Python twin computes, as plain values and
 * as the same record rows (tuple.__new__ of the NamedTuple classes register()
 * was given), or None. None means "not the plain case: ask the reference".
 * A function returns None whenever the Python path would refuse the input,
 * report a finding, or read a string its bounded string table would not (no NUL
 * in the table, or past the table's read budget), so every refusal, finding and
 * error text keeps its one home in the Python code, and this file only ever
 * answers for inputs the reference reads without complaint. Every bound check
 * the Python path makes is made here too before a byte is read (all offsets are
 * compared against the buffer's length with no arithmetic that can wrap);
 * tests/test_accel.py compares both paths record by record, and
 * bench/fuzz_accel.py runs this file under AddressSanitizer and UBSan.
 *
 * The ELF layouts are those of elf/layout.py (struct elf{32,64}_hdr, _shdr,
 * _sym of include/uapi/linux/elf.h); the reading rules (kmod's libkmod-elf.c)
 * are cited in the Python twins, not repeated here.
 */
#include "_accel.h"

/* ---- register() ------------------------------------------------------------------------------------ */

static PyObject *accel_register(PyObject *self, PyObject *args)
{
    PyObject *eh, *sec, *imp, *crc, *mv;
    unsigned long long mte, ms, bf, bs;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!KKKK", &PyType_Type, &eh, &PyType_Type, &sec, &PyType_Type, &imp,
                          &PyType_Type, &crc, &PyType_Type, &mv, &mte, &ms, &bf, &bs))
        return NULL;
    PyObject *types[] = {eh, sec, imp, crc, mv};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        if (!PyType_IsSubtype((PyTypeObject *)types[i], &PyTuple_Type)) {
            PyErr_SetString(PyExc_TypeError, "row classes must be tuple subclasses");
            return NULL;
        }
    }
    Py_XSETREF(T_ElfHeader, Py_NewRef(eh));
    Py_XSETREF(T_Section, Py_NewRef(sec));
    Py_XSETREF(T_Import, Py_NewRef(imp));
    Py_XSETREF(T_CrcSymbol, Py_NewRef(crc));
    Py_XSETREF(T_Modversion, Py_NewRef(mv));
    max_table_entries = mte;
    max_symbols = ms;
    budget_factor = bf;
    budget_slack = bs;
    Py_RETURN_NONE;
}

static int registered(void)
{
    if (T_Section == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "kmodcompat.parse._accel: register() first");
        return 0;
    }
    return 1;
}

/* ---- elf_image(data) -> (ElfHeader, sections, {name: section}) | None ------------------------------ */

static PyObject *accel_elf_image(PyObject *self, PyObject *args)
{
    Py_buffer b;
    if (!registered() || !PyArg_ParseTuple(args, "y*", &b))
        return NULL;
    const uint8_t *d = b.buf;
    uint64_t n = (uint64_t)b.len;
    PyObject *out = NULL, *header = NULL, *sections = NULL, *names = NULL;

    if (n <= 16 || memcmp(d, "\x7f" "ELF", 4) != 0)
        goto refer;
    int ei_class = d[4], ei_data = d[5];
    if ((ei_class != 1 && ei_class != 2) || (ei_data != 1 && ei_data != 2))
        goto refer;
    int is64 = ei_class == 2, little = ei_data == 1;
    uint64_t ehdr_size = is64 ? 64 : 52, shdr_size = is64 ? 64 : 40;
    if (n <= ehdr_size)
        goto refer;
    const uint8_t *h = d + 16;
    uint16_t e_type = rd16(h, little), e_machine = rd16(h + 2, little);
    uint64_t e_shoff;
    uint32_t e_flags;
    uint16_t e_ehsize, e_shentsize, e_shnum, e_shstrndx;
    if (is64) {
        e_shoff = rd64(d + 40, little);
        e_flags = rd32(d + 48, little);
        e_ehsize = rd16(d + 52, little);
        e_shentsize = rd16(d + 58, little);
        e_shnum = rd16(d + 60, little);
        e_shstrndx = rd16(d + 62, little);
    } else {
        e_shoff = rd32(d + 32, little);
        e_flags = rd32(d + 36, little);
        e_ehsize = rd16(d + 40, little);
        e_shentsize = rd16(d + 46, little);
        e_shnum = rd16(d + 48, little);
        e_shstrndx = rd16(d + 50, little);
    }
    /* kmod_elf_new()'s order: the table fits, its entry size, then e_shstrndx (refusals: image.py) */
    if (!inside(e_shoff, shdr_size * e_shnum, n) || e_shentsize != shdr_size || e_shstrndx == 0
        || e_shstrndx >= e_shnum)
        goto refer;
    const uint8_t *shdrs = d + e_shoff;
#define SH(i, f64, f32, w64) (is64 ? ((w64) ? rd64(shdrs + (i) * 64 + (f64), little) \
                                            : rd32(shdrs + (i) * 64 + (f64), little)) \
                                   : rd32(shdrs + (i) * 40 + (f32), little))
    uint64_t str_off = SH(e_shstrndx, 24, 16, 1), str_size = SH(e_shstrndx, 32, 20, 1);
    if (!inside(str_off, str_size, n) || str_size == 0 || d[str_off + str_size - 1] != 0)
        goto refer;

    header = row_new(T_ElfHeader, 11);
    if (header == NULL)
        goto fail;
    ROW_SET(header, 0, PyLong_FromLong(is64 ? 64 : 32));
    ROW_SET(header, 1, PyBool_FromLong(little));
    ROW_SET(header, 2, PyLong_FromLong(e_type));
    ROW_SET(header, 3, PyLong_FromLong(e_machine));
    ROW_SET(header, 4, u64(e_flags));
    ROW_SET(header, 5, PyLong_FromLong(d[7]));
    ROW_SET(header, 6, u64(e_shoff));
    ROW_SET(header, 7, PyLong_FromLong(e_shentsize));
    ROW_SET(header, 8, PyLong_FromLong(e_shnum));
    ROW_SET(header, 9, PyLong_FromLong(e_shstrndx));
    ROW_SET(header, 10, PyLong_FromLong(e_ehsize));
    header = row_done(T_ElfHeader, header);
    if (header == NULL)
        goto fail;

    strtab t;
    strtab_init(&t, d, n, str_off, str_off + str_size);
    sections = PyTuple_New(e_shnum);
    names = PyDict_New();
    if (sections == NULL || names == NULL)
        goto fail;
    for (uint64_t i = 0; i < e_shnum; i++) {
        const uint8_t *s = NULL;
        Py_ssize_t len = 0;
        PyObject *name;
        switch (strtab_read(&t, SH(i, 0, 0, 0), &s, &len)) {
        case READ_OK:
            name = text(s, len);
            break;
        case READ_OUT_OF_RANGE: /* sh_name >= the table's size: no name, as in image.py */
            name = PyUnicode_InternFromString("");
            break;
        default:
            goto refer;
        }
        PyObject *sec = row_new(T_Section, 11);
        if (sec == NULL) {
            Py_XDECREF(name);
            goto fail;
        }
        ROW_SET(sec, 0, PyLong_FromUnsignedLongLong(i));
        ROW_SET(sec, 1, name);
        ROW_SET(sec, 2, u64(SH(i, 4, 4, 0)));
        ROW_SET(sec, 3, u64(SH(i, 8, 8, 1)));
        ROW_SET(sec, 4, u64(SH(i, 16, 12, 1)));
        ROW_SET(sec, 5, u64(SH(i, 24, 16, 1)));
        ROW_SET(sec, 6, u64(SH(i, 32, 20, 1)));
        ROW_SET(sec, 7, u64(SH(i, 40, 24, 0)));
        ROW_SET(sec, 8, u64(SH(i, 44, 28, 0)));
        ROW_SET(sec, 9, u64(SH(i, 48, 32, 1)));
        ROW_SET(sec, 10, u64(SH(i, 56, 36, 1)));
        sec = row_done(T_Section, sec);
        if (sec == NULL)
            goto fail;
        PyTuple_SET_ITEM(sections, (Py_ssize_t)i, sec);
    }
#undef SH
    /* the first section (index >= 1) of a name wins: stored last first, as image.py does */
    for (Py_ssize_t i = (Py_ssize_t)e_shnum - 1; i >= 1; i--) {
        PyObject *sec = PyTuple_GET_ITEM(sections, i);
        if (PyDict_SetItem(names, PyTuple_GET_ITEM(sec, 1), sec) < 0)
            goto fail;
    }
    out = PyTuple_Pack(3, header, sections, names);
    goto done;
refer:
    out = Py_NewRef(Py_None);
    goto done;
fail:
    out = NULL;
done:
    Py_XDECREF(header);
    Py_XDECREF(sections);
    Py_XDECREF(names);
    PyBuffer_Release(&b);
    return out;
}

/* ---- scan_symbols(...) -> (imports, crc_symbols, ksymtab labels, {name: namespace}, kinds) | None ---- */

static inline int has_prefix(const uint8_t *d, uint64_t n, uint64_t at, const char *prefix, uint64_t plen)
{
    return inside(at, plen, n) && memcmp(d + at, prefix, (size_t)plen) == 0;
}

enum { LABEL_NONE, LABEL_CRC, LABEL_KSYMTAB, LABEL_KSTRTABNS };

static PyObject *kind_of(unsigned stt)
{
    switch (stt) { /* ksymtab.py _KINDS; STT_GNU_IFUNC (10) is code too */
    case 0: return KIND_NOTYPE;
    case 1: return KIND_OBJECT;
    case 2: case 10: return KIND_FUNC;
    default: return KIND_OTHER;
    }
}

/* A section's (sh_offset, sh_size), from its Section row. */
static int section_extent(PyObject *sections, uint64_t shndx, uint64_t *off, uint64_t *size)
{
    PyObject *sec = PyTuple_GET_ITEM(sections, (Py_ssize_t)shndx);
    if (!PyTuple_Check(sec) || PyTuple_GET_SIZE(sec) < 7) {
        PyErr_SetString(PyExc_TypeError, "sections must be Section rows");
        return 0;
    }
    *off = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(sec, 5));
    *size = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(sec, 6));
    return !PyErr_Occurred();
}

/* The string tables of the sections __kstrtabns_ labels point into, made on first use, one per section. */
typedef struct {
    strtab *tables;
    char *made;
} nstables;

/* The namespace at `value` of section `shndx` (< the section count): 1 with *space (a str, or None), 0 when
 * the reference might read it otherwise (refer), -1 on error. */
static int namespace_at(nstables *ns, const uint8_t *d, uint64_t n, PyObject *sections, uint64_t shndx,
                        uint64_t value, PyObject **space)
{
    uint64_t off, size;
    if (!section_extent(sections, shndx, &off, &size))
        return -1;
    if (!inside(off, size, n)) { /* a section past the end of the file holds no namespace */
        *space = Py_NewRef(Py_None);
        return 1;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(sections);
    if (ns->tables == NULL) {
        ns->tables = PyMem_Calloc((size_t)count, sizeof *ns->tables);
        ns->made = PyMem_Calloc((size_t)count, 1);
        if (ns->tables == NULL || ns->made == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    if (!ns->made[shndx]) {
        strtab_init(&ns->tables[shndx], d, n, off, off + size);
        ns->made[shndx] = 1;
    }
    const uint8_t *s;
    Py_ssize_t len;
    switch (strtab_read(&ns->tables[shndx], value, &s, &len)) {
    case READ_OK:
        *space = len ? text(s, len) : Py_NewRef(Py_None);
        return *space == NULL ? -1 : 1;
    case READ_OUT_OF_RANGE:
        *space = Py_NewRef(Py_None);
        return 1;
    default:
        return 0;
    }
}

static PyObject *accel_scan_symbols(PyObject *self, PyObject *args)
{
    Py_buffer b;
    unsigned long long sym_off, sym_size, str_off, str_size;
    int elfclass, little, machine;
    PyObject *sections;
    if (!registered() || !PyArg_ParseTuple(args, "y*KKKKipiO!", &b, &sym_off, &sym_size, &str_off, &str_size,
                                           &elfclass, &little, &machine, &PyTuple_Type, &sections))
        return NULL;
    const uint8_t *d = b.buf;
    uint64_t n = (uint64_t)b.len;
    uint64_t nsec = (uint64_t)PyTuple_GET_SIZE(sections);
    int is64 = elfclass == 64;
    uint64_t entsize = is64 ? 24 : 16, info_at = is64 ? 4 : 12, shndx_at = is64 ? 6 : 14, value_at = is64 ? 8 : 4;
    int sparc = machine == EM_SPARC || machine == EM_SPARCV9;
    PyObject *out = NULL, *imports = NULL, *crcs = NULL, *ksyms = NULL, *ns = NULL, *kinds = NULL, *dg = NULL;
    nameset wanted = {NULL, NULL, 0};
    nstables spaces = {NULL, NULL};
    const uint8_t **exp_p = NULL; /* the raw names of the __ksymtab_ labels, in table order */
    Py_ssize_t *exp_len = NULL;
    size_t exp_count = 0, exp_cap = 0;

    /* The caller's checks (ksymtab.py), made again: never trusted */
    if ((elfclass != 32 && elfclass != 64) || !inside(sym_off, sym_size, n) || !inside(str_off, str_size, n)
        || sym_size % entsize || sym_size / entsize > max_symbols)
        goto refer;
    strtab t;
    strtab_init(&t, d, n, str_off, str_off + str_size);
    uint64_t count = sym_size / entsize;
    imports = PyList_New(0);
    crcs = PyList_New(0);
    ksyms = PyList_New(0);
    ns = PyDict_New();
    kinds = PyDict_New();
    if (imports == NULL || crcs == NULL || ksyms == NULL || ns == NULL || kinds == NULL)
        goto fail;

    for (uint64_t i = 1; i < count; i++) { /* entry 0 is the null symbol */
        const uint8_t *sym = d + sym_off + i * entsize;
        uint64_t st_name = rd32(sym, little);
        unsigned st_info = sym[info_at];
        unsigned st_shndx = rd16(sym + shndx_at, little);
        const uint8_t *s;
        Py_ssize_t len;
        if (st_name >= str_size) /* a name outside .strtab: the reference's symtab-bad-name */
            goto refer;
        if (st_shndx == SHN_UNDEF) {
            if (strtab_read(&t, st_name, &s, &len) != READ_OK)
                goto refer;
            if ((sparc && (st_info & 0xF) == STT_SPARC_REGISTER) || len == 0)
                continue; /* a register declaration, or no name: no import */
            PyObject *imp = row_new(T_Import, 3);
            if (imp == NULL)
                goto fail;
            ROW_SET(imp, 0, text(s, len));
            ROW_SET(imp, 1, PyLong_FromLong(st_info >> 4));
            ROW_SET(imp, 2, PyLong_FromLong(st_info & 0xF));
            imp = row_done(T_Import, imp);
            if (imp == NULL || PyList_Append(imports, imp) < 0) {
                Py_XDECREF(imp);
                goto fail;
            }
            Py_DECREF(imp);
            continue;
        }
        /* a label: "__crc_", or (in a section) "__ksymtab_" / "__kstrtabns_", at st_name */
        uint64_t at = str_off + st_name;
        int label = LABEL_NONE;
        uint64_t plen = 0;
        if (has_prefix(d, n, at, "__crc_", 6)) {
            label = LABEL_CRC;
            plen = 6;
        } else if (st_shndx < nsec && has_prefix(d, n, at, "__ksymtab_", 10)) {
            label = LABEL_KSYMTAB;
            plen = 10;
        } else if (st_shndx < nsec && has_prefix(d, n, at, "__kstrtabns_", 12)) {
            label = LABEL_KSTRTABNS;
            plen = 12;
        }
        if (label == LABEL_NONE)
            continue;
        int got = strtab_read(&t, st_name + plen, &s, &len);
        if (got == READ_REFER || (got == READ_OUT_OF_RANGE && label == LABEL_CRC))
            goto refer; /* (a __crc_ label without a name is the reference's symtab-bad-name) */
        if (got == READ_OUT_OF_RANGE)
            continue; /* a __ksymtab_/__kstrtabns_ label without a name is skipped */
        uint64_t st_value = is64 ? rd64(sym + value_at, little) : rd32(sym + value_at, little);
        if (label == LABEL_CRC) {
            /* kmod_elf_resolve_crc() (ksymtab.py _resolve_crc) */
            uint64_t crc = st_value;
            if (st_shndx != SHN_ABS) {
                uint64_t off, size;
                if (st_shndx >= nsec)
                    goto refer; /* the reference's crc-section-invalid */
                if (!section_extent(sections, st_shndx, &off, &size))
                    goto fail;
                if (!inside(off, size, n) || size < 4 || st_value > size - 4)
                    crc = BAD_CRC;
                else
                    crc = rd32(d + off + st_value, little);
            }
            PyObject *c = row_new(T_CrcSymbol, 4);
            if (c == NULL)
                goto fail;
            ROW_SET(c, 0, text(s, len));
            ROW_SET(c, 1, u64(crc));
            ROW_SET(c, 2, PyLong_FromLong(st_info >> 4));
            ROW_SET(c, 3, PyLong_FromLong(st_shndx));
            c = row_done(T_CrcSymbol, c);
            if (c == NULL || PyList_Append(crcs, c) < 0) {
                Py_XDECREF(c);
                goto fail;
            }
            Py_DECREF(c);
        } else {
            PyObject *where = Py_BuildValue("(NN)", PyLong_FromLong(st_shndx), u64(st_value));
            PyObject *name = where ? text(s, len) : NULL;
            int bad;
            if (name == NULL)
                bad = 1;
            else if (label == LABEL_KSYMTAB) {
                if (exp_count == exp_cap) {
                    size_t cap = exp_cap ? 2 * exp_cap : 64;
                    const uint8_t **np = PyMem_Realloc(exp_p, cap * sizeof *exp_p);
                    if (np != NULL)
                        exp_p = np;
                    Py_ssize_t *nl = PyMem_Realloc(exp_len, cap * sizeof *exp_len);
                    if (nl != NULL)
                        exp_len = nl;
                    if (np == NULL || nl == NULL) {
                        Py_DECREF(name);
                        Py_DECREF(where);
                        PyErr_NoMemory();
                        goto fail;
                    }
                    exp_cap = cap;
                }
                exp_p[exp_count] = s;
                exp_len[exp_count++] = len;
                PyObject *entry = PyTuple_Pack(3, name, PyTuple_GET_ITEM(where, 0), PyTuple_GET_ITEM(where, 1));
                bad = entry == NULL || PyList_Append(ksyms, entry) < 0;
                Py_XDECREF(entry);
            } else {
                /* __kstrtabns_: the namespace itself, read in its section as ksymtab.py _namespace() reads it
                 * (one bounded table per section; "" and no string are no namespace) */
                PyObject *space = NULL;
                int got_ns = namespace_at(&spaces, d, n, sections, st_shndx, st_value, &space);
                if (got_ns == 0) {
                    Py_DECREF(name);
                    Py_DECREF(where);
                    goto refer;
                }
                bad = got_ns < 0 || PyDict_SetItem(ns, name, space) < 0;
                Py_XDECREF(space);
            }
            Py_XDECREF(name);
            Py_XDECREF(where);
            if (bad)
                goto fail;
        }
    }

    Py_ssize_t nksyms = PyList_GET_SIZE(ksyms);
    if (nksyms) {
        /* The exported symbols' kinds: STT_* of the defined global and weak symbols, by .strtab offset
         * (ksymtab.py's defined_globals: a dict, so an offset keeps its first place and its last kind),
         * of those whose name is exported. */
        if (!nameset_init(&wanted, exp_count))
            goto fail;
        for (size_t k = 0; k < exp_count; k++)
            nameset_has(&wanted, exp_p[k], exp_len[k], 1);
        dg = PyDict_New();
        if (dg == NULL)
            goto fail;
        for (uint64_t i = 1; i < count; i++) {
            const uint8_t *sym = d + sym_off + i * entsize;
            unsigned st_info = sym[info_at];
            unsigned st_shndx = rd16(sym + shndx_at, little);
            uint64_t st_name = rd32(sym, little);
            const uint8_t *s;
            Py_ssize_t len;
            if (st_info >> 4 == 0 || st_shndx == SHN_UNDEF || st_shndx == SHN_ABS)
                continue;
            if (strtab_read(&t, st_name, &s, &len) != READ_OK)
                goto refer;
            if (!nameset_has(&wanted, s, len, 0))
                continue;
            PyObject *key = u64(st_name);
            PyObject *val = key ? Py_BuildValue("(NN)", text(s, len), PyLong_FromLong(st_info & 0xF)) : NULL;
            int bad = val == NULL || PyDict_SetItem(dg, key, val) < 0;
            Py_XDECREF(key);
            Py_XDECREF(val);
            if (bad)
                goto fail;
        }
        PyObject *key, *val;
        Py_ssize_t pos = 0;
        while (PyDict_Next(dg, &pos, &key, &val)) {
            if (PyDict_SetItem(kinds, PyTuple_GET_ITEM(val, 0),
                               kind_of((unsigned)PyLong_AsLong(PyTuple_GET_ITEM(val, 1)))) < 0)
                goto fail;
        }
    }
    out = Py_BuildValue("(NNOOO)", PyList_AsTuple(imports), PyList_AsTuple(crcs), ksyms, ns, kinds);
    goto done;
refer:
    out = Py_NewRef(Py_None);
    goto done;
fail:
    out = NULL;
done:
    nameset_free(&wanted);
    PyMem_Free(spaces.tables);
    PyMem_Free(spaces.made);
    PyMem_Free(exp_p);
    PyMem_Free(exp_len);
    Py_XDECREF(imports);
    Py_XDECREF(crcs);
    Py_XDECREF(ksyms);
    Py_XDECREF(ns);
    Py_XDECREF(kinds);
    Py_XDECREF(dg);
    PyBuffer_Release(&b);
    return out;
}

/* ---- modinfo(data, offset, size) -> ((tag, value | None), ...) | None -------------------------------- */

static PyObject *accel_modinfo(PyObject *self, PyObject *args)
{
    Py_buffer b;
    unsigned long long off, size;
    if (!registered() || !PyArg_ParseTuple(args, "y*KK", &b, &off, &size))
        return NULL;
    const uint8_t *d = b.buf;
    uint64_t n = (uint64_t)b.len;
    PyObject *pairs = NULL, *out = NULL;
    if (!inside(off, size, n))
        goto refer;
    pairs = PyList_New(0);
    if (pairs == NULL)
        goto fail;
    const uint8_t *p = d + off, *end = d + off + size;
    uint64_t strings = 0;
    while (p < end) {
        if (*p == 0) {
            p++;
            continue;
        }
        const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
        const uint8_t *stop = nul ? nul : end; /* a final string without NUL counts */
        /* modinfo.py: past MAX_TABLE_ENTRIES strings (possible only in a table larger than twice that)
         * the reference refuses the module */
        if (++strings > max_table_entries && size > 2 * max_table_entries)
            goto refer;
        const uint8_t *eq = memchr(p, '=', (size_t)(stop - p));
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL)
            goto fail;
        PyTuple_SET_ITEM(pair, 0, text(p, (eq ? eq : stop) - p));
        PyTuple_SET_ITEM(pair, 1, eq ? text(eq + 1, stop - eq - 1) : Py_NewRef(Py_None));
        if (PyTuple_GET_ITEM(pair, 0) == NULL || PyTuple_GET_ITEM(pair, 1) == NULL || PyList_Append(pairs, pair) < 0) {
            Py_DECREF(pair);
            goto fail;
        }
        Py_DECREF(pair);
        p = stop;
    }
    out = PyList_AsTuple(pairs);
    goto done;
refer:
    out = Py_NewRef(Py_None);
    goto done;
fail:
    out = NULL;
done:
    Py_XDECREF(pairs);
    PyBuffer_Release(&b);
    return out;
}

/* ---- versions(data, offset, size, elfclass, little) -> [Modversion, ...] | None ---------------------- */

/* modversions/basic.py read_entries() for a table whose every name ends inside its field; None when
 * one does not (the reference reads it on, with its run-on budget, and counts it). */
static PyObject *accel_versions(PyObject *self, PyObject *args)
{
    Py_buffer b;
    unsigned long long off, size;
    int elfclass, little;
    if (!registered() || !PyArg_ParseTuple(args, "y*KKip", &b, &off, &size, &elfclass, &little))
        return NULL;
    const uint8_t *d = b.buf;
    uint64_t n = (uint64_t)b.len;
    PyObject *out = NULL, *entries = NULL;
    uint64_t crc_len = elfclass == 64 ? 8 : 4, field_len = MODVERSION_ENTRY_SIZE - crc_len;
    uint64_t count = size / MODVERSION_ENTRY_SIZE;
    if ((elfclass != 32 && elfclass != 64) || !inside(off, size, n) || count > max_table_entries)
        goto refer;
    entries = PyList_New((Py_ssize_t)count);
    if (entries == NULL)
        goto fail;
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *rec = d + off + i * MODVERSION_ENTRY_SIZE;
        const uint8_t *name = rec + crc_len;
        const uint8_t *nul = memchr(name, 0, (size_t)field_len);
        if (nul == NULL)
            goto refer;
        PyObject *mv = row_new(T_Modversion, 3);
        if (mv == NULL)
            goto fail;
        ROW_SET(mv, 0, u64(crc_len == 8 ? rd64(rec, little) : rd32(rec, little)));
        ROW_SET(mv, 1, text(name, nul - name));
        ROW_SET(mv, 2, Py_NewRef(Py_True));
        mv = row_done(T_Modversion, mv);
        if (mv == NULL)
            goto fail;
        PyList_SET_ITEM(entries, (Py_ssize_t)i, mv);
    }
    out = Py_NewRef(entries);
    goto done;
refer:
    out = Py_NewRef(Py_None);
    goto done;
fail:
    out = NULL;
done:
    Py_XDECREF(entries);
    PyBuffer_Release(&b);
    return out;
}

/* ---- the module -------------------------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"register", accel_register, METH_VARARGS,
     "register(ElfHeader, Section, Import, CrcSymbol, Modversion, max_table_entries, max_symbols, "
     "budget_factor, budget_slack): the row classes and limits, from their Python homes"},
    {"elf_image", accel_elf_image, METH_VARARGS,
     "elf_image(data) -> (ElfHeader, sections, {name: first section}) | None (elf.image.ElfImage)"},
    {"scan_symbols", accel_scan_symbols, METH_VARARGS,
     "scan_symbols(data, symtab_offset, symtab_size, strtab_offset, strtab_size, elfclass, little, machine, "
     "sections) -> (imports, crc_symbols, [(name, shndx, value)], {__kstrtabns_ name: namespace | None}, "
     "{name: kind}) | None (parse.ksymtab.scan_symbols)"},
    {"modinfo", accel_modinfo, METH_VARARGS,
     "modinfo(data, offset, size) -> ((tag, value | None), ...) | None (parse.modinfo.parse)"},
    {"versions", accel_versions, METH_VARARGS,
     "versions(data, offset, size, elfclass, little) -> [Modversion] | None (modversions.basic.read_entries)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "kmodcompat.parse._accel",
    "The parse hot path in C; kmodcompat/parse/accel.py loads it, the Python readers are the reference.",
    -1, methods, NULL, NULL, NULL, NULL,
};

/* The digest of the source it was built from (parse/accel_source.py; setup.py defines it). */
#ifndef KMODCOMPAT_ACCEL_SOURCE
#define KMODCOMPAT_ACCEL_SOURCE "unknown"
#endif

PyMODINIT_FUNC PyInit__accel(void)
{
    KIND_NOTYPE = PyUnicode_InternFromString("notype");
    KIND_OBJECT = PyUnicode_InternFromString("object");
    KIND_FUNC = PyUnicode_InternFromString("func");
    KIND_OTHER = PyUnicode_InternFromString("other");
    if (!KIND_NOTYPE || !KIND_OBJECT || !KIND_FUNC || !KIND_OTHER)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddStringConstant(m, "SOURCE", KMODCOMPAT_ACCEL_SOURCE) < 0)
        Py_CLEAR(m);
    return m;
}

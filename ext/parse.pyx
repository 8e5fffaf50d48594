# cython: language_level=3
"""Hot loop of the export parser: split every cell of a column into a number and what surrounds it.

A lab export writes quantities as "0.23g", "230 mg", "1,234.5 kg", "34 %", "<1%", "£12.50",
"3 rocks", "1.2E+05", "<LOQ". Python-level code then gives the pieces their meaning per field
(units, percent, censoring); this scan is the part that touches every cell, so it is compiled.

Grammar of one cell (leading/trailing white space ignored):

    [prefix] [currency] [sign] number [exponent] [suffix]

- prefix: ``<``, ``≤``, ``>``, ``≥`` (censoring) — returned as code 1 (below) or 2 (above);
- currency: ``£`` (returned as a flag), ``$``, ``€`` are rejected as prefix text;
- number: digits with ``.`` or ``,``; when both occur the last one is the decimal separator and the
  other groups thousands; a lone ``,`` followed by exactly three digits groups thousands
  ("1,234" = 1234, the UK convention), otherwise it is a decimal comma ("0,23" = 0.23);
- exponent: ``e``/``E``, optional sign, digits;
- suffix: whatever follows, stripped and lower-cased (a unit, "%", "rocks" …).

The number itself is converted by C ``strtod`` on the cleaned ASCII digits, which rounds
correctly, so a decimal string round-trips to the same double Python's ``float()`` gives.
"""

import numpy as np
cimport numpy as cnp
from libc.stdlib cimport strtod
from libc.math cimport NAN

cnp.import_array()

# status codes
cdef enum:
    ST_BLANK = 0      # empty or whitespace, or not a string
    ST_NUMBER = 1     # a number, nothing after it
    ST_SUFFIX = 2     # a number followed by text (see suffix)
    ST_TEXT = 3       # no number at the start: the whole stripped, lower-cased cell is in suffix
    MAXDIG = 64

BLANK = ST_BLANK
NUMBER = ST_NUMBER
SUFFIX = ST_SUFFIX
TEXT = ST_TEXT



cdef inline bint _is_space(Py_UCS4 c):
    return c == 32 or c == 9 or c == 10 or c == 13 or c == 0xA0 or c == 0x202F


cdef inline bint _is_digit(Py_UCS4 c):
    return 48 <= c <= 57


def scan_quantities(object cells):
    """Scan a sequence of cells (str, or anything else meaning blank).

    Returns ``(value, status, prefix, currency, suffix)``:
    value float64[n] (NaN where no number), status int8[n] (0 blank, 1 number, 2 number+suffix,
    3 text), prefix int8[n] (0 none, 1 "<"/"≤", 2 ">"/"≥"), currency bool[n] ("£" seen),
    suffix object[n] (str; "" when none).
    """
    cdef Py_ssize_t n = len(cells)
    cdef cnp.ndarray[cnp.float64_t, ndim=1] value = np.full(n, np.nan, dtype=np.float64)
    cdef cnp.ndarray[cnp.int8_t, ndim=1] status = np.zeros(n, dtype=np.int8)
    cdef cnp.ndarray[cnp.int8_t, ndim=1] prefix = np.zeros(n, dtype=np.int8)
    cdef cnp.ndarray[cnp.uint8_t, ndim=1] currency = np.zeros(n, dtype=np.uint8)
    cdef cnp.ndarray suffix = np.full(n, "", dtype=object)
    cdef Py_ssize_t k, i, j, m, start, last_sep_pos, n_commas, n_dots, after
    cdef Py_ssize_t ndig
    cdef Py_UCS4 c
    cdef char buf[MAXDIG + 2]
    cdef str s
    cdef object cell
    cdef bint neg, any_digit, ok
    cdef Py_UCS4 last_sep, dec
    cdef Py_ssize_t digits_after_first_comma
    cdef list cell_list = cells if type(cells) is list else list(cells)

    for k in range(n):
        cell = cell_list[k]
        if not isinstance(cell, str):
            continue
        s = <str>cell
        m = len(s)
        i = 0
        while i < m and _is_space(s[i]):
            i += 1
        while m > i and _is_space(s[m - 1]):
            m -= 1
        if i >= m:
            continue
        start = i
        # prefix
        c = s[i]
        if c == u'<' or c == u'\u2264':
            prefix[k] = 1
            i += 1
        elif c == u'>' or c == u'\u2265':
            prefix[k] = 2
            i += 1
        while i < m and _is_space(s[i]):
            i += 1
        if i < m and s[i] == u'\u00a3':
            currency[k] = 1
            i += 1
            while i < m and _is_space(s[i]):
                i += 1
        neg = False
        if i < m and (s[i] == u'-' or s[i] == u'\u2212'):
            neg = True
            i += 1
        elif i < m and s[i] == u'+':
            i += 1
        # number body: digits and separators
        j = i
        n_commas = 0
        n_dots = 0
        any_digit = False
        last_sep = 0
        last_sep_pos = -1
        while j < m:
            c = s[j]
            if _is_digit(c):
                any_digit = True
            elif c == u',':
                n_commas += 1
                last_sep = c
                last_sep_pos = j
            elif c == u'.':
                n_dots += 1
                last_sep = c
                last_sep_pos = j
            else:
                break
            j += 1
        # a trailing separator is not part of the number ("3." is fine, "3," is punctuation)
        while j > i and (s[j - 1] == u',' ):
            j -= 1
            n_commas -= 1
        if not any_digit:
            status[k] = ST_TEXT
            suffix[k] = s[start:m].lower()
            continue
        # decide the decimal separator
        ok = True
        ndig = 0
        if n_commas > 0 and n_dots > 0:
            dec = last_sep
        elif n_commas == 1:
            # digits after the comma
            digits_after_first_comma = 0
            for after in range(last_sep_pos + 1, j):
                if _is_digit(s[after]):
                    digits_after_first_comma += 1
            dec = u'.' if digits_after_first_comma == 3 else u','
        elif n_commas > 1:
            dec = u'.'
        elif n_dots > 1:
            ok = False
            dec = u'.'
        else:
            dec = u'.'
        if n_commas > 0 and n_dots > 0 and ((dec == u'.' and n_dots > 1) or (dec == u',' and n_commas > 1)):
            ok = False
        if not ok:
            status[k] = ST_TEXT
            suffix[k] = s[start:m].lower()
            continue
        if neg:
            buf[ndig] = 45  # '-'
            ndig += 1
        for after in range(i, j):
            c = s[after]
            if _is_digit(c):
                if ndig >= MAXDIG - 8:
                    ok = False
                    break
                buf[ndig] = <char>c
                ndig += 1
            elif c == dec:
                buf[ndig] = 46  # '.'
                ndig += 1
            # else: thousands separator, dropped
        if not ok:
            status[k] = ST_TEXT
            suffix[k] = s[start:m].lower()
            continue
        # exponent
        if j + 1 < m and (s[j] == u'e' or s[j] == u'E'):
            after = j + 1
            if after < m and (s[after] == u'+' or s[after] == u'-'):
                after += 1
            if after < m and _is_digit(s[after]):
                buf[ndig] = 101  # 'e'
                ndig += 1
                if s[j + 1] == u'-':
                    buf[ndig] = 45
                    ndig += 1
                while after < m and _is_digit(s[after]) and ndig < MAXDIG:
                    buf[ndig] = <char>s[after]
                    ndig += 1
                    after += 1
                j = after
        buf[ndig] = 0
        value[k] = strtod(buf, NULL)
        while j < m and _is_space(s[j]):
            j += 1
        if j < m:
            status[k] = ST_SUFFIX
            suffix[k] = s[j:m].lower()
        else:
            status[k] = ST_NUMBER
    return value, status, prefix, currency.view(bool), suffix


def scan_records(const unsigned char[:] data, unsigned char delim, unsigned char quote=34):
    """Walk CSV bytes (RFC 4180 quoting, as pandas' C parser reads them) and return, for every
    record, its first physical line (1-based) and its number of fields.

    Returns ``(line int64[n], n_fields int32[n], open_quote)`` where ``open_quote`` is the line of
    a quoted field still open at the end of the data (0 when none): a truncated file.
    A blank line is a record of one empty field. ``\\r\\n`` and ``\\n`` end records; a lone ``\\r``
    inside a line is data.
    """
    cdef Py_ssize_t n = data.shape[0]
    cdef Py_ssize_t i = 0, cap = 1024, nrec = 0
    cdef long long line = 1, rec_line = 1, quote_line = 0
    cdef int fields = 1
    cdef bint in_quotes = False, at_field_start = True, pending = False
    cdef unsigned char c
    lines = np.empty(cap, dtype=np.int64)
    nf = np.empty(cap, dtype=np.int32)
    cdef long long[:] lv = lines
    cdef int[:] fv = nf
    while i < n:
        c = data[i]
        if in_quotes:
            if c == quote:
                if i + 1 < n and data[i + 1] == quote:
                    i += 1
                else:
                    in_quotes = False
            elif c == 10:
                line += 1
            i += 1
            continue
        if c == quote and at_field_start:
            in_quotes = True
            quote_line = line
            at_field_start = False
            pending = True
        elif c == delim:
            fields += 1
            at_field_start = True
            pending = True
        elif c == 10:
            if nrec == cap:
                cap *= 2
                lines = np.resize(lines, cap)
                nf = np.resize(nf, cap)
                lv = lines
                fv = nf
            lv[nrec] = rec_line
            fv[nrec] = fields
            nrec += 1
            line += 1
            rec_line = line
            fields = 1
            at_field_start = True
            pending = False
        elif c == 13 and i + 1 < n and data[i + 1] == 10:
            pass
        else:
            at_field_start = False
            pending = True
        i += 1
    if in_quotes:
        return lines[:nrec], nf[:nrec], quote_line
    if pending:
        if nrec == cap:
            cap += 1
            lines = np.resize(lines, cap)
            nf = np.resize(nf, cap)
        lines[nrec] = rec_line
        nf[nrec] = fields
        nrec += 1
    return lines[:nrec], nf[:nrec], 0

# cython: language_level=3
"""Decode a library text column: UTF-8 bytes plus character offsets -> Python strings.

The library stores a text column as one UTF-8 blob and ``n + 1`` offsets counted in characters
(``profiling.library``). Reading it is one pass over the bytes: the character offsets are turned
into byte positions as the pass goes (ASCII blobs skip that walk), and each row's bytes are
looked up in a hash table of the strings already made, so that equal strings share one ``str``
object. A column of areas, forces, drugs or packaging holds a few hundred distinct values in
10^6 rows: one object each instead of 10^6 (about 60 MB of ``str`` objects saved per column at
that size). When a column turns out to be mostly distinct (exhibit ids), the table is dropped and
every row is decoded on its own.

Damage the checksums cannot see (offsets that run past the bytes or stop before them, bytes that
are not UTF-8) raises ``ValueError`` / ``UnicodeDecodeError``; the library reports them as a
damaged file.
"""

import numpy as np
cimport numpy as cnp
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memcmp, memcpy

cnp.import_array()

cdef enum:
    GIVE_UP_AFTER = 65536      # rows seen before deciding a column is mostly distinct
    MAX_DISTINCT = 1 << 22


cdef inline uint64_t _mix(uint64_t h) nogil:
    h ^= h >> 33
    h *= <uint64_t>0xff51afd7ed558ccd
    h ^= h >> 33
    h *= <uint64_t>0xc4ceb9fe1a85ec53
    h ^= h >> 33
    return h


cdef inline uint64_t _hash(const uint8_t* p, Py_ssize_t n) nogil:
    cdef uint64_t h = <uint64_t>0x9E3779B97F4A7C15 ^ <uint64_t>n
    cdef uint64_t w
    while n >= 8:
        memcpy(&w, p, 8)
        h = _mix(h ^ w)
        p += 8
        n -= 8
    if n > 0:
        w = 0
        memcpy(&w, p, n)
        h = _mix(h ^ w)
    return h


cdef bint _is_ascii(const uint8_t* p, Py_ssize_t n) nogil:
    cdef uint64_t acc = 0
    cdef uint64_t w
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        acc |= w
        i += 8
    while i < n:
        acc |= p[i]
        i += 1
    return (acc & <uint64_t>0x8080808080808080) == 0


cdef extern from "Python.h":
    void _incref "Py_INCREF"(PyObject*)
    void _decref "Py_DECREF"(PyObject*)


cdef inline void _put(PyObject** slots, Py_ssize_t i, PyObject* value):
    """slots[i] = value, keeping the reference counts right (the old value, None, is released)."""
    _incref(value)
    _decref(slots[i])
    slots[i] = value


def decode_text(const uint8_t[::1] blob, const int64_t[::1] offsets):
    """object[n] of ``str``: row ``i`` is the text between character ``offsets[i]`` and
    ``offsets[i + 1]`` of the UTF-8 ``blob``. Equal strings are one object."""
    cdef Py_ssize_t n = offsets.shape[0] - 1
    cdef Py_ssize_t size = blob.shape[0]
    if n < 0:
        raise ValueError("a text column has no offsets")
    out = np.empty(n, dtype=object)          # n references to None
    if n == 0:
        return out
    # rows are written through the array's pointers: each slot's None is released and the
    # row's string referenced (this loop runs 10^6 times a column)
    cdef PyObject** view = <PyObject**>cnp.PyArray_DATA(out)
    cdef const uint8_t* base = &blob[0] if size > 0 else NULL
    cdef bint ascii = _is_ascii(base, size)
    cdef str empty = ""
    cdef PyObject* empty_p = <PyObject*>empty
    cdef Py_ssize_t i, k, p = 0, start, length, chars
    cdef int64_t prev = offsets[0]
    cdef int64_t nxt
    # hash table: slots hold an index into the distinct strings, -1 when empty
    cdef Py_ssize_t cap = 1024
    cdef cnp.ndarray slots_arr = np.full(cap, -1, dtype=np.int32)
    cdef int32_t* slots = <int32_t*>cnp.PyArray_DATA(slots_arr)
    cdef cnp.ndarray start_arr = np.empty(cap // 2, dtype=np.int64)
    cdef cnp.ndarray len_arr = np.empty(cap // 2, dtype=np.int64)
    cdef cnp.ndarray hash_arr = np.empty(cap // 2, dtype=np.uint64)
    cdef int64_t* d_start = <int64_t*>cnp.PyArray_DATA(start_arr)
    cdef int64_t* d_len = <int64_t*>cnp.PyArray_DATA(len_arr)
    cdef uint64_t* d_hash = <uint64_t*>cnp.PyArray_DATA(hash_arr)
    cdef list distinct = []              # owns the distinct strings
    cdef cnp.ndarray ptr_arr = np.empty(cap // 2, dtype=np.uintp)
    cdef PyObject** d_obj = <PyObject**>cnp.PyArray_DATA(ptr_arr)
    cdef Py_ssize_t n_distinct = 0, j, d, mask = cap - 1
    cdef bint dedupe = True
    cdef uint64_t h
    cdef object s
    # the previous row: exports come in runs (one file, one area, one drug), so a row that
    # repeats the one before is found with one compare, before hashing
    cdef Py_ssize_t prev_start = 0, prev_len = -1
    cdef PyObject* prev_obj = NULL
    if prev < 0:
        raise ValueError("text column offsets are negative")
    # the first offset is normally 0; skip the characters before it
    for k in range(prev):
        if p >= size:
            raise ValueError("text column offsets run past its bytes")
        p += 1
        if not ascii:
            while p < size and (base[p] & 0xC0) == 0x80:
                p += 1
    for i in range(n):
        nxt = offsets[i + 1]
        chars = nxt - prev
        prev = nxt
        if chars < 0:
            raise ValueError("text column offsets decrease")
        start = p
        if ascii:
            p += chars
            if p > size:
                raise ValueError("text column offsets run past its bytes")
        else:
            for k in range(chars):
                if p >= size:
                    raise ValueError("text column offsets run past its bytes")
                p += 1
                while p < size and (base[p] & 0xC0) == 0x80:
                    p += 1
        length = p - start
        if length == 0:
            _put(view, i, empty_p)
            continue
        if length == prev_len and memcmp(base + prev_start, base + start, length) == 0:
            _put(view, i, prev_obj)
            continue
        if not dedupe:
            s = PyUnicode_DecodeUTF8(<const char*>(base + start), length, NULL)
            _put(view, i, <PyObject*>s)
            prev_start, prev_len, prev_obj = start, length, <PyObject*>s   # s is out's now
            continue
        h = _hash(base + start, length)
        j = <Py_ssize_t>(h & <uint64_t>mask)
        while True:
            d = slots[j]
            if d < 0:
                break
            if d_hash[d] == h and d_len[d] == length and \
                    memcmp(base + d_start[d], base + start, length) == 0:
                break
            j = (j + 1) & mask
        if d >= 0:
            _put(view, i, d_obj[d])
            prev_start, prev_len, prev_obj = d_start[d], length, d_obj[d]
            continue
        s = PyUnicode_DecodeUTF8(<const char*>(base + start), length, NULL)
        _put(view, i, <PyObject*>s)
        prev_start, prev_len, prev_obj = start, length, <PyObject*>s
        if (i >= GIVE_UP_AFTER and n_distinct * 2 > i) or n_distinct >= MAX_DISTINCT:
            dedupe = False        # mostly distinct: the table would only cost time
            continue
        slots[j] = <int32_t>n_distinct
        d_start[n_distinct] = start
        d_len[n_distinct] = length
        d_hash[n_distinct] = h
        distinct.append(s)
        d_obj[n_distinct] = <PyObject*>s
        n_distinct += 1
        if n_distinct * 2 >= cap:           # keep the table at most half full
            cap *= 2
            mask = cap - 1
            slots_arr = np.full(cap, -1, dtype=np.int32)
            slots = <int32_t*>cnp.PyArray_DATA(slots_arr)
            start_arr = np.resize(start_arr, cap // 2)
            len_arr = np.resize(len_arr, cap // 2)
            hash_arr = np.resize(hash_arr, cap // 2)
            ptr_arr = np.resize(ptr_arr, cap // 2)
            d_obj = <PyObject**>cnp.PyArray_DATA(ptr_arr)
            d_start = <int64_t*>cnp.PyArray_DATA(start_arr)
            d_len = <int64_t*>cnp.PyArray_DATA(len_arr)
            d_hash = <uint64_t*>cnp.PyArray_DATA(hash_arr)
            for d in range(n_distinct):
                j = <Py_ssize_t>(d_hash[d] & <uint64_t>mask)
                while slots[j] >= 0:
                    j = (j + 1) & mask
                slots[j] = <int32_t>d
    if p != size:
        raise ValueError("text column offsets stop before the end of its bytes")
    return out

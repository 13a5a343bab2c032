# cython: language_level=3, boundscheck=False, wraparound=False
"""``copy_plain(message)``: a thread worker's copy of a message made of built-in data.

Within one process a message need not become bytes: Node's structured clone, for the
built-in types, is a deep copy of the mutable containers. This does it in C, for a
message made only of exact ``dict``, ``list``, ``tuple``, ``set``, ``frozenset``,
``bytearray``, ``str``, ``bytes``, ``int``, ``float``, ``complex``, ``bool`` and
``None``: about 6x cheaper than ``pickle.dumps`` plus ``pickle.loads`` for a small
message (docs/workers.md has the measurement), and no decoding on the receiving side.

What pickle guarantees is kept: every mutable container (dict, list, set, bytearray)
is a new object, so changing the original after posting changes nothing on the other
side; an object reached twice is copied once (shared references and cycles come out
the same shape). Immutable objects (str, bytes, numbers, and tuples or frozensets of
them) are shared, not copied: nothing can change them. Anything else (a subclass, an
instance of a class, a memoryview, a port...) returns None and the caller pickles the
whole message as before, so such a message behaves exactly as it did.

``size`` is what the backpressure accounting counts for the copy: about the bytes
pickle would have written (lengths of strings and bytes plus a few bytes per item).

No Python code runs during the copy (only built-in types, whose hashing and
comparison are C), so with the GIL held the original cannot change under it.
"""
from cpython.object cimport PyObject

cdef extern from "Python.h":
    int Py_EnterRecursiveCall(const char *where) except -1
    void Py_LeaveRecursiveCall()
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    Py_ssize_t PyBytes_GET_SIZE(object)
    Py_ssize_t PyByteArray_GET_SIZE(object)

__all__ = ["copy_plain"]

cdef object NOT_PLAIN = object()     # returned up the recursion: pickle the message
cdef Py_ssize_t ITEM = 2            # bytes counted per container item (opcodes)
cdef Py_ssize_t SCALAR = 9          # an int, float or the like, pickled


cpdef tuple copy_plain(object message):
    """``(copy, size)`` for a message of built-in data, else None (pickle it)."""
    cdef Py_ssize_t size = 0
    try:
        result = _copy(message, None, &size)
    except RecursionError:
        return None                 # pickle says what is wrong with a message that deep
    if result is NOT_PLAIN:
        return None
    return result, size


cdef inline bint _is_scalar(type t):
    return t is int or t is float or t is bool or t is complex


cdef object _copy(object obj, dict memo, Py_ssize_t *size):
    """The copy of ``obj``; ``memo`` maps id() of each container seen to its copy
    (created on the first container: a message of scalars needs none)."""
    cdef type t = type(obj)
    if t is str:
        size[0] += PyUnicode_GET_LENGTH(obj) + 5
        return obj
    if _is_scalar(t) or obj is None:
        size[0] += SCALAR
        return obj
    if t is bytes:
        size[0] += PyBytes_GET_SIZE(obj) + 5
        return obj
    if t is not dict and t is not list and t is not tuple and t is not set and \
            t is not frozenset and t is not bytearray:
        return NOT_PLAIN
    if memo is None:
        memo = {}
    key = id(obj)
    seen = memo.get(key)
    if seen is not None:
        size[0] += ITEM
        return seen
    Py_EnterRecursiveCall(" while copying a message")
    try:
        if t is dict:
            return _copy_dict(<dict>obj, key, memo, size)
        if t is list:
            return _copy_list(<list>obj, key, memo, size)
        if t is tuple:
            return _copy_tuple(<tuple>obj, key, memo, size)
        if t is bytearray:
            size[0] += PyByteArray_GET_SIZE(obj) + 5
            copied = bytearray(obj)
            memo[key] = copied
            return copied
        return _copy_set(obj, t, key, memo, size)
    finally:
        Py_LeaveRecursiveCall()


cdef object _copy_dict(dict obj, object key, dict memo, Py_ssize_t *size):
    cdef dict copied = {}
    memo[key] = copied               # before the items: a cycle finds it
    size[0] += ITEM * (1 + len(obj))
    for k, v in obj.items():
        ck = _copy(k, memo, size)
        if ck is NOT_PLAIN:
            return NOT_PLAIN
        cv = _copy(v, memo, size)
        if cv is NOT_PLAIN:
            return NOT_PLAIN
        copied[ck] = cv
    return copied


cdef object _copy_list(list obj, object key, dict memo, Py_ssize_t *size):
    cdef list copied = []
    memo[key] = copied
    size[0] += ITEM * (1 + len(obj))
    for item in obj:
        c = _copy(item, memo, size)
        if c is NOT_PLAIN:
            return NOT_PLAIN
        copied.append(c)
    return copied


cdef object _copy_tuple(tuple obj, object key, dict memo, Py_ssize_t *size):
    """Shared when every item is (immutable all the way down); else a new tuple."""
    cdef list items = []
    cdef bint same = True
    size[0] += ITEM * (1 + len(obj))
    for item in obj:
        c = _copy(item, memo, size)
        if c is NOT_PLAIN:
            return NOT_PLAIN
        if c is not item:
            same = False
        items.append(c)
    seen = memo.get(key)
    if seen is not None:             # reached again through its own items (a cycle)
        return seen
    copied = obj if same else tuple(items)
    memo[key] = copied
    return copied


cdef object _copy_set(object obj, type t, object key, dict memo, Py_ssize_t *size):
    """A set's items are hashable built-ins, so immutable: a frozenset is shared, a set
    is a new set of the same items."""
    size[0] += ITEM * (1 + len(obj))
    for item in obj:
        if _copy(item, memo, size) is not item:
            return NOT_PLAIN
    copied = obj if t is frozenset else set(obj)
    memo[key] = copied
    return copied

/* otel_uwsgi's hottest pure functions, in C: the common span shape of
 * otel_uwsgi.export.encoder._direct_span, the attribute check of otel_uwsgi.traces.lean.span._plain_py, and the
 * fast path's request attributes (otel_uwsgi.instrumentation.fast.http.request_attributes).
 *
 * span_field(span) returns the same bytes as the Python _direct_span (the ScopeSpans.spans field:
 * tag, length, Span message) for a span of the shape nearly every server and client span has, or
 * None for anything it is not sure of: the caller then runs the Python code, which decides (and
 * logs, or raises) exactly as before.  Attribute values handled here are exact str, bool, int
 * (in int64) and float; any other value, key or field sends the whole span back to Python.
 *
 * configure() hands over the classes and the empty trace state the checks compare with, so this
 * file imports nothing from OpenTelemetry.  plain_attributes(mapping) answers _plain_py's question
 * for an exact dict and hands any other mapping to the Python function itself.
 * tests/unit/native/test_accel_equals_python.py holds each C function equal to its Python twin.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_accel.h"

PyObject *SpanContextType;
static PyObject *StatusType, *SpanKindType, *BoundedAttributesType, *BoundedListType;
static PyObject *DefaultTraceState;

static PyObject *s_events, *s_links, *s_status, *s_dq, *s_dropped, *s_description,
    *s_status_code, *s_value;

typedef struct {
    unsigned char *data;
    Py_ssize_t len, cap;
    unsigned char stack[2048];
} Buffer;

static int buf_reserve(Buffer *b, Py_ssize_t more) {
    if (b->len + more <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + more)
        cap *= 2;
    unsigned char *data;
    if (b->data == b->stack) {
        data = PyMem_Malloc(cap);
        if (data != NULL)
            memcpy(data, b->stack, b->len);
    } else {
        data = PyMem_Realloc(b->data, cap);
    }
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static void buf_free(Buffer *b) {
    if (b->data != b->stack)
        PyMem_Free(b->data);
}

static inline void put_byte(Buffer *b, unsigned char c) { b->data[b->len++] = c; }

static inline void put_bytes(Buffer *b, const void *p, Py_ssize_t n) {
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline int varint_size(uint64_t n) {
    int size = 1;
    while (n >= 0x80) {
        n >>= 7;
        size++;
    }
    return size;
}

static inline void put_varint(Buffer *b, uint64_t n) {
    while (n >= 0x80) {
        b->data[b->len++] = (unsigned char)(n & 0x7F) | 0x80;
        n >>= 7;
    }
    b->data[b->len++] = (unsigned char)n;
}

static inline void put_fixed64_le(Buffer *b, uint64_t v) {
    for (int i = 0; i < 8; i++)
        b->data[b->len++] = (unsigned char)(v >> (8 * i));
}

static inline void put_fixed64_be(Buffer *b, uint64_t v) {
    for (int i = 7; i >= 0; i--)
        b->data[b->len++] = (unsigned char)(v >> (8 * i));
}

/* An exact int in [0, 2**64) (a bool, a float or anything out of range is -1). */
static int u64(PyObject *v, uint64_t *out) {
    if (!PyLong_CheckExact(v))
        return -1;
    unsigned long long n = PyLong_AsUnsignedLongLong(v);
    if (n == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    *out = (uint64_t)n;
    return 0;
}

/* A time: u64() and not 0 (a 0 time is an absent field, which _direct_span leaves to _span). */
static int positive_u64(PyObject *v, uint64_t *out) { return (u64(v, out) < 0 || *out == 0) ? -1 : 0; }

/* An exact int in [0, 2**128) as two 64-bit halves. */
int u128(PyObject *v, uint64_t *hi, uint64_t *lo) {
    unsigned char bytes[16];
    if (!PyLong_CheckExact(v))
        return -1;
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t needed = PyLong_AsNativeBytes(
        v, bytes, 16,
        Py_ASNATIVEBYTES_BIG_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER | Py_ASNATIVEBYTES_REJECT_NEGATIVE);
    if (needed < 0) {
        PyErr_Clear();
        return -1;
    }
    if (needed > 16)
        return -1;
#else
    if (_PyLong_Sign(v) < 0)
        return -1;
    if (_PyLong_AsByteArray((PyLongObject *)v, bytes, 16, 0, 0) < 0) {
        PyErr_Clear();
        return -1;
    }
#endif
    uint64_t h = 0, l = 0;
    for (int i = 0; i < 8; i++) {
        h = (h << 8) | bytes[i];
        l = (l << 8) | bytes[8 + i];
    }
    *hi = h;
    *lo = l;
    return 0;
}

/* Truthiness that cannot fail: an error counts as "not sure" (-1). */
static int truth(PyObject *v) {
    int t = PyObject_IsTrue(v);
    if (t < 0)
        PyErr_Clear();
    return t;
}

/* The truth of a value just read (a new reference, released here; NULL: the read failed): 1 or 0,
 * -1 when it cannot be read ("not sure"). */
static int read_truth(PyObject *v) {
    if (v == NULL) {
        PyErr_Clear();
        return -1;
    }
    int t = truth(v);
    Py_DECREF(v);
    return t;
}

/* The truth of obj.name, and of a field of a span or its attributes (_slots.c). */
static int attr_truth(PyObject *obj, PyObject *name) { return read_truth(PyObject_GetAttr(obj, name)); }
static int field_truth(PyObject *obj, int field) { return read_truth(field_get(obj, field)); }


/* The _direct_span test for events and links: an empty tuple, or a BoundedList with an empty
 * deque and nothing dropped.  1 when empty, 0 otherwise (or when unsure). */
static int empty_list(PyObject *items) {
    if (PyTuple_CheckExact(items))
        return PyTuple_GET_SIZE(items) == 0;
    if ((PyObject *)Py_TYPE(items) != BoundedListType)
        return 0;
    return attr_truth(items, s_dq) == 0 && attr_truth(items, s_dropped) == 0;
}

/* An int attribute of `obj` in [lo, hi] (an enum's _value_, a status code...), or -1. */
static long small_int_attr(PyObject *obj, PyObject *name, long lo, long hi) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL) {
        PyErr_Clear();
        return -1;
    }
    long n = -1;
    if (PyLong_CheckExact(v)) {
        n = PyLong_AsLong(v);
        if (n == -1 && PyErr_Occurred())
            PyErr_Clear();
    }
    Py_DECREF(v);
    return (n < lo || n > hi) ? -1 : n;
}

/* Statuses and span kinds seen before, by identity, with what encode() read from them: a span's status
 * is most often the lean span's shared UNSET one, and its kind one of SpanKind's five members.  Each
 * remembered object is held (a strong reference), so its address cannot be reused by another while it
 * is remembered; a Status is never changed after its __init__ (read-only properties). */
static PyObject *SeenStatus; /* the last status read: code SeenCode, no description */
static long SeenCode = -1;
static PyObject *SeenKind[5]; /* SeenKind[v]: the SpanKind whose _value_ is v */

/* The status's code (0-2) when it has no description, else -1 (Python decides). */
static long status_code_of(PyObject *status) {
    if (status == SeenStatus)
        return SeenCode;
    if (attr_truth(status, s_description) != 0)
        return -1;
    PyObject *code_obj = PyObject_GetAttr(status, s_status_code);
    if (code_obj == NULL) {
        PyErr_Clear();
        return -1;
    }
    long code = small_int_attr(code_obj, s_value, 0, 2);
    Py_DECREF(code_obj);
    if (code >= 0) {
        Py_XSETREF(SeenStatus, Py_NewRef(status));
        SeenCode = code;
    }
    return code;
}

/* The kind's _value_ (0-4), or -1. */
static long kind_value_of(PyObject *kind) {
    for (long v = 0; v < 5; v++)
        if (kind == SeenKind[v])
            return v;
    long v = small_int_attr(kind, s_value, 0, 4);
    if (v >= 0)
        Py_XSETREF(SeenKind[v], Py_NewRef(kind));
    return v;
}

/* One attribute as a KeyValue field with tag 0x4a; -1 when it must go to Python. */
static int put_attribute(Buffer *b, PyObject *key, PyObject *value) {
    Py_ssize_t key_len, value_len = 0;
    const char *key_utf8, *value_utf8 = NULL;
    long long integer = 0;
    double real = 0;
    Py_ssize_t any_len;
    int kind;

    if (!PyUnicode_CheckExact(key))
        return -1;
    key_utf8 = PyUnicode_AsUTF8AndSize(key, &key_len);
    if (key_utf8 == NULL) {
        PyErr_Clear();
        return -1;
    }
    if (PyUnicode_CheckExact(value)) {
        value_utf8 = PyUnicode_AsUTF8AndSize(value, &value_len);
        if (value_utf8 == NULL) {
            PyErr_Clear();
            return -1;
        }
        kind = 0;
        any_len = 1 + varint_size((uint64_t)value_len) + value_len;
    } else if (PyBool_Check(value)) {
        kind = 1;
        any_len = 2;
    } else if (PyLong_CheckExact(value)) {
        int overflow = 0;
        integer = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (integer == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
        kind = 2;
        any_len = 1 + varint_size((uint64_t)integer);
    } else if (PyFloat_CheckExact(value)) {
        real = PyFloat_AS_DOUBLE(value);
        kind = 3;
        any_len = 9;
    } else {
        return -1;
    }
    Py_ssize_t kv_len = (key_len ? 1 + varint_size((uint64_t)key_len) + key_len : 0) + 1 +
                        varint_size((uint64_t)any_len) + any_len;
    if (buf_reserve(b, 1 + varint_size((uint64_t)kv_len) + kv_len) < 0) {
        PyErr_Clear();
        return -1;
    }
    put_byte(b, 0x4a);
    put_varint(b, (uint64_t)kv_len);
    if (key_len) { /* an empty key is an absent proto3 string */
        put_byte(b, 0x0a);
        put_varint(b, (uint64_t)key_len);
        put_bytes(b, key_utf8, key_len);
    }
    put_byte(b, 0x12);
    put_varint(b, (uint64_t)any_len);
    switch (kind) {
    case 0:
        put_byte(b, 0x0a);
        put_varint(b, (uint64_t)value_len);
        put_bytes(b, value_utf8, value_len);
        break;
    case 1:
        put_byte(b, 0x10);
        put_byte(b, value == Py_True ? 1 : 0);
        break;
    case 2:
        put_byte(b, 0x18);
        put_varint(b, (uint64_t)integer);
        break;
    default: {
        uint64_t bits;
        memcpy(&bits, &real, 8);
        put_byte(b, 0x21);
        put_fixed64_le(b, bits);
    }
    }
    return 0;
}

/* The body of span_field; 1 when written, 0 when the span goes to Python. */
static int encode(Buffer *b, PyObject *span) {
    PyObject *context = NULL, *parent = NULL, *events = NULL, *links = NULL, *attributes = NULL, *status = NULL,
             *start = NULL, *end = NULL, *kind = NULL, *name = NULL, *items = NULL;
    int done = 0;
    uint64_t trace_hi, trace_lo, span_id, parent_id = 0, start_ns, end_ns;
    long code, kind_value;
    int remote = 0;

#define GET(var, attr)                                                                                             \
    if ((var = PyObject_GetAttr(span, attr)) == NULL)                                                              \
        goto out;
#define FIELD(var, field)                                                                                          \
    if ((var = field_get(span, field)) == NULL)                                                                     \
        goto out;
    FIELD(context, SF_CONTEXT)
    FIELD(parent, SF_PARENT)
    GET(events, s_events)
    GET(links, s_links)
    FIELD(attributes, SF_ATTRIBUTES)
    GET(status, s_status)
    FIELD(start, SF_START_TIME)
    FIELD(end, SF_END_TIME)
    FIELD(kind, SF_KIND)
    FIELD(name, SF_NAME)
#undef GET
#undef FIELD
    if ((PyObject *)Py_TYPE(context) != SpanContextType || PyTuple_GET_SIZE(context) != 6)
        goto out;
    if (parent != Py_None && ((PyObject *)Py_TYPE(parent) != SpanContextType || PyTuple_GET_SIZE(parent) != 6))
        goto out;
    if ((PyObject *)Py_TYPE(status) != StatusType || (PyObject *)Py_TYPE(kind) != SpanKindType)
        goto out;
    PyObject *trace_state = PyTuple_GET_ITEM(context, 4);
    if (trace_state != DefaultTraceState && truth(trace_state) != 0)
        goto out;
    if (!empty_list(events) || !empty_list(links))
        goto out;
    if (((PyObject *)Py_TYPE(attributes) != BoundedAttributesType && !is_lean_attributes(attributes)) ||
        field_truth(attributes, AF_IMMUTABLE) != 1 || field_truth(attributes, AF_DROPPED) != 0)
        goto out;
    if (positive_u64(start, &start_ns) < 0 || positive_u64(end, &end_ns) < 0)
        goto out;
    if (u128(PyTuple_GET_ITEM(context, 0), &trace_hi, &trace_lo) < 0)
        goto out;
    if (u64(PyTuple_GET_ITEM(context, 1), &span_id) < 0)
        goto out;
    if (parent != Py_None) {
        if (u64(PyTuple_GET_ITEM(parent, 1), &parent_id) < 0)
            goto out;
        remote = truth(PyTuple_GET_ITEM(parent, 2));
        if (remote < 0)
            goto out;
    }
    if ((code = status_code_of(status)) < 0 || (kind_value = kind_value_of(kind)) < 0)
        goto out;
    Py_ssize_t name_len = 0;
    const char *name_utf8 = NULL;
    if (!PyUnicode_CheckExact(name))
        goto out;
    if ((name_utf8 = PyUnicode_AsUTF8AndSize(name, &name_len)) == NULL)
        goto out;
    if ((items = field_get(attributes, AF_DICT)) == NULL || !PyDict_CheckExact(items))
        goto out;

    if (buf_reserve(b, 2 + 16 + 2 + 8 + 2 + 8 + 1 + 10 + name_len + 2 + 18) < 0)
        goto out;
    put_byte(b, 0x0a);
    put_byte(b, 0x10);
    put_fixed64_be(b, trace_hi);
    put_fixed64_be(b, trace_lo);
    put_byte(b, 0x12);
    put_byte(b, 0x08);
    put_fixed64_be(b, span_id);
    if (parent != Py_None) {
        put_byte(b, 0x22);
        put_byte(b, 0x08);
        put_fixed64_be(b, parent_id);
    }
    if (name_len) {
        put_byte(b, 0x2a);
        put_varint(b, (uint64_t)name_len);
        put_bytes(b, name_utf8, name_len);
    }
    put_byte(b, 0x30);
    put_byte(b, (unsigned char)(kind_value + 1)); /* OTLP SpanKind is the SDK's value + 1 */
    put_byte(b, 0x39);
    put_fixed64_le(b, start_ns);
    put_byte(b, 0x41);
    put_fixed64_le(b, end_ns);
    {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(items, &pos, &key, &value)) {
            if (put_attribute(b, key, value) < 0)
                goto out;
        }
    }
    if (buf_reserve(b, 4 + 6) < 0)
        goto out;
    put_byte(b, 0x7a); /* Status: an empty message for UNSET, else its code */
    if (code == 0) {
        put_byte(b, 0x00);
    } else {
        put_byte(b, 0x02);
        put_byte(b, 0x18);
        put_byte(b, (unsigned char)code);
    }
    put_byte(b, 0x85); /* flags (fixed32): has-is-remote, and is-remote for a remote parent */
    put_byte(b, 0x01);
    put_byte(b, 0x00);
    put_byte(b, remote ? 0x03 : 0x01);
    put_byte(b, 0x00);
    put_byte(b, 0x00);
    done = 1;

out:
    if (PyErr_Occurred())
        PyErr_Clear();
    Py_XDECREF(context);
    Py_XDECREF(parent);
    Py_XDECREF(events);
    Py_XDECREF(links);
    Py_XDECREF(attributes);
    Py_XDECREF(status);
    Py_XDECREF(start);
    Py_XDECREF(end);
    Py_XDECREF(kind);
    Py_XDECREF(name);
    Py_XDECREF(items);
    return done;
}

/* plain_attributes(mapping): the twin of otel_uwsgi.traces.lean.span._plain_py for an exact dict (non-empty exact str keys, exact str/int/float/bool values); any other mapping is
 * handed to the Python function given to set_plain_fallback(). */
static PyObject *PlainFallback;

PyObject *plain_attributes(PyObject *module, PyObject *attributes) {
    if (!PyDict_CheckExact(attributes)) {
        if (PlainFallback == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "otel_uwsgi.native._accel.set_plain_fallback() was not called");
            return NULL;
        }
        return PyObject_CallOneArg(PlainFallback, attributes);
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(attributes, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || PyUnicode_GET_LENGTH(key) == 0)
            Py_RETURN_FALSE;
        if (!(PyUnicode_CheckExact(value) || PyLong_CheckExact(value) || PyFloat_CheckExact(value) ||
              PyBool_Check(value)))
            Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyObject *set_plain_fallback(PyObject *module, PyObject *fallback) {
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "set_plain_fallback() needs a callable");
        return NULL;
    }
    Py_INCREF(fallback);
    Py_XSETREF(PlainFallback, fallback);
    Py_RETURN_NONE;
}


/* server_attributes(environ, capture_all_methods): otel_uwsgi.instrumentation.fast.http.request_attributes for
 * an exact dict environ whose values are the exact str a WSGI server sends, with every key its
 * one-display branch needs; None for anything else (the Python function then decides).  The
 * known methods, the two look-up caches and the user-agent classifier are the Python module's
 * own, handed over by set_http_helpers(). */
static PyObject *KnownMethods, *PortCache, *AgentCache, *DetectAgent;
static Py_ssize_t CacheLimit;
static PyObject *s_upper, *s_strip, *s_other, *s_http_prefix, *k_request_method, *k_server_name, *k_scheme,
    *k_host, *k_server_port, *k_raw_uri, *k_request_uri, *k_remote_addr, *k_remote_port, *k_remote_host,
    *k_user_agent, *k_protocol, *a_method, *a_server_name, *a_scheme, *a_host_name, *a_host, *a_host_port,
    *a_target, *a_peer_ip, *a_peer_port, *a_peer_name, *a_user_agent, *a_synthetic, *a_flavor;

/* environ[key] when it is an exact str (a borrowed reference); NULL when absent or anything else,
 * with *odd set for "present but not a str" (the caller then leaves the request to Python). */
static PyObject *text(PyObject *environ, PyObject *key, int *odd) {
    PyObject *v = PyDict_GetItemWithError(environ, key);
    if (v == NULL) {
        if (PyErr_Occurred()) {
            PyErr_Clear();
            *odd = 1;
        }
        return NULL;
    }
    if (!PyUnicode_CheckExact(v)) {
        *odd = 1;
        return NULL;
    }
    return v;
}

/* cache[key], or compute(key) stored there (a full cache starts over): fast.config._memo.  NULL
 * with the error cleared when compute fails (ValueError from int(): Python decides). */
static PyObject *memo(PyObject *cache, PyObject *key, PyObject *(*compute)(PyObject *)) {
    PyObject *v = PyDict_GetItemWithError(cache, key);
    if (v != NULL) {
        Py_INCREF(v);
        return v;
    }
    if (PyErr_Occurred())
        goto fail;
    if ((v = compute(key)) == NULL)
        goto fail;
    if (PyDict_GET_SIZE(cache) >= CacheLimit)
        PyDict_Clear(cache);
    if (PyDict_SetItem(cache, key, v) < 0) {
        Py_DECREF(v);
        goto fail;
    }
    return v;
fail:
    PyErr_Clear();
    return NULL;
}

static PyObject *to_int(PyObject *textual) { return PyLong_FromUnicodeObject(textual, 10); }

static PyObject *detect_agent(PyObject *agent) { return PyObject_CallOneArg(DetectAgent, agent); }

static int put(PyObject *attrs, PyObject *key, PyObject *value) { return PyDict_SetItem(attrs, key, value); }

/* A non-empty ASCII str of A-Z only (an HTTP method as clients send it): its .upper() and
 * .strip() are itself. */
static int plain_upper(PyObject *s) {
    if (!PyUnicode_CheckExact(s) || !PyUnicode_IS_ASCII(s) || PyUnicode_GET_LENGTH(s) == 0)
        return 0;
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(s);
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(s); i++)
        if (p[i] < 'A' || p[i] > 'Z')
            return 0;
    return 1;
}

PyObject *server_attributes(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "server_attributes(environ, capture_all_methods)");
        return NULL;
    }
    PyObject *environ = args[0];
    int capture_all = PyObject_IsTrue(args[1]);
    if (KnownMethods == NULL || capture_all < 0 || !PyDict_CheckExact(environ)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    int odd = 0;
    PyObject *raw = text(environ, k_request_method, &odd), *server_name = text(environ, k_server_name, &odd),
             *scheme = text(environ, k_scheme, &odd), *host = text(environ, k_host, &odd),
             *port = text(environ, k_server_port, &odd), *remote_addr = text(environ, k_remote_addr, &odd);
    PyObject *target = text(environ, k_raw_uri, &odd); /* RAW_URI, else (absent) REQUEST_URI */
    if (target == NULL && !odd)
        target = text(environ, k_request_uri, &odd);
    if (odd || raw == NULL || server_name == NULL || scheme == NULL || host == NULL || port == NULL ||
        target == NULL || remote_addr == NULL)
        goto none;
    if (!PyUnicode_GET_LENGTH(scheme) || !PyUnicode_GET_LENGTH(host) || !PyUnicode_GET_LENGTH(port) ||
        !PyUnicode_GET_LENGTH(target) || !PyUnicode_GET_LENGTH(remote_addr))
        goto none;

    PyObject *attrs = NULL, *method = NULL, *upper = NULL, *host_port = NULL, *number = NULL, *synthetic = NULL,
             *flavor_upper = NULL, *flavor_rest = NULL;
    if (plain_upper(raw)) { /* "GET": already what .upper() would give */
        upper = raw;
        Py_INCREF(upper);
    } else if ((upper = PyObject_CallMethodNoArgs(raw, s_upper)) == NULL) {
        goto fail;
    }
    if (!capture_all) {
        int known = PySet_Contains(KnownMethods, upper);
        if (known < 0)
            goto fail;
        if (!known) {
            Py_INCREF(s_other);
            Py_SETREF(upper, s_other);
        }
    }
    if (plain_upper(upper)) { /* nothing for .strip() to take away */
        method = upper;
        Py_INCREF(method);
    } else if ((method = PyObject_CallMethodNoArgs(upper, s_strip)) == NULL) {
        goto fail;
    }
    if (!PyUnicode_CheckExact(method) || PyUnicode_GET_LENGTH(method) == 0)
        goto fail;
    if ((host_port = memo(PortCache, port, to_int)) == NULL)
        goto fail;
#if PY_VERSION_HEX < 0x030D0000
    if ((attrs = _PyDict_NewPresized(14)) == NULL) /* the 9-14 attributes without a resize */
        goto fail;
#else
    if ((attrs = PyDict_New()) == NULL)
        goto fail;
#endif
    if (put(attrs, a_method, method) < 0 || put(attrs, a_server_name, server_name) < 0 ||
        put(attrs, a_scheme, scheme) < 0 || put(attrs, a_host_name, host) < 0 || put(attrs, a_host, host) < 0 ||
        put(attrs, a_host_port, host_port) < 0 || put(attrs, a_target, target) < 0 ||
        put(attrs, a_peer_ip, remote_addr) < 0)
        goto fail;
    /* fast.config._peer_and_rest */
    PyObject *remote_port = text(environ, k_remote_port, &odd);
    if (remote_port != NULL && PyUnicode_GET_LENGTH(remote_port)) {
        if ((number = PyLong_FromUnicodeObject(remote_port, 10)) == NULL)
            PyErr_Clear(); /* int() failed: no net.peer.port, as in Python */
        else if (put(attrs, a_peer_port, number) < 0)
            goto fail;
    }
    PyObject *remote_host = text(environ, k_remote_host, &odd);
    if (remote_host != NULL && PyUnicode_GET_LENGTH(remote_host)) {
        int same = PyUnicode_Compare(remote_host, remote_addr) == 0;
        if (PyErr_Occurred())
            goto fail;
        if (!same && put(attrs, a_peer_name, remote_host) < 0)
            goto fail;
    }
    PyObject *agent = text(environ, k_user_agent, &odd);
    if (agent != NULL && PyUnicode_GET_LENGTH(agent)) {
        if (put(attrs, a_user_agent, agent) < 0)
            goto fail;
        if ((synthetic = memo(AgentCache, agent, detect_agent)) == NULL)
            goto fail;
        int truthy = PyObject_IsTrue(synthetic);
        if (truthy < 0 || (truthy && put(attrs, a_synthetic, synthetic) < 0))
            goto fail;
    }
    PyObject *flavor = text(environ, k_protocol, &odd);
    if (odd)
        goto fail;
    if (flavor != NULL) {
        if ((flavor_upper = PyObject_CallMethodNoArgs(flavor, s_upper)) == NULL)
            goto fail;
        int prefixed = PyUnicode_Tailmatch(flavor_upper, s_http_prefix, 0, PY_SSIZE_T_MAX, -1);
        if (prefixed < 0)
            goto fail;
        if (prefixed) {
            if ((flavor_rest = PyUnicode_Substring(flavor, 5, PY_SSIZE_T_MAX)) == NULL)
                goto fail;
            flavor = flavor_rest;
        }
        if (PyUnicode_GET_LENGTH(flavor) && put(attrs, a_flavor, flavor) < 0)
            goto fail;
    }
    Py_DECREF(method);
    Py_DECREF(upper);
    Py_DECREF(host_port);
    Py_XDECREF(number);
    Py_XDECREF(synthetic);
    Py_XDECREF(flavor_upper);
    Py_XDECREF(flavor_rest);
    return attrs;
fail:
    PyErr_Clear();
    Py_XDECREF(attrs);
    Py_XDECREF(method);
    Py_XDECREF(upper);
    Py_XDECREF(host_port);
    Py_XDECREF(number);
    Py_XDECREF(synthetic);
    Py_XDECREF(flavor_upper);
    Py_XDECREF(flavor_rest);
none:
    PyErr_Clear();
    Py_RETURN_NONE;
}

static PyObject *set_http_helpers(PyObject *module, PyObject *args) {
    PyObject *known, *ports, *agents, *detect;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "O!O!O!On:set_http_helpers", &PyFrozenSet_Type, &known, &PyDict_Type, &ports,
                          &PyDict_Type, &agents, &detect, &limit))
        return NULL;
    PyObject **slots[] = {&KnownMethods, &PortCache, &AgentCache, &DetectAgent};
    PyObject *values[] = {known, ports, agents, detect};
    for (int i = 0; i < 4; i++) {
        Py_INCREF(values[i]);
        Py_XSETREF(*slots[i], values[i]);
    }
    CacheLimit = limit;
    Py_RETURN_NONE;
}

#define HEADROOM 6 /* tag 0x12 and the body's length as a varint */

PyObject *span_field(PyObject *module, PyObject *span) {
    if (SpanContextType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "otel_uwsgi.native._accel.configure() was not called");
        return NULL;
    }
    Buffer b;
    b.data = b.stack;
    b.cap = sizeof(b.stack);
    b.len = HEADROOM;
    PyObject *result = Py_None;
    if (encode(&b, span)) {
        Py_ssize_t body = b.len - HEADROOM;
        int n = varint_size((uint64_t)body);
        if (n > HEADROOM - 1) { /* a span of 32 GiB: Python's business */
            buf_free(&b);
            Py_RETURN_NONE;
        }
        Py_ssize_t at = HEADROOM - 1 - n;
        Py_ssize_t saved = b.len;
        b.len = at;
        put_byte(&b, 0x12);
        put_varint(&b, (uint64_t)body);
        b.len = saved;
        result = PyBytes_FromStringAndSize((const char *)b.data + at, saved - at);
        buf_free(&b);
        return result;
    }
    buf_free(&b);
    Py_RETURN_NONE;
}


/* ---------------------------------------------------------------- the span journal's hot writes
 * Twins of otel_uwsgi.traces.journal.region.Region.append (a record into the ring) and of
 * JournalSpanProcessor.on_start's slot (Region.put_slot of the FIXED fields and a tail): the same
 * bytes (tests/unit/traces/journal/test_native_journal.py), without the Python calls between. */

static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

/* zlib.crc32(data, crc), eight bytes a step (slicing-by-8: ~1.5 instructions a byte against ~7). */
uint32_t crc32_update(uint32_t crc, const unsigned char *p, Py_ssize_t n) {
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^
              crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
              crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static inline void le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t read_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int ssize_arg(PyObject *v, Py_ssize_t *out) {
    *out = PyLong_AsSsize_t(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* ring_append(buffer, head_at, tail_at, ring_at, capacity, head, span_id, prefix, field) -> new head, or -1
 * when the ring has no room (the tail is read from the buffer, where the shipper moves it). */
static PyObject *ring_append(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9 || !PyBytes_CheckExact(args[7]) || !PyBytes_CheckExact(args[8])) {
        PyErr_SetString(PyExc_TypeError, "ring_append(buffer, head_at, tail_at, ring_at, capacity, head, span_id, "
                                         "prefix: bytes, field: bytes)");
        return NULL;
    }
    Py_ssize_t head_at, tail_at, ring_at, capacity;
    uint64_t head, span_id;
    if (ssize_arg(args[1], &head_at) || ssize_arg(args[2], &tail_at) || ssize_arg(args[3], &ring_at) ||
        ssize_arg(args[4], &capacity))
        return NULL;
    head = PyLong_AsUnsignedLongLong(args[5]);
    if (head == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    span_id = PyLong_AsUnsignedLongLong(args[6]);
    if (span_id == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0)
        return NULL;
    unsigned char *base = view.buf;
    if (capacity <= 0 || ring_at < 0 || ring_at + capacity > view.len || head_at < 0 || head_at + 8 > view.len ||
        tail_at < 0 || tail_at + 8 > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "ring_append(): offsets outside the buffer");
        return NULL;
    }
    int64_t written = ring_write(base, head_at, tail_at, ring_at, (uint64_t)capacity, head, span_id,
                                 (const unsigned char *)PyBytes_AS_STRING(args[7]), PyBytes_GET_SIZE(args[7]),
                                 (const unsigned char *)PyBytes_AS_STRING(args[8]), PyBytes_GET_SIZE(args[8]));
    PyBuffer_Release(&view);
    return written < 0 ? PyLong_FromLong(-1) : PyLong_FromUnsignedLongLong((uint64_t)written);
}

/* The record prefix + field at head in the ring of the buffer at base (offsets checked by the caller):
 * the new head, or -1 when the ring has no room (nothing written then). */
int64_t ring_write(unsigned char *base, Py_ssize_t head_at, Py_ssize_t tail_at, Py_ssize_t ring_at, uint64_t cap,
                   uint64_t head, uint64_t span_id, const unsigned char *prefix, Py_ssize_t plen,
                   const unsigned char *field, Py_ssize_t flen) {
    uint64_t n = (uint64_t)(plen + flen), size = (16 + n + 7) & ~(uint64_t)7;
    uint64_t pos = head % cap, skip = pos + size > cap ? cap - pos : 0;
    uint64_t tail = read_le64(base + tail_at);
    if (size > cap || n > 0xFFFFFFFEu || head + skip + size - tail > cap || head > INT64_MAX - size - skip)
        return -1;
    if (skip) {
        le32(base + ring_at + pos, 0xFFFFFFFFu);
        head += skip;
        pos = 0;
    }
    unsigned char *p = base + ring_at + pos;
    uint32_t crc = crc32_update((uint32_t)(span_id & 0xFFFFFFFFu), prefix, plen);
    crc = crc32_update(crc, field, flen);
    le32(p, (uint32_t)n);
    le32(p + 4, crc);
    le64(p + 8, span_id);
    memcpy(p + 16, prefix, plen);
    memcpy(p + 16 + plen, field, flen);
    head += size;
    le64(base + head_at, head); /* last: the record exists from here on */
    return (int64_t)head;
}

/* slot_start(buffer, at, span, tail, thread, slot_size) -> the span id written into the slot at ``at``, or
 * None (not sampled, or not the shape this code knows: the Python code decides). */
PyObject *slot_start(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyBytes_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "slot_start(buffer, at, span, tail: bytes, thread, slot_size)");
        return NULL;
    }
    Py_ssize_t at, slot_size;
    uint64_t thread, hi, lo, span_id, parent_id = 0, start = 0, flags;
    if (ssize_arg(args[1], &at) || ssize_arg(args[5], &slot_size))
        return NULL;
    thread = PyLong_AsUnsignedLongLong(args[4]);
    if (thread == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    PyObject *span = args[2], *result = Py_None;
    PyObject *context = field_get(span, SF_CONTEXT);
    PyObject *parent = context ? field_get(span, SF_PARENT) : NULL;
    PyObject *start_time = parent ? field_get(span, SF_START_TIME) : NULL;
    if (start_time == NULL) {
        PyErr_Clear();
        goto done;
    }
    int remote = 0;
    if (Py_TYPE(context) != (PyTypeObject *)SpanContextType || PyTuple_GET_SIZE(context) < 4 ||
        u128(PyTuple_GET_ITEM(context, 0), &hi, &lo) || u64(PyTuple_GET_ITEM(context, 1), &span_id))
        goto done;
    PyObject *flags_obj = PyTuple_GET_ITEM(context, 3);
    if (!PyLong_Check(flags_obj))
        goto done;
    flags = PyLong_AsUnsignedLongLong(flags_obj);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        goto done;
    }
    if (!(flags & 1))
        goto done;
    if (parent != Py_None) {
        if (Py_TYPE(parent) != (PyTypeObject *)SpanContextType || PyTuple_GET_SIZE(parent) < 3 ||
            u64(PyTuple_GET_ITEM(parent, 1), &parent_id) || (remote = truth(PyTuple_GET_ITEM(parent, 2))) < 0)
            goto done;
    }
    if (start_time != Py_None && u64(start_time, &start))
        goto done;
    Py_ssize_t tlen = PyBytes_GET_SIZE(args[3]);
    Py_ssize_t blob = 60 + tlen;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        goto done;
    }
    if (at < 0 || blob + 16 > slot_size || at + 16 + blob > view.len) {
        PyBuffer_Release(&view);
        goto done;
    }
    unsigned char *p = (unsigned char *)view.buf + at;
    unsigned char *b = p + 16;
    le64(b, hi);
    le64(b + 8, lo);
    le64(b + 16, span_id);
    le64(b + 24, parent_id);
    b[32] = (unsigned char)remote;
    b[33] = 2; /* OTLP SPAN_KIND_SERVER */
    b[34] = b[35] = 0;
    le64(b + 36, thread);
    le64(b + 44, start);
    le64(b + 52, 0);
    memcpy(b + 60, PyBytes_AS_STRING(args[3]), tlen);
    le32(p, 0); /* free while written */
    le32(p + 4, (uint32_t)blob);
    le32(p + 8, crc32_update(0, b, blob));
    le32(p + 12, 0);
    le32(p, 1); /* busy: complete */
    PyBuffer_Release(&view);
    result = PyTuple_GET_ITEM(context, 1);
done:
    Py_XDECREF(context);
    Py_XDECREF(parent);
    Py_XDECREF(start_time);
    Py_INCREF(result);
    return result;
}

/* ring_batch(buffer, ring_at, capacity, start, end, limit, resource) -> (body, count, next) | None: the
 * records from byte counter start (up to limit, not past end) as one ExportTraceServiceRequest under
 * resource, as otel_uwsgi.traces.journal.ship.body(resource, payloads) of Region.read(..., verify=False)
 * makes it; None for anything unexpected (more than 32 scopes, a record past the end): Python decides. */
#define MAX_GROUPS 32

/* The record at byte counter *offset, before end (wrap markers skipped): its header, or NULL. */
static const unsigned char *ring_record(const unsigned char *ring, uint64_t cap, uint64_t *offset, uint64_t end,
                                        uint32_t *n) {
    while (*offset < end) {
        uint64_t pos = *offset % cap;
        const unsigned char *p = ring + pos;
        if (cap - pos < 16 || (*n = p[0] | (p[1] << 8) | (p[2] << 16) | ((uint32_t)p[3] << 24)) == 0xFFFFFFFFu) {
            *offset += cap - pos;
            continue;
        }
        return p;
    }
    return NULL;
}
typedef struct {
    const unsigned char *key; /* the scope prefix: <HH lengths, scope field, schema field */
    Py_ssize_t key_len, fields_len;
} Group;

static PyObject *ring_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7 || !PyBytes_CheckExact(args[6])) {
        PyErr_SetString(PyExc_TypeError, "ring_batch(buffer, ring_at, capacity, start, end, limit, resource: bytes)");
        return NULL;
    }
    Py_ssize_t ring_at, capacity, limit;
    if (ssize_arg(args[1], &ring_at) || ssize_arg(args[2], &capacity) || ssize_arg(args[5], &limit))
        return NULL;
    uint64_t start = PyLong_AsUnsignedLongLong(args[3]), end = PyLong_AsUnsignedLongLong(args[4]);
    if (PyErr_Occurred())
        return NULL;
    const unsigned char *resource = (const unsigned char *)PyBytes_AS_STRING(args[6]);
    Py_ssize_t rlen = PyBytes_GET_SIZE(args[6]);
    if (rlen < 4 || capacity <= 0 || limit <= 0)
        Py_RETURN_NONE;
    Py_ssize_t ra = resource[0] | (resource[1] << 8), rb = resource[2] | (resource[3] << 8);
    if (4 + ra + rb != rlen)
        Py_RETURN_NONE;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (ring_at < 0 || ring_at + capacity > view.len) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    const unsigned char *ring = (const unsigned char *)view.buf + ring_at;
    uint64_t cap = (uint64_t)capacity, offset = start;
    Group groups[MAX_GROUPS];
    int ngroups = 0;
    Py_ssize_t count = 0;
    PyObject *result = Py_None;
    /* Pass 1: group keys and sizes. */
    const unsigned char *p;
    uint32_t n;
    while (count < limit && (p = ring_record(ring, cap, &offset, end, &n)) != NULL) {
        uint64_t pos = offset % cap;
        uint64_t size = (16 + (uint64_t)n + 7) & ~(uint64_t)7;
        if (pos + size > cap || offset + size > end || n < 4)
            goto out;
        const unsigned char *payload = p + 16;
        Py_ssize_t cut = 4 + (payload[0] | (payload[1] << 8)) + (payload[2] | (payload[3] << 8));
        if (cut > (Py_ssize_t)n)
            goto out;
        int g;
        for (g = 0; g < ngroups; g++)
            if (groups[g].key_len == cut && memcmp(groups[g].key, payload, cut) == 0)
                break;
        if (g == ngroups) {
            if (ngroups == MAX_GROUPS)
                goto out;
            groups[g].key = payload;
            groups[g].key_len = cut;
            groups[g].fields_len = 0;
            ngroups++;
        }
        groups[g].fields_len += (Py_ssize_t)n - cut;
        count++;
        offset += size;
    }
    if (count == 0)
        goto out;
    /* Sizes: ScopeSpans = 0x12 len (scope field, span fields, schema field); ResourceSpans likewise. */
    Py_ssize_t inner_r = ra + rb;
    for (int g = 0; g < ngroups; g++) {
        Py_ssize_t inner = groups[g].key_len - 4 + groups[g].fields_len;
        inner_r += 1 + varint_size((uint64_t)inner) + inner;
    }
    Py_ssize_t total = 1 + varint_size((uint64_t)inner_r) + inner_r;
    PyObject *body = PyBytes_FromStringAndSize(NULL, total);
    if (body == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Buffer out;
    out.data = (unsigned char *)PyBytes_AS_STRING(body);
    out.cap = total;
    out.len = 0;
    put_byte(&out, 0x0a);
    put_varint(&out, (uint64_t)inner_r);
    put_bytes(&out, resource + 4, ra);
    for (int g = 0; g < ngroups; g++) {
        const unsigned char *key = groups[g].key;
        Py_ssize_t a = key[0] | (key[1] << 8), b = key[2] | (key[3] << 8);
        Py_ssize_t inner = groups[g].key_len - 4 + groups[g].fields_len;
        put_byte(&out, 0x12);
        put_varint(&out, (uint64_t)inner);
        put_bytes(&out, key + 4, a);
        /* Pass 2, per group: its span fields in record order. */
        uint64_t at = start;
        Py_ssize_t seen = 0;
        while (seen < count && (p = ring_record(ring, cap, &at, offset, &n)) != NULL) {
            const unsigned char *payload = p + 16;
            if (memcmp(payload, key, groups[g].key_len) == 0)
                put_bytes(&out, payload + groups[g].key_len, (Py_ssize_t)n - groups[g].key_len);
            at += (16 + (uint64_t)n + 7) & ~(uint64_t)7;
            seen++;
        }
        put_bytes(&out, key + 4 + a, b);
    }
    put_bytes(&out, resource + 4 + ra, rb);
    if (out.len != total) {
        Py_DECREF(body);
        goto out;
    }
    result = Py_BuildValue("(NnK)", body, count, (unsigned long long)offset);
    PyBuffer_Release(&view);
    return result;
out:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *span_context, *status, *span_kind, *bounded_attributes, *bounded_list, *default_trace_state;
    if (!PyArg_ParseTuple(args, "OOOOOO:configure", &span_context, &status, &span_kind, &bounded_attributes,
                          &bounded_list, &default_trace_state))
        return NULL;
    if (!PyType_Check(span_context) || !PyType_IsSubtype((PyTypeObject *)span_context, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "configure(): SpanContext must be a tuple subclass");
        return NULL;
    }
    PyObject **slots[] = {&SpanContextType, &StatusType,      &SpanKindType,     &BoundedAttributesType,
                          &BoundedListType, &DefaultTraceState};
    PyObject *values[] = {span_context, status, span_kind, bounded_attributes, bounded_list, default_trace_state};
    for (int i = 0; i < 6; i++) {
        Py_INCREF(values[i]);
        Py_XSETREF(*slots[i], values[i]);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"span_field", span_field, METH_O,
     "span_field(span) -> bytes | None: the ScopeSpans.spans field of a span of the common shape, "
     "as otel_uwsgi.export.encoder._direct_span writes it; None when the Python code must decide."},
    {"plain_attributes", plain_attributes, METH_O,
     "plain_attributes(mapping) -> bool: non-empty str keys and str/int/float/bool values only "
     "(otel_uwsgi.traces.lean.span._plain_py, for an exact dict; other mappings go to the fallback)."},
    {"set_plain_fallback", set_plain_fallback, METH_O, "set_plain_fallback(function): plain_attributes of non-dicts"},
    {"server_attributes", (PyCFunction)(void (*)(void))server_attributes, METH_FASTCALL,
     "server_attributes(environ, capture_all_methods) -> dict | None: otel_uwsgi.instrumentation.fast.http.request_attributes "
     "for a common WSGI environ (exact str values); None: the Python function decides."},
    {"set_http_helpers", set_http_helpers, METH_VARARGS,
     "set_http_helpers(KNOWN_METHODS, port_cache, user_agent_cache, detect_synthetic_user_agent, cache_limit)"},
    {"ring_append", (PyCFunction)(void (*)(void))ring_append, METH_FASTCALL,
     "ring_append(buffer, head_at, tail_at, ring_at, capacity, head, span_id, prefix, field) -> new head, or -1 "
     "when full: otel_uwsgi.traces.journal.region.Region.append of prefix + field."},
    {"slot_start", (PyCFunction)(void (*)(void))slot_start, METH_FASTCALL,
     "slot_start(buffer, at, span, tail, thread, slot_size) -> span id | None: a sampled server span's in-flight "
     "slot, as JournalSpanProcessor.on_start writes it."},
    {"ring_batch", (PyCFunction)(void (*)(void))ring_batch, METH_FASTCALL,
     "ring_batch(buffer, ring_at, capacity, start, end, limit, resource) -> (body, count, next) | None: "
     "otel_uwsgi.traces.journal.ship.body of the records Region.read(start, end, limit, verify=False) returns."},
    {"lean_start", (PyCFunction)(void (*)(void))lean_start, METH_FASTCALL | METH_KEYWORDS,
     "lean_start(tracer, name, context=None, kind=INTERNAL, attributes=None, start_time=None): "
     "LeanTracer._start_py in C (_lifecycle.c)."},
    {"lean_end", (PyCFunction)(void (*)(void))lean_end, METH_FASTCALL | METH_KEYWORDS,
     "lean_end(span, end_time=None): LeanSpan._end_py in C (_lifecycle.c)."},
    {"configure_server", configure_server, METH_VARARGS,
     "configure_server(var, span_key, Context, INVALID_SPAN, propagate, known_spans, SERVER, INTERNAL, lean_classes, "
     "detach_failed) (_server.c)."},
    {"close_server_span", (PyCFunction)(void (*)(void))close_server_span, METH_FASTCALL,
     "close_server_span(span, token, meta, meta_key, route, status_code) -> True | None (_server.c)."},
    {"configure_django", configure_django, METH_VARARGS,
     "configure_django(globals, derive, KNOWN_METHODS, propagators' globals, warn_once, meta_key) (_django.c)."},
    {"open_server_span", (PyCFunction)(void (*)(void))open_server_span, METH_FASTCALL,
     "open_server_span(lazy_tracer, extractor, environ, name, attributes[, key, value, start_time]) -> "
     "(span, token, server) | None (_server.c)."},
    {"lean_update_name", (PyCFunction)(void (*)(void))lean_update_name, METH_FASTCALL | METH_KEYWORDS,
     "lean_update_name(span, name): LeanSpan._update_name_py in C (_lifecycle.c)."},
    {"lean_set_checked", (PyCFunction)(void (*)(void))lean_set_checked, METH_FASTCALL | METH_KEYWORDS,
     "lean_set_checked(span, attributes): LeanSpan._set_checked_py in C (_lifecycle.c)."},
    {"journal_on_start", (PyCFunction)(void (*)(void))journal_on_start, METH_FASTCALL | METH_KEYWORDS,
     "journal_on_start(processor, span, parent_context=None): JournalSpanProcessor._on_start_py in C (_lifecycle.c)."},
    {"journal_on_end", (PyCFunction)(void (*)(void))journal_on_end, METH_FASTCALL | METH_KEYWORDS,
     "journal_on_end(processor, span): JournalSpanProcessor._on_end_py in C (_lifecycle.c)."},
    {"as_method", as_method, METH_O, "as_method(function): the function, bound like a method as a class attribute"},
    {"configure_slots", configure_slots, METH_VARARGS,
     "configure_slots(LeanSpan, LeanAttributes) -> (bool, bool): read and write their __slots__ fields at their "
     "offsets (_slots.c)."},
    {"configure_lifecycle", configure_lifecycle, METH_O, "configure_lifecycle(noop): the span metrics' no-op"},
    {"configure", configure, METH_VARARGS,
     "configure(SpanContext, Status, SpanKind, BoundedAttributes, BoundedList, DEFAULT_TRACE_STATE)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "otel_uwsgi.native._accel",
                                        "otel_uwsgi's common span encoding and attribute check, in C.", -1, methods,
                                        NULL, NULL, NULL, NULL};

int intern_names(const InternedName *names, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (*names[i].slot == NULL && (*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    return 0;
}

PyMODINIT_FUNC PyInit__accel(void) {
    InternedName names[] = {
        {&s_events, "_events"},           {&s_links, "_links"},           {&s_status, "_status"},
        {&s_dq, "_dq"},                   {&s_dropped, "dropped"},
        {&s_description, "_description"},
        {&s_status_code, "_status_code"}, {&s_value, "_value_"},
        {&s_upper, "upper"},              {&s_strip, "strip"},            {&s_other, "_OTHER"},
        {&s_http_prefix, "HTTP/"},        {&k_request_method, "REQUEST_METHOD"},
        {&k_server_name, "SERVER_NAME"},  {&k_scheme, "wsgi.url_scheme"}, {&k_host, "HTTP_HOST"},
        {&k_server_port, "SERVER_PORT"},  {&k_raw_uri, "RAW_URI"},        {&k_request_uri, "REQUEST_URI"},
        {&k_remote_addr, "REMOTE_ADDR"},  {&k_remote_port, "REMOTE_PORT"}, {&k_remote_host, "REMOTE_HOST"},
        {&k_user_agent, "HTTP_USER_AGENT"}, {&k_protocol, "SERVER_PROTOCOL"},
        {&a_method, "http.method"},       {&a_server_name, "http.server_name"}, {&a_scheme, "http.scheme"},
        {&a_host_name, "net.host.name"},  {&a_host, "http.host"},       {&a_host_port, "net.host.port"},
        {&a_target, "http.target"},       {&a_peer_ip, "net.peer.ip"},  {&a_peer_port, "net.peer.port"},
        {&a_peer_name, "net.peer.name"},  {&a_user_agent, "http.user_agent"},
        {&a_synthetic, "user_agent.synthetic.type"}, {&a_flavor, "http.flavor"},
    };
    if (intern_names(names, sizeof(names) / sizeof(names[0])) < 0)
        return NULL;
    crc_init();
    if (lifecycle_init() < 0 || slots_init() < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module != NULL && django_add(module) < 0)
        Py_CLEAR(module);
    return module;
}

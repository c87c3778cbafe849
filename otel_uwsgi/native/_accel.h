/* What _accel.c (encoding, attribute checks, the journal's ring) shares with _lifecycle.c (a lean span's
 * start and end, the journal's on_end): both are compiled into otel_uwsgi.native._accel. */
#ifndef OTEL_UWSGI_ACCEL_H
#define OTEL_UWSGI_ACCEL_H

#include <Python.h>
#include <stdint.h>

/* opentelemetry.trace.SpanContext, handed over by configure() (NULL before). */
extern PyObject *SpanContextType;

/* span_field(module, span): the ScopeSpans.spans field of a span of the common shape, or None. */
PyObject *span_field(PyObject *module, PyObject *span);
/* plain_attributes(module, mapping): Py_True / Py_False (a new reference), NULL on error. */
PyObject *plain_attributes(PyObject *module, PyObject *attributes);
/* An exact int in [0, 2**128) as two halves: 0, else -1 (no exception set). */
int u128(PyObject *v, uint64_t *hi, uint64_t *lo);
/* zlib.crc32(data, crc). */
uint32_t crc32_update(uint32_t crc, const unsigned char *p, Py_ssize_t n);
/* A journal record (prefix + field) at head: the new head, or -1 when the ring has no room. */
int64_t ring_write(unsigned char *base, Py_ssize_t head_at, Py_ssize_t tail_at, Py_ssize_t ring_at, uint64_t cap,
                   uint64_t head, uint64_t span_id, const unsigned char *prefix, Py_ssize_t plen,
                   const unsigned char *field, Py_ssize_t flen);

/* slot_start(module, [buffer, at, span, tail, thread, slot_size]): the span id written, or None. */
PyObject *slot_start(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* _lifecycle.c */
PyObject *lean_start(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *lean_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
/* Nobody holds a lean span's lock and it has not ended: 1, 0, -1 on error. */
int span_changeable(PyObject *span);
PyObject *lean_update_name(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *lean_set_checked(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *journal_on_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *journal_on_start(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *as_method(PyObject *module, PyObject *function);
PyObject *configure_lifecycle(PyObject *module, PyObject *noop);
int lifecycle_init(void);

/* _slots.c: the fields of a lean span (LeanSpan.__slots__) and of its attributes (LeanAttributes.__slots__) */
enum {
    SF_NAME, SF_CONTEXT, SF_KIND, SF_PARENT, SF_LOCK, SF_ATTRIBUTES, SF_START_TIME, SF_END_TIME,
    AF_DICT, AF_MAXLEN, AF_DROPPED, AF_MAX_VALUE_LEN, AF_LOCK, AF_IMMUTABLE,
    SF_COUNT
};
/* obj.<field>: a new reference, NULL with Python's AttributeError (any object). */
PyObject *field_get(PyObject *obj, int field);
/* obj.<field> = value: 0, -1 on error (any object). */
int field_set(PyObject *obj, int field, PyObject *value);
/* Whether obj is exactly the configured LeanAttributes. */
int is_lean_attributes(PyObject *obj);
PyObject *configure_slots(PyObject *module, PyObject *args);
int slots_init(void);

/* A name each C file interns once: its text, and the static it is kept in. */
typedef struct {
    PyObject **slot;
    const char *text;
} InternedName;
/* Each name's text interned into its slot where the slot is still NULL: 0, -1 on error (_accel.c). */
int intern_names(const InternedName *names, size_t count);

/* server_attributes(module, [environ, capture_all_methods]): the request attributes, or None (_accel.c). */
PyObject *server_attributes(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* _server.c */
PyObject *configure_server(PyObject *module, PyObject *args);
PyObject *open_server_span(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *close_server_span(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
/* callable(arg), or callable() when arg is NULL, with the raised exception as the one being handled
 * (what logger.exception() reports in an except block); the exception is consumed, and so is any
 * failure of the call. */
void call_handling(PyObject *callable, PyObject *arg);

/* _django.c */
PyObject *configure_django(PyObject *module, PyObject *args);
/* DjangoMiddleware and RequestState added to the module: 0, -1 on error. */
int django_add(PyObject *module);

#endif

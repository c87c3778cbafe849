/* A lean span's per-span fields (otel_uwsgi.traces.lean.span.LeanSpan.__slots__), read and written
 * at their places in the object.
 *
 * PyObject_GetAttr and PyObject_SetAttr on a span cost ~200-280 instructions each (a type lookup,
 * then the descriptor or the instance dict), and a traced request's span start, end and journal
 * record read or write its fields ~40 times.  LeanSpan keeps the fields every lean span has from its
 * start in __slots__, so each sits at the same offset in every lean span.  configure_slots(LeanSpan)
 * takes the offsets from the member descriptors Python made for them, each checked to be a writable
 * object slot of LeanSpan itself; span_get and span_set then use them for an instance of LeanSpan
 * whose slot is set.  Anything else (another span type, an unset slot, a LeanSpan whose descriptors
 * are not what this file expects, no configure_slots call) goes through PyObject_GetAttr /
 * PyObject_SetAttr, which give the same result the longer way. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "_accel.h"

#ifdef Py_T_OBJECT_EX /* 3.12's names; structmember.h's are kept for older releases */
#define SLOT_OBJECT Py_T_OBJECT_EX
#define SLOT_READONLY Py_READONLY
#else
#define SLOT_OBJECT T_OBJECT_EX
#define SLOT_READONLY READONLY
#endif

static const char *const FieldText[SF_COUNT] = {"_name",       "_context",    "_kind",     "_parent",
                                               "_lock",       "_attributes", "_start_time", "_end_time"};
static PyObject *FieldName[SF_COUNT];
static PyTypeObject *LeanBase; /* LeanSpan, once its slots passed the checks */
static Py_ssize_t SlotAt[SF_COUNT];

static inline PyObject **slot_of(PyObject *span, int field) {
    if (LeanBase == NULL || !PyObject_TypeCheck(span, LeanBase))
        return NULL;
    return (PyObject **)((char *)span + SlotAt[field]);
}

PyObject *span_get(PyObject *span, int field) {
    PyObject **slot = slot_of(span, field);
    if (slot != NULL && *slot != NULL)
        return Py_NewRef(*slot);
    return PyObject_GetAttr(span, FieldName[field]); /* an unset slot raises Python's AttributeError */
}

int span_set(PyObject *span, int field, PyObject *value) {
    PyObject **slot = slot_of(span, field);
    if (slot == NULL)
        return PyObject_SetAttr(span, FieldName[field], value);
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

int slots_init(void) {
    for (int i = 0; i < SF_COUNT; i++)
        if (FieldName[i] == NULL && (FieldName[i] = PyUnicode_InternFromString(FieldText[i])) == NULL)
            return -1;
    return 0;
}

/* configure_slots(LeanSpan) -> True when the slots are read at their offsets from now on, False when
 * LeanSpan's fields are not the slots this file expects (then every access is PyObject_GetAttr's). */
PyObject *configure_slots(PyObject *module, PyObject *cls) {
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "configure_slots(LeanSpan)");
        return NULL;
    }
    Py_ssize_t at[SF_COUNT];
    int fits = 1;
    for (int i = 0; i < SF_COUNT && fits; i++) {
        PyObject *descr = PyObject_GetAttr(cls, FieldName[i]);
        if (descr == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                return NULL;
            PyErr_Clear();
            fits = 0;
            break;
        }
        fits = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
               ((PyDescrObject *)descr)->d_type == (PyTypeObject *)cls;
        if (fits) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            fits = member->type == SLOT_OBJECT && !(member->flags & SLOT_READONLY) && member->offset > 0;
            at[i] = member->offset;
        }
        Py_DECREF(descr);
    }
    if (!fits) {
        Py_CLEAR(LeanBase);
        Py_RETURN_FALSE;
    }
    memcpy(SlotAt, at, sizeof(at));
    Py_XSETREF(LeanBase, (PyTypeObject *)Py_NewRef(cls));
    Py_RETURN_TRUE;
}

/* A lean span's per-span fields (otel_uwsgi.traces.lean.span.LeanSpan.__slots__) and those of its
 * attributes (LeanAttributes.__slots__), read and written at their places in the object.
 *
 * PyObject_GetAttr and PyObject_SetAttr cost ~200-280 instructions each (a type lookup, then the
 * descriptor or the instance dict), and a traced request's span start, end and journal record read
 * or write these fields ~50 times.  Kept in __slots__, each field sits at the same offset in every
 * instance.  configure_slots(LeanSpan, LeanAttributes) takes the offsets from the member descriptors
 * Python made for them, each checked to be a writable object slot of that very class; field_get and
 * field_set then use them for an instance of the class whose slot is set.  Anything else (another
 * type, an unset slot, a class whose descriptors are not what this file expects, no configure_slots
 * call) goes through PyObject_GetAttr / PyObject_SetAttr, which give the same result the longer way. */
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

static const char *const FieldText[SF_COUNT] = {
    "_name", "_context", "_kind", "_parent", "_lock", "_attributes", "_start_time", "_end_time", /* LeanSpan */
    "_dict", "maxlen", "dropped", "max_value_len", "_lock", "_immutable",                      /* LeanAttributes */
};
static PyObject *FieldName[SF_COUNT];
static PyTypeObject *Owner[2]; /* LeanSpan, LeanAttributes: each once its slots passed the checks */
static Py_ssize_t SlotAt[SF_COUNT];

static inline int owner_of(int field) { return field >= AF_DICT; }

static inline PyObject **slot_of(PyObject *obj, int field) {
    PyTypeObject *owner = Owner[owner_of(field)];
    if (owner == NULL || !PyObject_TypeCheck(obj, owner))
        return NULL;
    return (PyObject **)((char *)obj + SlotAt[field]);
}

PyObject *field_get(PyObject *obj, int field) {
    PyObject **slot = slot_of(obj, field);
    if (slot != NULL && *slot != NULL)
        return Py_NewRef(*slot);
    return PyObject_GetAttr(obj, FieldName[field]); /* an unset slot raises Python's AttributeError */
}

int field_set(PyObject *obj, int field, PyObject *value) {
    PyObject **slot = slot_of(obj, field);
    if (slot == NULL)
        return PyObject_SetAttr(obj, FieldName[field], value);
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

int is_lean_attributes(PyObject *obj) { return Owner[1] != NULL && Py_IS_TYPE(obj, Owner[1]); }

int slots_init(void) {
    for (int i = 0; i < SF_COUNT; i++)
        if (FieldName[i] == NULL && (FieldName[i] = PyUnicode_InternFromString(FieldText[i])) == NULL)
            return -1;
    return 0;
}

/* Whether every field of `cls` (owner 0 or 1) is a writable object slot of cls itself: 1, 0, -1 on error;
 * the offsets in at[]. */
static int slots_fit(PyObject *cls, int owner, Py_ssize_t *at) {
    if (!PyType_Check(cls))
        return 0;
    for (int i = 0; i < SF_COUNT; i++) {
        if (owner_of(i) != owner)
            continue;
        PyObject *descr = PyObject_GetAttr(cls, FieldName[i]);
        if (descr == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                return -1;
            PyErr_Clear();
            return 0;
        }
        int fits = Py_IS_TYPE(descr, &PyMemberDescr_Type) && ((PyDescrObject *)descr)->d_type == (PyTypeObject *)cls;
        if (fits) {
            PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
            fits = member->type == SLOT_OBJECT && !(member->flags & SLOT_READONLY) && member->offset > 0;
            at[i] = member->offset;
        }
        Py_DECREF(descr);
        if (!fits)
            return 0;
    }
    return 1;
}

/* configure_slots(LeanSpan, LeanAttributes) -> (span slots used, attribute slots used): a class whose
 * fields are not the slots this file expects is refused (False), and its fields read through getattr. */
PyObject *configure_slots(PyObject *module, PyObject *args) {
    PyObject *classes[2];
    if (!PyArg_ParseTuple(args, "OO:configure_slots", &classes[0], &classes[1]))
        return NULL;
    Py_ssize_t at[SF_COUNT];
    int fits[2];
    for (int owner = 0; owner < 2; owner++)
        if ((fits[owner] = slots_fit(classes[owner], owner, at)) < 0)
            return NULL;
    for (int i = 0; i < SF_COUNT; i++)
        if (fits[owner_of(i)])
            SlotAt[i] = at[i];
    for (int owner = 0; owner < 2; owner++) {
        if (fits[owner])
            Py_XSETREF(Owner[owner], (PyTypeObject *)Py_NewRef(classes[owner]));
        else
            Py_CLEAR(Owner[owner]);
    }
    return Py_BuildValue("(OO)", fits[0] ? Py_True : Py_False, fits[1] ? Py_True : Py_False);
}

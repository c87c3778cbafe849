/* The stop guard: a brutal stop of a busy uWSGI worker flushes its spans on a thread made ready
 * for it, not inside uWSGI's signal handler.
 *
 * uWSGI's worker handler for SIGINT and SIGTERM (end_me) calls exit() on whatever the signal
 * interrupted.  When that was the interpreter or malloc, a flush run from there crashed
 * (PyObject_GC_UnTrack) or deadlocked until worker-reload-mercy.  With the guard:
 *
 *   1. start() (post-fork, main thread) remembers the main thread and starts a watchdog pthread;
 *      otel-uwsgi's Python stop thread then waits in wait(), without the GIL.
 *   2. guard() (first request, after uWSGI installed its handlers) puts guard_handler in front of
 *      uWSGI's SIGINT / SIGTERM handlers.
 *   3. The first stop signal only wakes the stop thread and the watchdog (sem_post) and asks the
 *      main thread, through Python's own signal machinery (PyErr_SetInterruptEx, async-signal-
 *      safe), to park at its next bytecode boundary, where it holds no half-done state.
 *   4. The stop thread flushes (ordinary Python on a clean thread), then finish() sends the signal
 *      again to the main thread, whose handler now runs uWSGI's own handler: exit() as before,
 *      but with nothing left to flush, so no Python runs in it (exit_handler checks `flushed`).
 *   5. If the stop thread cannot get to run (the main thread holds the GIL in a long C call), the
 *      watchdog ends the wait after exit_wait_ms and the worker exits the old way.
 *
 * Further stop signals while the flush runs are ignored; any signal in a process forked from the
 * worker (getpid() differs), or before the stop thread waits, gets uWSGI's handler unchanged.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { OFF, ARMED, STOPPING, FINISHING };

static atomic_int stage = OFF;
static atomic_int waiting;   /* the stop thread is in wait(): a stop can be handed to it */
static atomic_int flushed;   /* the stop thread's flush is over: exit() needs no Python */
static atomic_int parked;    /* the main thread reached park() */
static atomic_int stop_signal;
static atomic_int fallback;  /* the watchdog ended the wait */
static pid_t guard_pid;
static pthread_t main_thread;
static int park_signal;
static long exit_wait_ms;
static sem_t wake, watch, done, never;
static struct sigaction saved[NSIG];
static PyObject *exit_callback;

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static void block_stop_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++)
        sigaddset(&set, stop_signals[i]);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* uWSGI's own handler for sig, as it would have run without the guard. */
static void run_saved(int sig, siginfo_t *info, void *context) {
    struct sigaction *old = &saved[sig];
    if (old->sa_flags & SA_SIGINFO) {
        if (old->sa_sigaction) old->sa_sigaction(sig, info, context);
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
    }
}

static void guard_handler(int sig, siginfo_t *info, void *context) {
    int saved_errno = errno;
    if (getpid() != guard_pid) { /* a process forked from the worker: uWSGI's behaviour */
        run_saved(sig, info, context);
        errno = saved_errno;
        return;
    }
    int expected = ARMED;
    switch (atomic_load(&stage)) {
    case ARMED:
        if (!atomic_load(&waiting)) { /* no stop thread to hand the flush to */
            run_saved(sig, info, context);
            break;
        }
        if (atomic_compare_exchange_strong(&stage, &expected, STOPPING)) {
            atomic_store(&stop_signal, sig);
            sem_post(&wake);
            sem_post(&watch);
            PyErr_SetInterruptEx(park_signal);
        }
        break;
    case FINISHING:
        /* exit() only on the main thread: the others may be anywhere in the interpreter. */
        if (pthread_equal(pthread_self(), main_thread)) run_saved(sig, info, context);
        break;
    default: /* STOPPING: the flush is under way; a second signal changes nothing */
        break;
    }
    errno = saved_errno;
}

static void signal_main(void) {
    int sig = atomic_load(&stop_signal);
    pthread_kill(main_thread, sig ? sig : SIGINT);
}

static void *watchdog(void *arg) {
    (void)arg;
    while (sem_wait(&watch) != 0 && errno == EINTR) {
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += exit_wait_ms / 1000;
    deadline.tv_nsec += (exit_wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    int rc;
    while ((rc = sem_timedwait(&done, &deadline)) != 0 && errno == EINTR) {
    }
    int expected = STOPPING;
    if (rc != 0 && atomic_compare_exchange_strong(&stage, &expected, FINISHING)) {
        char message[256];
        int n = snprintf(message, sizeof message,
                         "otel-uwsgi: pid %d: the exit flush could not run within %ld ms of the stop signal (the "
                         "main thread holds the interpreter, e.g. in a long C call); exiting the old way\n",
                         (int)getpid(), exit_wait_ms);
        if (n > 0) {
            ssize_t ignored = write(2, message, (size_t)n < sizeof message ? (size_t)n : sizeof message - 1);
            (void)ignored;
        }
        atomic_store(&fallback, 1);
        signal_main();
    }
    return NULL;
}

static PyObject *stop_start(PyObject *self, PyObject *args) {
    long wait_ms;
    if (!PyArg_ParseTuple(args, "li", &wait_ms, &park_signal)) return NULL;
    if (atomic_load(&stage) != OFF && guard_pid == getpid()) Py_RETURN_FALSE;
    exit_wait_ms = wait_ms > 0 ? wait_ms : 1;
    guard_pid = getpid();
    main_thread = pthread_self();
    atomic_store(&waiting, 0);
    atomic_store(&flushed, 0);
    atomic_store(&parked, 0);
    atomic_store(&fallback, 0);
    atomic_store(&stop_signal, 0);
    if (sem_init(&wake, 0, 0) || sem_init(&watch, 0, 0) || sem_init(&done, 0, 0) || sem_init(&never, 0, 0))
        return PyErr_SetFromErrno(PyExc_OSError);
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int rc = pthread_create(&thread, &attr, watchdog, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (rc != 0) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    atomic_store(&stage, ARMED);
    Py_RETURN_TRUE;
}

static PyObject *stop_guard(PyObject *self, PyObject *unused) {
    if (atomic_load(&stage) == OFF || guard_pid != getpid()) Py_RETURN_FALSE;
    int count = 0;
    const int guard_these[] = {SIGINT, SIGTERM};
    for (size_t i = 0; i < 2; i++) {
        int sig = guard_these[i];
        struct sigaction current;
        if (sigaction(sig, NULL, &current) != 0) continue;
        int is_ours = (current.sa_flags & SA_SIGINFO) && current.sa_sigaction == guard_handler;
        if (is_ours) {
            count++;
            continue;
        }
        if (!(current.sa_flags & SA_SIGINFO) && (current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN))
            continue; /* not a uWSGI handler: nothing to guard */
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_sigaction = guard_handler;
        action.sa_flags = SA_SIGINFO | (current.sa_flags & SA_RESTART);
        sigemptyset(&action.sa_mask);
        for (size_t j = 0; j < sizeof(stop_signals) / sizeof(stop_signals[0]); j++)
            sigaddset(&action.sa_mask, stop_signals[j]);
        saved[sig] = current;
        if (sigaction(sig, &action, NULL) == 0) count++;
    }
    return PyLong_FromLong(count);
}

static PyObject *stop_wait(PyObject *self, PyObject *unused) {
    if (atomic_load(&stage) == OFF) Py_RETURN_NONE;
    atomic_store(&waiting, 1);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    while ((rc = sem_wait(&wake)) != 0 && errno == EINTR) {
    }
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        atomic_store(&waiting, 0);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(atomic_load(&stop_signal));
}

static PyObject *stop_finish(PyObject *self, PyObject *unused) {
    atomic_store(&flushed, 1);
    sem_post(&done);
    int expected = STOPPING;
    int mine = atomic_compare_exchange_strong(&stage, &expected, FINISHING);
    Py_BEGIN_ALLOW_THREADS
    if (mine) signal_main();
    for (;;) pause(); /* the main thread's exit() ends the process */
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *stop_park(PyObject *self, PyObject *unused) {
    if (atomic_load(&stage) != STOPPING || guard_pid != getpid() || !pthread_equal(pthread_self(), main_thread))
        Py_RETURN_FALSE;
    atomic_store(&parked, 1);
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        /* Woken only by the signal whose handler calls exit(); anything else waits on. */
        if (sem_wait(&never) != 0 && errno != EINTR) pause();
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_TRUE;
}

static void exit_handler(int status, void *arg) {
    (void)status;
    (void)arg;
    block_stop_signals(); /* no second exit() on top of this one */
    if (getpid() != guard_pid && guard_pid != 0) return;
    if (atomic_load(&flushed) || exit_callback == NULL || !Py_IsInitialized()) return;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *result = PyObject_CallNoArgs(exit_callback);
    if (result == NULL) PyErr_Clear();
    Py_XDECREF(result);
    PyGILState_Release(gil);
}

static PyObject *stop_register_exit(PyObject *self, PyObject *callback) {
    if (!PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "register_exit() needs a callable");
        return NULL;
    }
    if (exit_callback != NULL) {
        Py_INCREF(callback);
        Py_SETREF(exit_callback, callback);
        Py_RETURN_TRUE;
    }
#if defined(__GLIBC__)
    if (on_exit(exit_handler, NULL) != 0) Py_RETURN_FALSE;
    Py_INCREF(callback);
    exit_callback = callback;
    if (guard_pid == 0) guard_pid = getpid();
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

static PyObject *stop_status(PyObject *self, PyObject *unused) {
    static const char *names[] = {"off", "armed", "stopping", "finishing"};
    return Py_BuildValue("{s:s,s:O,s:O,s:O,s:O,s:i}", "stage", names[atomic_load(&stage)], "waiting",
                         atomic_load(&waiting) ? Py_True : Py_False, "flushed", atomic_load(&flushed) ? Py_True : Py_False,
                         "parked", atomic_load(&parked) ? Py_True : Py_False, "fallback",
                         atomic_load(&fallback) ? Py_True : Py_False, "signal", atomic_load(&stop_signal));
}

static PyMethodDef methods[] = {
    {"start", stop_start, METH_VARARGS, "start(exit_wait_ms, park_signal): arm in this process, start the watchdog."},
    {"guard", stop_guard, METH_NOARGS, "Put the guard in front of uWSGI's SIGINT / SIGTERM handlers; how many."},
    {"wait", stop_wait, METH_NOARGS, "Block (without the GIL) until a stop signal; return its number."},
    {"finish", stop_finish, METH_NOARGS, "After the flush: let the main thread exit. Never returns."},
    {"park", stop_park, METH_NOARGS, "On the main thread while stopping: wait for exit. Else False."},
    {"register_exit", stop_register_exit, METH_O, "Run callback in exit() unless the stop thread flushed."},
    {"status", stop_status, METH_NOARGS, "The guard's state, for logs and tests."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_stop", NULL, -1, methods};

PyMODINIT_FUNC PyInit__stop(void) { return PyModule_Create(&module); }

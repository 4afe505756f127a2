/* iobench._fastio: the native engine's hot loops in C, with the GIL released.
 *
 * Built by `pip install` (setup.py, an optional extension: without a C compiler iobench
 * falls back to its Python loops). Two things live here:
 *
 *   pread_loop(...)  synchronous pread(2) over an offset list, one request at a time, each
 *                    timed with CLOCK_MONOTONIC (as fio's psync engine does);
 *   Ring(kind, depth, block_size)
 *                    `depth` reads truly in flight through io_uring or Linux AIO: every
 *                    reaped completion is refilled at once, submission and completion in
 *                    batches (one io_uring_enter submits the refills and waits for the
 *                    next completion), as fio's io_uring and libaio engines do.
 *
 * Both work in bounded steps (a number of completions or a time limit), so the Python side
 * keeps its progress bar, its per-second timeline and its stop checks; the ring keeps its
 * requests in the kernel between steps. Latencies go into a caller's int64 buffer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <linux/aio_abi.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HUGE_BYTES ((size_t)2 << 20)  /* a transparent huge page on x86-64 and arm64 (4K) */

static inline int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- pread_loop ------------------------------------------------------------------- */

static PyObject *pread_loop(PyObject *self, PyObject *args) {
    int fd, wrap;
    Py_buffer offs, buf, lat;
    Py_ssize_t pos, step, lane, max_ops, block;
    long long until_ns;
    if (!PyArg_ParseTuple(args, "iy*nnnpnLw*w*", &fd, &offs, &pos, &step, &lane, &wrap,
                          &max_ops, &until_ns, &buf, &lat))
        return NULL;
    const int64_t *o = (const int64_t *)offs.buf;
    Py_ssize_t n = offs.len / 8;
    int64_t *l = (int64_t *)lat.buf;
    if (max_ops > lat.len / 8) max_ops = lat.len / 8;
    block = buf.len;
    (void)self;
    Py_ssize_t done = 0;
    long long nbytes = 0;
    int err = 0, eof = 0;
    int64_t t2 = mono_ns();
    Py_BEGIN_ALLOW_THREADS
    while (done < max_ops) {
        if (pos >= n) {
            if (!wrap || n == 0) { eof = 1; break; }
            pos = lane;  /* time-based: wrap around, as fio's time_based */
            if (pos >= n) { eof = 1; break; }
        }
        int64_t t1 = mono_ns();
        ssize_t r = pread(fd, buf.buf, (size_t)block, (off_t)o[pos]);
        t2 = mono_ns();
        if (r < 0) {
            if (errno == EINTR) continue;
            err = errno;
            break;
        }
        l[done++] = t2 - t1;
        nbytes += r;
        pos += step;
        if (t2 >= until_ns) break;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&offs);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&lat);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return Py_BuildValue("nLnLi", done, nbytes, pos, (long long)t2, eof);
}

/* ---- Ring ------------------------------------------------------------------------- */

enum { KIND_URING = 1, KIND_AIO = 2 };

typedef struct {
    PyObject_HEAD
    int kind;
    unsigned depth;
    size_t block;
    size_t slot_bytes;  /* one buffer's stride: 4 KiB multiple, 2 MiB for >= 2 MiB blocks */
    char *bufs;           /* depth x block, page-aligned */
    int64_t *sent;        /* submission time per slot */
    unsigned *free_slots; /* slots ready to be (re)submitted */
    unsigned nfree;
    unsigned inflight;
    unsigned unsubmitted; /* io_uring: SQEs written but not yet taken by the kernel */
    int64_t last_ns;      /* for the in-flight integral */
    double area_ns;       /* integral of in-flight requests over time */
    int64_t first_ns;
    /* io_uring */
    int ring_fd;
    int fixed;            /* io_uring: the slot buffers are registered (READ_FIXED) */
    int submit_each;      /* rounds: one system call per round (see Ring_rounds) */
    int pump_each;        /* pump: one system call per refill (as fio's iodepth_batch=1) */
    void *sq_ptr, *cq_ptr;
    size_t sq_sz, cq_sz, sqes_sz;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    /* Linux AIO */
    aio_context_t aio_ctx;
    struct iocb *iocbs;
    struct iocb **iocbp;
    struct io_event *events;
    int closed;
} Ring;

static void ring_release(Ring *r) {
    if (r->closed) return;
    r->closed = 1;
    if (r->kind == KIND_URING) {
        if (r->sqes) munmap(r->sqes, r->sqes_sz);
        if (r->cq_ptr && r->cq_ptr != r->sq_ptr) munmap(r->cq_ptr, r->cq_sz);
        if (r->sq_ptr) munmap(r->sq_ptr, r->sq_sz);
        if (r->ring_fd >= 0) close(r->ring_fd);
        r->ring_fd = -1;
    } else if (r->kind == KIND_AIO) {
        if (r->aio_ctx) syscall(__NR_io_destroy, r->aio_ctx);
        r->aio_ctx = 0;
    }
    free(r->bufs); r->bufs = NULL;
    free(r->sent); r->sent = NULL;
    free(r->free_slots); r->free_slots = NULL;
    free(r->iocbs); r->iocbs = NULL;
    free(r->iocbp); r->iocbp = NULL;
    free(r->events); r->events = NULL;
}

static void Ring_dealloc(Ring *r) {
    /* requests still in the kernel write into our buffers: wait for them first */
    if (!r->closed && r->inflight) {
        if (r->kind == KIND_URING) {
            while (r->inflight) {
                if (syscall(__NR_io_uring_enter, r->ring_fd, 0, 1, IORING_ENTER_GETEVENTS,
                            NULL, 0) < 0 && errno != EINTR) break;
                unsigned head = *r->cq_head;
                unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
                r->inflight -= (tail - head);
                __atomic_store_n(r->cq_head, tail, __ATOMIC_RELEASE);
            }
        } else {
            while (r->inflight) {
                long k = syscall(__NR_io_getevents, r->aio_ctx, 1, (long)r->depth, r->events,
                                 NULL);
                if (k < 0 && errno != EINTR) break;
                if (k > 0) r->inflight -= (unsigned)k;
            }
        }
    }
    if (!r->closed && r->inflight) {
        /* requests the kernel still holds (the drain failed, e.g. from another thread
         * than the ring's issuer): keep their buffers rather than free them under DMA */
        r->bufs = NULL;
    }
    ring_release(r);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static int uring_setup(Ring *r) {
    struct io_uring_params p;
    /* as fio 3.33 sets up its rings: completions run only when this task asks for them
     * (DEFER_TASKRUN, Linux 6.1+; COOP_TASKRUN, 5.19+), no interrupting task work;
     * older kernels refuse the flags with EINVAL, so each is dropped in turn */
    static const unsigned flag_sets[] = {
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN, 0};
    int fd = -1;
    for (unsigned i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        memset(&p, 0, sizeof p);
        p.flags = flag_sets[i];
        fd = (int)syscall(__NR_io_uring_setup, r->depth, &p);
        if (fd >= 0 || errno != EINVAL) break;
    }
    if (fd < 0) return -errno;
    r->ring_fd = fd;
    r->sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    r->cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    int single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single) {
        if (r->cq_sz > r->sq_sz) r->sq_sz = r->cq_sz;
        r->cq_sz = r->sq_sz;
    }
    r->sq_ptr = mmap(NULL, r->sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                     IORING_OFF_SQ_RING);
    if (r->sq_ptr == MAP_FAILED) { r->sq_ptr = NULL; return -errno; }
    if (single) {
        r->cq_ptr = r->sq_ptr;
    } else {
        r->cq_ptr = mmap(NULL, r->cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                         fd, IORING_OFF_CQ_RING);
        if (r->cq_ptr == MAP_FAILED) { r->cq_ptr = NULL; return -errno; }
    }
    r->sqes_sz = p.sq_entries * sizeof(struct io_uring_sqe);
    r->sqes = mmap(NULL, r->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                   IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED) { r->sqes = NULL; return -errno; }
    char *sq = (char *)r->sq_ptr, *cq = (char *)r->cq_ptr;
    r->sq_head = (unsigned *)(sq + p.sq_off.head);
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    if (!(p.features & IORING_FEAT_NODROP)) return -ENOSYS; /* before 5.5: too old */
    return 0;
}

static int aio_setup(Ring *r) {
    r->aio_ctx = 0;
    if (syscall(__NR_io_setup, r->depth, &r->aio_ctx) < 0) return -errno;
    r->iocbs = calloc(r->depth, sizeof(struct iocb));
    r->iocbp = calloc(r->depth, sizeof(struct iocb *));
    r->events = calloc(r->depth, sizeof(struct io_event));
    if (!r->iocbs || !r->iocbp || !r->events) return -ENOMEM;
    return 0;
}

static inline char *slot_buf(Ring *r, unsigned s) {
    return r->bufs + (size_t)s * r->slot_bytes;
}

/* hand every aimed io_uring entry to the kernel; on an error set *err, and entries that
 * never reached the kernel leave the in-flight count */
static void uring_flush(Ring *r, int *err) {
    while (r->unsubmitted) {
        long k = syscall(__NR_io_uring_enter, r->ring_fd, r->unsubmitted, 0, 0, NULL, 0);
        if (k < 0) {
            if (errno == EINTR) continue;
            *err = errno;
            r->inflight -= r->unsubmitted; /* never reached the kernel */
            r->unsubmitted = 0;
            return;
        }
        r->unsubmitted -= (unsigned)k;
    }
}

static int getenv_off(const char *name) {
    const char *v = getenv(name);
    return v && strcmp(v, "0") == 0;
}

static int Ring_init(Ring *r, PyObject *args, PyObject *kw) {
    const char *kind;
    unsigned depth;
    Py_ssize_t block;
    if (!PyArg_ParseTuple(args, "sIn", &kind, &depth, &block)) return -1;
    if (depth < 1 || depth > 4096 || block < 1) {
        PyErr_SetString(PyExc_ValueError, "depth must be 1..4096 and block_size > 0");
        return -1;
    }
    r->ring_fd = -1;
    r->depth = depth;
    r->block = (size_t)block;
    if (strcmp(kind, "io_uring") == 0) r->kind = KIND_URING;
    else if (strcmp(kind, "libaio") == 0) r->kind = KIND_AIO;
    else {
        PyErr_SetString(PyExc_ValueError, "kind must be 'io_uring' or 'libaio'");
        return -1;
    }
    /* Blocks of 2 MiB or more: each buffer on its own 2 MiB boundary of a mapping advised
     * MADV_HUGEPAGE, as iobench.engines.chunks.chunk_buffer does for the restore path. An
     * O_DIRECT read reaches the device as one segment per physically contiguous run of its
     * buffer; on base pages those runs are whatever the allocator handed out, and the
     * reads split into more, smaller requests (docs/kvcache.md, "Measured figures").
     * Touched here (memset), outside any timed path. */
    size_t bsz = (r->block + 4095) / 4096 * 4096, align = 4096;
    if (r->block >= HUGE_BYTES) {
        bsz = (r->block + HUGE_BYTES - 1) / HUGE_BYTES * HUGE_BYTES;
        align = HUGE_BYTES;
    }
    r->slot_bytes = bsz;
    void *mem = NULL;
    if (posix_memalign(&mem, align, bsz * depth) != 0) { PyErr_NoMemory(); return -1; }
#ifdef MADV_HUGEPAGE
    if (align == HUGE_BYTES) (void)madvise(mem, bsz * depth, MADV_HUGEPAGE);  /* a hint */
#endif
    memset(mem, 0, bsz * depth);
    r->bufs = mem;
    r->block = (size_t)block;
    r->sent = calloc(depth, sizeof(int64_t));
    r->free_slots = calloc(depth, sizeof(unsigned));
    if (!r->sent || !r->free_slots) { PyErr_NoMemory(); return -1; }
    for (unsigned i = 0; i < depth; i++) r->free_slots[i] = depth - 1 - i;
    r->nfree = depth;
    int rc = r->kind == KIND_URING ? uring_setup(r) : aio_setup(r);
    if (rc < 0) {
        int kindv = r->kind;
        ring_release(r);
        r->kind = kindv;
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    /* slot -> buffer stride */
    r->block = (size_t)block;
    r->last_ns = 0;
    r->fixed = 0;
    r->submit_each = !getenv_off("IOBENCH_ROUNDS_SUBMIT_EACH");
    r->pump_each = !getenv_off("IOBENCH_PUMP_SUBMIT_EACH");
    if (r->kind == KIND_URING && !getenv_off("IOBENCH_URING_FIXED")) {
        /* register the slot buffers once (as fio's fixedbufs=1): the kernel pins them
         * now instead of on every O_DIRECT request. Refused (RLIMIT_MEMLOCK for a user,
         * an old kernel): plain reads, as before */
        struct iovec *iov = calloc(depth, sizeof *iov);
        if (iov) {
            for (unsigned i = 0; i < depth; i++) {
                iov[i].iov_base = slot_buf(r, i);
                iov[i].iov_len = r->block;
            }
            if (syscall(__NR_io_uring_register, r->ring_fd, IORING_REGISTER_BUFFERS, iov,
                        depth) == 0)
                r->fixed = 1;
            free(iov);
        }
    }
    return 0;
}

/* io_submit took only `sent` of the aimed iocbs: the rest are not in flight */
static inline void unsent(Ring *r, unsigned n, unsigned sent) {
    for (unsigned j = 0; j < n; j++)
        r->free_slots[r->nfree++] = (unsigned)r->iocbp[sent + j]->aio_data;
    r->inflight -= n;
}

static inline void account(Ring *r, int64_t now) {
    if (r->last_ns) r->area_ns += (double)r->inflight * (double)(now - r->last_ns);
    else r->first_ns = now;
    r->last_ns = now;
}

/* pump(fds, offsets, pos, wrap, submit, max_done, until_ns, lat)
 *   fds: an int (one file) or an int32 buffer parallel to offsets.
 * Reaps completions (refilling each at once while `submit`) until `max_done` were reaped
 * or the clock passes until_ns; without `submit` it only reaps, until nothing is in
 * flight. Returns (done, latencies recorded, nbytes, pos, now_ns, inflight, exhausted). */
static PyObject *Ring_pump(Ring *r, PyObject *args) {
    PyObject *fdobj;
    Py_buffer offs, lat, fdbuf;
    Py_ssize_t pos, max_done;
    int wrap, submit;
    long long until_ns;
    if (r->closed) { PyErr_SetString(PyExc_ValueError, "ring is closed"); return NULL; }
    if (!PyArg_ParseTuple(args, "Oy*nppnLw*", &fdobj, &offs, &pos, &wrap, &submit, &max_done,
                          &until_ns, &lat))
        return NULL;
    int one_fd = -1;
    const int32_t *fdv = NULL;
    int have_fdbuf = 0;
    if (PyLong_Check(fdobj)) {
        one_fd = (int)PyLong_AsLong(fdobj);
    } else {
        if (PyObject_GetBuffer(fdobj, &fdbuf, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&offs); PyBuffer_Release(&lat);
            return NULL;
        }
        have_fdbuf = 1;
        fdv = (const int32_t *)fdbuf.buf;
    }
    const int64_t *o = (const int64_t *)offs.buf;
    Py_ssize_t n = offs.len / 8;
    int64_t *l = (int64_t *)lat.buf;
    Py_ssize_t cap = lat.len / 8; /* one reap can pass max_done by up to depth */
    Py_ssize_t done = 0;
    long long nbytes = 0;
    int err = 0, exhausted = 0;
    int64_t now = mono_ns();
    const int write = 0;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        /* 1. aim free slots at the next requests */
        unsigned nsub = 0;
        if (submit && !exhausted) {
            while (r->nfree) {
                if (pos >= n) {
                    if (!wrap || n == 0) { exhausted = 1; break; }
                    pos = 0;
                }
                unsigned s = r->free_slots[--r->nfree];
                int fd = fdv ? fdv[pos] : one_fd;
                int64_t off = o[pos++];
                if (r->kind == KIND_URING) {
                    unsigned tail = *r->sq_tail;
                    unsigned idx = tail & *r->sq_mask;
                    struct io_uring_sqe *sqe = &r->sqes[idx];
                    memset(sqe, 0, sizeof *sqe);
                    if (r->fixed) {
                        sqe->opcode = write ? IORING_OP_WRITE_FIXED : IORING_OP_READ_FIXED;
                        sqe->buf_index = (uint16_t)s;
                    } else {
                        sqe->opcode = write ? IORING_OP_WRITE : IORING_OP_READ;
                    }
                    sqe->fd = fd;
                    sqe->off = (uint64_t)off;
                    sqe->addr = (uint64_t)(uintptr_t)slot_buf(r, s);
                    sqe->len = (uint32_t)r->block;
                    sqe->user_data = s;
                    r->sq_array[idx] = idx;
                    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
                } else {
                    struct iocb *cb = &r->iocbs[s];
                    memset(cb, 0, sizeof *cb);
                    cb->aio_data = s;
                    cb->aio_lio_opcode = write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
                    cb->aio_fildes = (uint32_t)fd;
                    cb->aio_buf = (uint64_t)(uintptr_t)slot_buf(r, s);
                    cb->aio_nbytes = r->block;
                    cb->aio_offset = off;
                    r->iocbp[nsub] = cb;
                }
                nsub++;
            }
        }
        if (nsub) {
            int64_t t = mono_ns();
            account(r, t);
            /* the slots just aimed are the top nsub of the free stack (now popped) */
            for (unsigned j = 0; j < nsub; j++) r->sent[r->free_slots[r->nfree + j]] = t;
            r->inflight += nsub;
        }
        if (!r->inflight) break;
        if (submit && (done >= max_done || now >= until_ns)) {
            /* step over: submit what was aimed, leave the rest in flight */
            if (nsub) {
                if (r->kind == KIND_URING) {
                    r->unsubmitted += nsub;
                    uring_flush(r, &err);
                } else {
                    unsigned sent = 0;
                    while (sent < nsub) {
                        long k = syscall(__NR_io_submit, r->aio_ctx, (long)(nsub - sent),
                                         r->iocbp + sent);
                        if (k < 0) { if (errno == EINTR) continue; err = errno; break; }
                        sent += (unsigned)k;
                    }
                    unsent(r, nsub - sent, sent);
                }
            }
            break;
        }
        /* 2. submit the refills and wait for at least one completion */
        unsigned got = 0;
        if (r->kind == KIND_URING) {
            r->unsubmitted += nsub;
            /* each refill reaches the device on its own (no plugged batch), as fio
             * submits by default; then one call waits for a completion */
            while (r->pump_each && r->unsubmitted > 1) {
                long k1 = syscall(__NR_io_uring_enter, r->ring_fd, 1, 0, 0, NULL, 0);
                if (k1 < 0) { if (errno == EINTR) continue; break; }
                r->unsubmitted -= (unsigned)k1;
            }
            long k = syscall(__NR_io_uring_enter, r->ring_fd, r->unsubmitted, 1,
                             IORING_ENTER_GETEVENTS, NULL, 0);
            if (k < 0 && errno != EINTR) {
                err = errno;
                r->inflight -= r->unsubmitted; /* never reached the kernel */
                r->unsubmitted = 0;
                break;
            }
            if (k > 0) r->unsubmitted -= (unsigned)k < r->unsubmitted ? (unsigned)k
                                                                        : r->unsubmitted;
            now = mono_ns();
            unsigned head = *r->cq_head;
            unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
            for (; head != tail; head++) {
                struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
                unsigned s = (unsigned)cqe->user_data;
                if (cqe->res < 0 && !err) err = -cqe->res;
                else if (cqe->res > 0) nbytes += cqe->res;
                if (done < cap) l[done] = now - r->sent[s];
                done++;
                r->free_slots[r->nfree++] = s;
                got++;
            }
            __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
        } else {
            unsigned sent = 0;
            while (sent < nsub) {
                long n = r->pump_each ? 1 : (long)(nsub - sent);
                long k = syscall(__NR_io_submit, r->aio_ctx, n, r->iocbp + sent);
                if (k < 0) { if (errno == EINTR) continue; err = errno; break; }
                sent += (unsigned)k;
            }
            unsent(r, nsub - sent, sent);
            if (err) break;
            long k = syscall(__NR_io_getevents, r->aio_ctx, 1, (long)r->depth, r->events, NULL);
            if (k < 0 && errno != EINTR) { err = errno; break; }
            now = mono_ns();
            for (long i = 0; i < k; i++) {
                struct io_event *ev = &r->events[i];
                unsigned s = (unsigned)ev->data;
                if (ev->res < 0 && !err) err = (int)-ev->res;
                else if (ev->res > 0) nbytes += ev->res;
                if (done < cap) l[done] = now - r->sent[s];
                done++;
                r->free_slots[r->nfree++] = s;
                got++;
            }
        }
        if (got) {
            account(r, now);
            r->inflight -= got;
        }
        if (err) break;
        if (!submit && !r->inflight) break;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&offs);
    PyBuffer_Release(&lat);
    if (have_fdbuf) PyBuffer_Release(&fdbuf);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return Py_BuildValue("nnLnLIi", done, done < cap ? done : cap, nbytes, pos, (long long)now,
                         r->inflight, exhausted);
}

/* ---- rounds: dependent batches of reads (iobench.engines.batch) --------------------- *
 * rounds(fd, batch, rounds, state, max_streams, deadline_ns, until_ns, stop, delay_ns,
 *        read_lat, stream_lat) -> (reads, nread_lat, nstream_lat, now_ns, inflight, active)
 *
 * The ring's depth is streams x batch slots; slot s belongs to stream s / batch. A stream
 * is `rounds` rounds; a round aims `batch` random reads of the ring's block size (its
 * slots) at once, and the next round may start only when all of them completed (the
 * dependency of a beam search). When a stream ends, a new one starts in its place until
 * `deadline_ns` (0: none), `stop`, or `max_streams` started (0: no limit); the streams in
 * flight then finish, so reads == finished streams x rounds x batch exactly. Every round
 * ready after one batch of completions is submitted in one system call (each round's reads
 * together). delay_ns > 0 (a test rig): a stream waits that long after every round.
 *
 * state: an int64 buffer of 8 + 5 x streams, zero before the first step, kept by the caller
 * between steps: [0] rng, [1] started, [2] active, [3] sectors, [4] fifo head, [5] fifo
 * count, [6] stopping, [7] begun; then remaining, round, start, fifo due, fifo stream.
 * Returns at `until_ns`, when a latency buffer might overflow, or when no stream is left.
 */
static inline uint64_t split_mix(int64_t *st) {
    uint64_t z = (uint64_t)(st[0] += (int64_t)0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static PyObject *Ring_rounds(Ring *r, PyObject *args) {
    int fd, stop;
    unsigned batch, nrounds;
    Py_buffer stbuf, rlat, slat;
    Py_ssize_t max_streams;
    long long deadline_ns, until_ns, delay_ns;
    if (r->closed) { PyErr_SetString(PyExc_ValueError, "ring is closed"); return NULL; }
    if (!PyArg_ParseTuple(args, "iIIw*nLLpLw*w*", &fd, &batch, &nrounds, &stbuf, &max_streams,
                          &deadline_ns, &until_ns, &stop, &delay_ns, &rlat, &slat))
        return NULL;
    unsigned streams = batch ? r->depth / batch : 0;
    if (!batch || !nrounds || streams * batch != r->depth
            || stbuf.len < (Py_ssize_t)(8 * (8 + 5 * (Py_ssize_t)streams))
            || rlat.len / 8 < (Py_ssize_t)r->depth || slat.len / 8 < (Py_ssize_t)streams) {
        PyBuffer_Release(&stbuf); PyBuffer_Release(&rlat); PyBuffer_Release(&slat);
        PyErr_SetString(PyExc_ValueError, "rounds: depth must be streams x batch, state "
                        "8 + 5 x streams, latency buffers at least depth / streams");
        return NULL;
    }
    int64_t *st = (int64_t *)stbuf.buf;
    int64_t *rem = st + 8, *rnd = rem + streams, *qs = rnd + streams;
    int64_t *fdue = qs + streams, *fq = fdue + streams;
    int64_t *rl = (int64_t *)rlat.buf, *sl = (int64_t *)slat.buf;
    Py_ssize_t rcap = rlat.len / 8, scap = slat.len / 8;
    Py_ssize_t nr = 0, ns = 0;
    long long reads = 0;
    int err = 0, shortread = 0;
    uint64_t nsect = (uint64_t)st[3];
    size_t block = r->block;
    unsigned *todo = r->free_slots; /* streams whose next round is to be aimed */
    unsigned ntodo = 0;
    int64_t now = mono_ns();
    if (stop || (deadline_ns && now >= deadline_ns)) st[6] = 1;
    Py_BEGIN_ALLOW_THREADS
    if (!st[7]) { /* the first streams */
        st[7] = 1;
        unsigned first = streams;
        if (max_streams > 0 && (Py_ssize_t)first > max_streams) first = (unsigned)max_streams;
        if (st[6]) first = 0;
        for (unsigned q = 0; q < first; q++) {
            rnd[q] = 0; qs[q] = now; todo[ntodo++] = q;
        }
        st[1] = st[2] = first;
    }
    for (;;) {
        /* streams whose hold (delay) is over go next */
        while (st[5] && fdue[st[4]] <= now) {
            unsigned q = (unsigned)fq[st[4]];
            st[4] = (st[4] + 1) % streams; st[5]--;
            if (rnd[q] < nrounds) { todo[ntodo++] = q; continue; }
            sl[ns++] = now - qs[q];
            if (st[6] || (max_streams > 0 && st[1] >= max_streams)) { st[2]--; continue; }
            rnd[q] = 0; qs[q] = now; st[1]++; todo[ntodo++] = q;
        }
        /* aim and submit every round that is ready. Each round goes to the kernel in its
         * own system call as soon as it is aimed (its `batch` reads together), as fio
         * submits each request (iodepth_batch_submit=1) and DiskANN each beam: the device
         * gets the first new reads while the later rounds are still being aimed (measured
         * on the development VM: ~1.3 x the IOPS of one call for all ready rounds, the
         * reads then reaching the device in waves). IOBENCH_ROUNDS_SUBMIT_EACH=0 submits
         * all ready rounds in one call instead (io_uring: with the next wait). */
        if (ntodo) {
            unsigned nsub = 0;
            int over = now >= until_ns || nr + (Py_ssize_t)r->depth > rcap
                       || ns + (Py_ssize_t)streams > scap;
            for (unsigned i = 0; i < ntodo && !err; i++) {
                unsigned q = todo[i];
                rem[q] = batch;
                int64_t t = mono_ns();
                for (unsigned j = 0; j < batch; j++) {
                    unsigned s = q * batch + j;
                    int64_t off = (int64_t)((((unsigned __int128)split_mix(st)) * nsect) >> 64)
                                  * (int64_t)block;
                    if (r->kind == KIND_URING) {
                        unsigned tail = *r->sq_tail;
                        unsigned idx = tail & *r->sq_mask;
                        struct io_uring_sqe *sqe = &r->sqes[idx];
                        memset(sqe, 0, sizeof *sqe);
                        sqe->opcode = IORING_OP_READ;
                        sqe->fd = fd;
                        sqe->off = (uint64_t)off;
                        sqe->addr = (uint64_t)(uintptr_t)slot_buf(r, s);
                        sqe->len = (uint32_t)block;
                        sqe->user_data = s;
                        r->sq_array[idx] = idx;
                        __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
                    } else {
                        struct iocb *cb = &r->iocbs[s];
                        memset(cb, 0, sizeof *cb);
                        cb->aio_data = s;
                        cb->aio_lio_opcode = IOCB_CMD_PREAD;
                        cb->aio_fildes = (uint32_t)fd;
                        cb->aio_buf = (uint64_t)(uintptr_t)slot_buf(r, s);
                        cb->aio_nbytes = block;
                        cb->aio_offset = off;
                        r->iocbp[nsub] = cb;
                    }
                    r->sent[s] = t;
                    nsub++;
                }
                account(r, t);
                r->inflight += batch;
                int last = i + 1 == ntodo;
                if (!r->submit_each && !last) continue;
                if (r->kind == KIND_URING) {
                    /* one round now; all-at-once mode: the refills go in with the next
                     * wait (one io_uring_enter submits them and waits), unless the step
                     * ends here */
                    r->unsubmitted += nsub;
                    if (r->submit_each || over) uring_flush(r, &err);
                } else {
                    unsigned sent = 0;
                    while (sent < nsub) {
                        long k = syscall(__NR_io_submit, r->aio_ctx, (long)(nsub - sent),
                                         r->iocbp + sent);
                        if (k < 0) { if (errno == EINTR) continue; err = errno; break; }
                        sent += (unsigned)k;
                    }
                    r->inflight -= nsub - sent;
                }
                nsub = 0;
            }
            ntodo = 0;
            if (err) break;
        }
        if (!st[2]) break; /* every stream finished */
        if (now >= until_ns || nr + (Py_ssize_t)r->depth > rcap
                || ns + (Py_ssize_t)streams > scap) break; /* step over; rest stays in flight */
        if (!r->inflight) { /* only held streams: sleep until the first is due */
            if (st[5]) {
                int64_t d = fdue[st[4]] - mono_ns();
                if (d > 0) {
                    struct timespec ts = {d / 1000000000LL, d % 1000000000LL};
                    nanosleep(&ts, NULL);
                }
                now = mono_ns();
                continue;
            }
            break; /* nothing in flight, nothing held, yet active: cannot happen */
        }
        /* wait for completions (bounded by the first hold's due time under a delay) */
        unsigned got = 0;
        if (r->kind == KIND_URING) {
            long k = syscall(__NR_io_uring_enter, r->ring_fd, r->unsubmitted, 1,
                             IORING_ENTER_GETEVENTS, NULL, 0);
            if (k < 0 && errno != EINTR) {
                err = errno;
                r->inflight -= r->unsubmitted; /* never reached the kernel */
                r->unsubmitted = 0;
                break;
            }
            if (k > 0) r->unsubmitted -= (unsigned)k < r->unsubmitted ? (unsigned)k
                                                                        : r->unsubmitted;
            now = mono_ns();
            if (deadline_ns && now >= deadline_ns) st[6] = 1; /* no new streams */
            unsigned head = *r->cq_head;
            unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
            for (; head != tail; head++) {
                struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
                unsigned s = (unsigned)cqe->user_data;
                if (cqe->res < 0 && !err) err = -cqe->res;
                else if ((size_t)cqe->res != block && !err) shortread = 1;
                rl[nr++] = now - r->sent[s];
                got++;
                unsigned q = s / batch;
                if (--rem[q]) continue;
                rnd[q]++; /* the round is complete: only now may the next one start */
                if (delay_ns > 0) {
                    unsigned at = (unsigned)((st[4] + st[5]) % streams);
                    fdue[at] = now + delay_ns; fq[at] = q; st[5]++;
                } else if (rnd[q] < nrounds) {
                    todo[ntodo++] = q;
                } else {
                    sl[ns++] = now - qs[q];
                    if (st[6] || (max_streams > 0 && st[1] >= max_streams)) st[2]--;
                    else { rnd[q] = 0; qs[q] = now; st[1]++; todo[ntodo++] = q; }
                }
            }
            __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
        } else {
            struct timespec ts, *tsp = NULL;
            if (st[5]) {
                int64_t d = fdue[st[4]] - mono_ns();
                if (d < 0) d = 0;
                ts.tv_sec = d / 1000000000LL; ts.tv_nsec = d % 1000000000LL;
                tsp = &ts;
            }
            long k = syscall(__NR_io_getevents, r->aio_ctx, tsp ? 0 : 1, (long)r->depth,
                             r->events, tsp);
            if (k < 0 && errno != EINTR) { err = errno; break; }
            now = mono_ns();
            if (deadline_ns && now >= deadline_ns) st[6] = 1; /* no new streams */
            for (long i = 0; i < k; i++) {
                struct io_event *ev = &r->events[i];
                unsigned s = (unsigned)ev->data;
                if (ev->res < 0 && !err) err = (int)-ev->res;
                else if ((size_t)ev->res != block && !err) shortread = 1;
                rl[nr++] = now - r->sent[s];
                got++;
                unsigned q = s / batch;
                if (--rem[q]) continue;
                rnd[q]++;
                if (delay_ns > 0) {
                    unsigned at = (unsigned)((st[4] + st[5]) % streams);
                    fdue[at] = now + delay_ns; fq[at] = q; st[5]++;
                } else if (rnd[q] < nrounds) {
                    todo[ntodo++] = q;
                } else {
                    sl[ns++] = now - qs[q];
                    if (st[6] || (max_streams > 0 && st[1] >= max_streams)) st[2]--;
                    else { rnd[q] = 0; qs[q] = now; st[1]++; todo[ntodo++] = q; }
                }
            }
        }
        if (got) { account(r, now); r->inflight -= got; reads += got; }
        if (err || shortread) break;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&stbuf);
    PyBuffer_Release(&rlat);
    PyBuffer_Release(&slat);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (shortread) {
        PyErr_SetString(PyExc_EOFError, "a read returned fewer bytes than asked (short read)");
        return NULL;
    }
    return Py_BuildValue("LnnLIL", reads, nr, ns, (long long)now, r->inflight,
                         (long long)st[2]);
}

/* in_flight_area() -> (integral of in-flight requests over time in ns, first_ns, last_ns) */
static PyObject *Ring_area(Ring *r, PyObject *unused) {
    return Py_BuildValue("dLL", r->area_ns, (long long)r->first_ns, (long long)r->last_ns);
}

/* fixed() -> whether the slot buffers are registered with the ring (READ_FIXED) */
static PyObject *Ring_fixed(Ring *r, PyObject *unused) {
    return PyBool_FromLong(r->fixed);
}

static PyObject *Ring_buffer_address(Ring *r, PyObject *args) {
    unsigned s;
    if (!PyArg_ParseTuple(args, "I", &s)) return NULL;
    if (!r->bufs || s >= r->depth) {
        PyErr_SetString(PyExc_IndexError, "no such slot (or the ring is closed)");
        return NULL;
    }
    return PyLong_FromVoidPtr(slot_buf(r, s));
}

static PyObject *Ring_close(Ring *r, PyObject *unused) {
    if (r->inflight) {
        PyErr_SetString(PyExc_RuntimeError, "close() with requests in flight: pump() them out");
        return NULL;
    }
    ring_release(r);
    Py_RETURN_NONE;
}

static PyMethodDef Ring_methods[] = {
    {"pump", (PyCFunction)Ring_pump, METH_VARARGS, "reap and refill (see the C source)"},
    {"in_flight_area", (PyCFunction)Ring_area, METH_NOARGS, "in-flight integral"},
    {"fixed", (PyCFunction)Ring_fixed, METH_NOARGS, "slot buffers registered (io_uring)"},
    {"rounds", (PyCFunction)Ring_rounds, METH_VARARGS,
     "dependent rounds of batched reads (see the C source)"},
    {"buffer_address", (PyCFunction)Ring_buffer_address, METH_VARARGS,
     "the address of slot i's read buffer (tests: alignment, huge pages)"},
    {"close", (PyCFunction)Ring_close, METH_NOARGS, "release the ring and its buffers"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "iobench._fastio.Ring",
    .tp_basicsize = sizeof(Ring),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "depth reads in flight through io_uring or Linux AIO",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Ring_init,
    .tp_dealloc = (destructor)Ring_dealloc,
    .tp_methods = Ring_methods,
};

static PyMethodDef methods[] = {
    {"pread_loop", pread_loop, METH_VARARGS,
     "pread_loop(fd, offsets, pos, step, lane, wrap, max_ops, until_ns, buf, lat) -> "
     "(ops, bytes, pos, now_ns, eof)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_fastio", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fastio(void) {
    if (PyType_Ready(&RingType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    Py_INCREF(&RingType);
    if (PyModule_AddObject(m, "Ring", (PyObject *)&RingType) < 0) {
        Py_DECREF(&RingType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

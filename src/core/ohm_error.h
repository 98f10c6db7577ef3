/* ohm_error: the error codes every libohm function returns, and their text.
 *
 * Two kinds of failure exist in ohmpeer. A broken invariant (a bug) is an
 * assert. Anything a file, the network or a neighbour can cause is returned as
 * one of these codes (0 = OK), never an abort. A function that fails may also
 * leave a one-line detail (file:line, peer id, field) in a thread-local buffer,
 * read with ohm_error_detail(), so callers can print a precise message. */
#ifndef OHM_ERROR_H
#define OHM_ERROR_H

enum {
    OHM_OK = 0,
    OHM_EINVAL,      /* invalid argument or value */
    OHM_ENOMEM,      /* allocation failed */
    OHM_EIO,         /* read/write/open failed (errno in the detail) */
    OHM_EPARSE,      /* malformed text input (file:line in the detail) */
    OHM_EFORMAT,     /* malformed binary input (bad magic, type, structure) */
    OHM_ETRUNC,      /* input shorter than it claims */
    OHM_ETOOBIG,     /* a size or count over its limit */
    OHM_ESHAPE,      /* dimensions or fingerprint do not match */
    OHM_ENONFINITE,  /* NaN or Inf where a finite number is required */
    OHM_ERANGE,      /* value outside its allowed range */
    OHM_ENOTFOUND,   /* unknown key, peer, file or name */
    OHM_ENET,        /* a socket operation failed */
    OHM_ETIMEOUT,    /* a deadline passed */
    OHM_EAUTH,       /* authentication or key failure */
    OHM_EPERM,       /* file mode or permission refused */
    OHM_ESTALE,      /* message of a past round, another run, or a duplicate */
    OHM_EUNSUPPORTED,/* valid but not supported by this build or mode */
    OHM_ESTATE,      /* operation not allowed in the object's current state */
    OHM_EINTR,       /* interrupted by a signal (clean shutdown requested) */
    OHM_ECOUNT       /* number of codes; not an error */
};

/* Static text for an error code; never NULL (unknown codes give "unknown error"). */
const char *ohm_strerror(int code);

/* Stores a printf-style detail for the calling thread and returns `code`, so a
 * failing function can `return ohm_error_set(OHM_EPARSE, "%s:%d: ...", f, l);`. */
int ohm_error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's last detail ("" if none). Valid until the next
 * ohm_error_set/ohm_error_clear on this thread. */
const char *ohm_error_detail(void);

/* Clears the calling thread's detail. */
void ohm_error_clear(void);

#endif

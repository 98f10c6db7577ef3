/* ohm_error: error code text and a per-thread detail message. */
#include "ohm_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char detail[512];

static const char *const texts[OHM_ECOUNT] = {
    [OHM_OK] = "ok",
    [OHM_EINVAL] = "invalid argument",
    [OHM_ENOMEM] = "out of memory",
    [OHM_EIO] = "input/output error",
    [OHM_EPARSE] = "parse error",
    [OHM_EFORMAT] = "malformed data",
    [OHM_ETRUNC] = "truncated data",
    [OHM_ETOOBIG] = "size over limit",
    [OHM_ESHAPE] = "shape mismatch",
    [OHM_ENONFINITE] = "non-finite value",
    [OHM_ERANGE] = "value out of range",
    [OHM_ENOTFOUND] = "not found",
    [OHM_ENET] = "network error",
    [OHM_ETIMEOUT] = "timed out",
    [OHM_EAUTH] = "authentication failed",
    [OHM_EPERM] = "permission refused",
    [OHM_ESTALE] = "stale or duplicate",
    [OHM_EUNSUPPORTED] = "unsupported",
    [OHM_ESTATE] = "invalid state",
    [OHM_EINTR] = "interrupted",
};

const char *ohm_strerror(int code)
{
    if (code < 0 || code >= OHM_ECOUNT || !texts[code]) return "unknown error";
    return texts[code];
}

int ohm_error_set(int code, const char *fmt, ...)
{
    /* Callers prefix context to the current detail by passing it as an
     * argument ("peer 3: %s", ohm_error_detail()): format aside, then copy. */
    char text[sizeof detail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memcpy(detail, text, sizeof detail);
    return code;
}

const char *ohm_error_detail(void)
{
    return detail;
}

void ohm_error_clear(void)
{
    detail[0] = '\0';
}

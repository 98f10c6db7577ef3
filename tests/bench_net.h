/* bench_net: the message round trip shared by `ohmbench wire` and `ohmbench curve`. */
#ifndef BENCH_NET_H
#define BENCH_NET_H

#include <stddef.h>

/* Streams `iters` model messages of d float32 parameters from a sender (this
 * thread: encode into one of `npool` reused buffers + ohm_transport_send_all_with)
 * to a receiver thread (recv + decode + view_params) over tcp loopback, through
 * ohm_transport, CURVE when `secure`; `hwm` is both sockets' high-water mark.
 * Returns the payload throughput in GB/s (4*d bytes a message), or -1 on error
 * (message on stderr). */
double bench_net_roundtrip(size_t d, int iters, int secure, int hwm, int npool);

/* Iterations moving about 1 GB in all (at least 20). */
int bench_net_default_iters(size_t d);

#endif

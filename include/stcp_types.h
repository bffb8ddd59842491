/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fixed-width types for headers shared by the BPF programs and userspace.
 * The BPF side gets them from vmlinux.h, userspace from the uapi headers.
 */
#ifndef STCP_TYPES_H
#define STCP_TYPES_H

#if defined(__bpf__)
/* vmlinux.h is included first by every BPF program. */
#ifndef STCP_INLINE
#define STCP_INLINE static __always_inline
#endif
#else
#include <linux/types.h>
#ifndef STCP_INLINE
#define STCP_INLINE static inline
#endif
#endif

#endif /* STCP_TYPES_H */

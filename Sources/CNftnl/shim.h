#ifndef KEEL_CNFTNL_SHIM_H
#define KEEL_CNFTNL_SHIM_H
// glibc first: the kernel UAPI headers then skip their own in6_addr/sockaddr_in6 (libc-compat.h),
// which would otherwise clash with Glibc's in Swift.
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
// libnftnl plus the nf_tables UAPI. Variadic and macro-only parts get static inline stand-ins here.
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_nat.h>
#include <libnftnl/common.h>
#include <libnftnl/batch.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/set.h>
#include <libnftnl/rule.h>
#include <libnftnl/expr.h>
#include <libnftnl/udata.h>

static inline uint16_t keel_nft_msg_type(int msg) { return (uint16_t)((NFNL_SUBSYS_NFTABLES << 8) | msg); }
#endif

#ifndef KEEL_CMNL_SHIM_H
#define KEEL_CMNL_SHIM_H
// glibc first: the kernel UAPI headers then skip their own in6_addr/sockaddr_in6 (libc-compat.h),
// which would otherwise clash with Glibc's in Swift.
#include <sys/socket.h>
#include <netinet/in.h>
#include <net/if.h>
// libmnl plus the kernel UAPI headers the netlink core speaks. Swift cannot import function-like
// macros or macros with expressions; the static inline helpers below stand in for the ones we need.
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/if_bridge.h>
#include <linux/neighbour.h>
#include <linux/veth.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sched.h>
#include <linux/sched.h>
#include <unistd.h>
#include <sys/syscall.h>

static inline size_t keel_mnl_socket_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }
static inline int keel_nlmsg_align(int len) { return NLMSG_ALIGN(len); }
static inline int keel_nla_align(int len) { return NLA_ALIGN(len); }
static inline int keel_nlmsg_hdrlen(void) { return NLMSG_HDRLEN; }
static inline int keel_gettid(void) { return (int)syscall(SYS_gettid); }
// setns/unshare are declared only with _GNU_SOURCE, which Swift's Glibc import does not define.
int setns(int fd, int nstype);
int unshare(int flags);
static inline int keel_setns_net(int fd) { return setns(fd, CLONE_NEWNET); }
static inline int keel_unshare_net(void) { return unshare(CLONE_NEWNET); }
static inline int keel_clone_newnet(void) { return CLONE_NEWNET; }
#endif

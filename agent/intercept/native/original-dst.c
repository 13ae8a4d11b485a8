// Node-API addon: the original destination of a connection that iptables
// REDIRECT (or DNAT) rewrote, read with getsockopt(SO_ORIGINAL_DST) from the
// connection-tracking entry. Node has no binding for this option.
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <node_api.h>

// Both constants come from the netfilter headers (linux/netfilter_ipv4.h and
// linux/netfilter_ipv6/ip6_tables.h); they are stable kernel ABI, so they are
// spelled out here instead of pulling in headers that clash with netinet/in.h.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static napi_value throw_errno(napi_env env, const char* what, int err) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  const char* code = err == ENOENT ? "ENOENT" : err == EBADF ? "EBADF" : "EIO";
  if (err == ENOTSOCK) code = "ENOTSOCK";
  if (err == ENOPROTOOPT) code = "ENOPROTOOPT";
  napi_throw_error(env, code, message);
  return NULL;
}

static int is_v4_mapped(const struct sockaddr_in6* addr) {
  return IN6_IS_ADDR_V4MAPPED(&addr->sin6_addr);
}

// originalDst(fd: number): { address: string, port: number, family: 4 | 6 }
// Throws with code ENOENT when the connection has no conntrack entry (it was
// not redirected and the kernel does not track it).
static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "originalDst expects a file descriptor");
    return NULL;
  }

  struct sockaddr_storage local;
  socklen_t local_len = sizeof local;
  if (getsockname(fd, (struct sockaddr*)&local, &local_len) != 0)
    return throw_errno(env, "getsockname", errno);

  struct sockaddr_storage dst;
  socklen_t dst_len = sizeof dst;
  memset(&dst, 0, sizeof dst);
  int rc;
  if (local.ss_family == AF_INET6 && !is_v4_mapped((struct sockaddr_in6*)&local)) {
    rc = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &dst_len);
  } else {
    // IPv4, also on a dual-stack socket: a v4-mapped connection is tracked
    // by the IPv4 conntrack table and answers at the SOL_IP level.
    dst_len = sizeof(struct sockaddr_in);
    rc = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dst_len);
  }
  if (rc != 0) return throw_errno(env, "getsockopt(SO_ORIGINAL_DST)", errno);

  char text[INET6_ADDRSTRLEN];
  int port;
  int family;
  if (dst.ss_family == AF_INET6) {
    struct sockaddr_in6* a = (struct sockaddr_in6*)&dst;
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
    family = 6;
  } else {
    struct sockaddr_in* a = (struct sockaddr_in*)&dst;
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
    family = 4;
  }

  napi_value result, address, port_value, family_value;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &address);
  napi_create_int32(env, port, &port_value);
  napi_create_int32(env, family, &family_value);
  napi_set_named_property(env, result, "address", address);
  napi_set_named_property(env, result, "port", port_value);
  napi_set_named_property(env, result, "family", family_value);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn);
  napi_set_named_property(env, exports, "originalDst", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

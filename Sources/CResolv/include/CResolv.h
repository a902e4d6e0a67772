#ifndef CRESOLV_H
#define CRESOLV_H
#include <stdint.h>

// A thin, thread-safe shim over glibc's libresolv (res_nquery on a
// caller-owned resolver state; answers parsed with ns_parserr), returning
// plain structs Swift can read. res_ninit/res_nquery are macros Swift
// cannot call directly.

typedef struct {
    const char *nameserver;   // IPv4 literal to ask instead of resolv.conf's servers, or NULL
    int port;                 // its port (53 if 0)
    int timeout_seconds;      // per try
    int attempts;
} cresolv_config;

typedef struct {
    uint16_t priority;
    uint16_t weight;
    uint16_t port;
    uint32_t ttl;
    char target[256];
} cresolv_srv;

typedef struct {
    int family;               // AF_INET or AF_INET6
    uint32_t ttl;
    char address[64];
} cresolv_address;

enum {
    CRESOLV_NXDOMAIN = -1,    // the name does not exist
    CRESOLV_NODATA = -2,      // the name exists, without records of that type
    CRESOLV_SERVFAIL = -3,    // server failure or timeout: try again later
    CRESOLV_ERROR = -4        // anything else (bad name, parse error, no resolver)
};

// Each returns the number of records written to out (at most max) or a CRESOLV_ code.
int cresolv_query_srv(const cresolv_config *config, const char *name, cresolv_srv *out, int max);
int cresolv_query_address(const cresolv_config *config, const char *name, int family, cresolv_address *out, int max);

#endif

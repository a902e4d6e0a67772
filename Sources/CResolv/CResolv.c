#define _GNU_SOURCE
#include "CResolv.h"
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <string.h>

static int open_state(const cresolv_config *config, struct __res_state *st) {
    memset(st, 0, sizeof(*st));
    if (res_ninit(st) != 0) return CRESOLV_ERROR;
    if (config) {
        if (config->nameserver && config->nameserver[0]) {
            struct sockaddr_in sa;
            memset(&sa, 0, sizeof(sa));
            sa.sin_family = AF_INET;
            sa.sin_port = htons((uint16_t)(config->port > 0 ? config->port : 53));
            if (inet_pton(AF_INET, config->nameserver, &sa.sin_addr) != 1) { res_nclose(st); return CRESOLV_ERROR; }
            st->nsaddr_list[0] = sa;
            st->nscount = 1;
        }
        if (config->timeout_seconds > 0) st->retrans = config->timeout_seconds;
        if (config->attempts > 0) st->retry = config->attempts;
    }
    return 0;
}

static int query(struct __res_state *st, const char *name, int type, unsigned char *answer, int size) {
    int len = res_nquery(st, name, ns_c_in, type, answer, size);
    if (len >= 0) return len;
    switch (st->res_h_errno) {
    case HOST_NOT_FOUND: return CRESOLV_NXDOMAIN;
    case NO_DATA: return CRESOLV_NODATA;
    case TRY_AGAIN: return CRESOLV_SERVFAIL;
    default: return CRESOLV_ERROR;
    }
}

// Runs one query of `type` for `name` with its own resolver state, and
// starts parsing the answer into `msg`. Returns 0 or a CRESOLV_ code.
static int lookup(const cresolv_config *config, const char *name, int type, unsigned char *answer, int size, ns_msg *msg) {
    struct __res_state st;
    if (open_state(config, &st) != 0) return CRESOLV_ERROR;
    int len = query(&st, name, type, answer, size);
    res_nclose(&st);
    if (len < 0) return len;
    return ns_initparse(answer, len, msg) < 0 ? CRESOLV_ERROR : 0;
}

int cresolv_query_srv(const cresolv_config *config, const char *name, cresolv_srv *out, int max) {
    unsigned char answer[8192];
    ns_msg msg;
    int rc = lookup(config, name, ns_t_srv, answer, sizeof(answer), &msg);
    if (rc < 0) return rc;
    int n = 0;
    int count = ns_msg_count(msg, ns_s_an);
    for (int i = 0; i < count && n < max; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0) return CRESOLV_ERROR;
        if (ns_rr_type(rr) != ns_t_srv || ns_rr_rdlen(rr) < 7) continue;
        const unsigned char *rd = ns_rr_rdata(rr);
        out[n].priority = ns_get16(rd);
        out[n].weight = ns_get16(rd + 2);
        out[n].port = ns_get16(rd + 4);
        out[n].ttl = ns_rr_ttl(rr);
        if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, out[n].target, sizeof(out[n].target)) < 0) return CRESOLV_ERROR;
        n++;
    }
    return n == 0 ? CRESOLV_NODATA : n;
}

int cresolv_query_address(const cresolv_config *config, const char *name, int family, cresolv_address *out, int max) {
    unsigned char answer[8192];
    ns_msg msg;
    int type = family == AF_INET6 ? ns_t_aaaa : ns_t_a;
    int rc = lookup(config, name, type, answer, sizeof(answer), &msg);
    if (rc < 0) return rc;
    int n = 0;
    int count = ns_msg_count(msg, ns_s_an);
    for (int i = 0; i < count && n < max; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0) return CRESOLV_ERROR;
        if (ns_rr_type(rr) != type) continue;  // skip CNAMEs in the chain
        int need = family == AF_INET6 ? 16 : 4;
        if (ns_rr_rdlen(rr) != need) continue;
        out[n].family = family;
        out[n].ttl = ns_rr_ttl(rr);
        if (!inet_ntop(family, ns_rr_rdata(rr), out[n].address, sizeof(out[n].address))) return CRESOLV_ERROR;
        n++;
    }
    return n == 0 ? CRESOLV_NODATA : n;
}

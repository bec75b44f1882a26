/* hub_http.c — the HTTP side of molmo_pull, on libcurl. One easy handle per pull, so the
 * connection to the hub (and to its CDN) is reused from request to request. The token is sent
 * only to the endpoint's own scheme://host:port: the hub redirects LFS downloads to signed CDN
 * URLs, which must not see it (huggingface_hub drops it the same way), and libcurl does not
 * forward a custom Authorization header across hosts when it follows a redirect. Every request
 * asks for "Accept-Encoding: identity": sizes and digests are those of the stored bytes. */
#define _POSIX_C_SOURCE 200809L
#include "io/hub.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/error.h"

struct molmo_hub_http {
    CURL *curl;
    char origin[512];            /* "scheme://host:port" of the endpoint, lowercase          */
    struct curl_slist *hdr_auth; /* headers with the token (endpoint host only)              */
    struct curl_slist *hdr_anon; /* headers without                                          */
    int timeout_s;
    const volatile int *cancel;
    char errbuf[CURL_ERROR_SIZE];
};

/* curl_global_init is not thread-safe in every libcurl: run it once for the process. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* "scheme://host[:port]" of url, lowercase, with the default port made explicit so that
 * "https://h" and "https://h:443" compare equal. 0 when url has no scheme. */
static int url_origin(const char *url, char *out, size_t cap) {
    const char *sep = strstr(url, "://");
    if (!sep) return 0;
    const char *host = sep + 3;
    size_t n = strcspn(host, "/?#");
    const char *at = memchr(host, '@', n); /* drop user:password@ */
    if (at) n -= (size_t)(at + 1 - host), host = at + 1;
    size_t sn = (size_t)(sep - url);
    const char *port = "";
    if (!memchr(host, ':', n) || (host[0] == '[' && !strstr(host, "]:")))
        port = (sn == 5 && strncasecmp(url, "https", 5) == 0) ? ":443" : ":80";
    int w = snprintf(out, cap, "%.*s://%.*s%s", (int)sn, url, (int)n, host, port);
    if (w < 0 || (size_t)w >= cap) return 0;
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return 1;
}

int molmo_hub_http_same_origin(const molmo_hub_http *h, const char *url) {
    char o[512];
    return h->origin[0] && url_origin(url, o, sizeof o) && strcmp(o, h->origin) == 0;
}

char *molmo_hub_http_escape(molmo_hub_http *h, const char *s, size_t n) {
    char *e = curl_easy_escape(h->curl, s, (int)n);
    char *out = e ? molmo_strdup(e) : NULL;
    curl_free(e);
    return out;
}

static molmo_status make_headers(molmo_hub_http *h, const char *token, molmo_error *err) {
    h->hdr_anon = curl_slist_append(NULL, "Accept-Encoding: identity");
    h->hdr_auth = curl_slist_append(NULL, "Accept-Encoding: identity");
    if (!h->hdr_anon || !h->hdr_auth) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    if (token && *token) {
        for (const char *c = token; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                                 "the Hugging Face token contains a control character");
        size_t n = strlen(token) + 32;
        char *v = molmo_malloc(n);
        if (!v) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
        snprintf(v, n, "Authorization: Bearer %s", token);
        struct curl_slist *l = curl_slist_append(h->hdr_auth, v);
        memset(v, 0, n); /* the token does not linger in freed memory */
        molmo_free(v);
        if (!l) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
        h->hdr_auth = l;
    }
    return MOLMO_OK;
}

molmo_status molmo_hub_http_create(const char *endpoint, const char *token, int timeout_s,
                                   const volatile int *cancel, molmo_hub_http **out,
                                   molmo_error *err) {
    *out = NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return molmo_err(err, MOLMO_ERR_NETWORK, "libcurl initialisation failed: %s",
                         curl_easy_strerror(curl_init_rc));
    molmo_hub_http *h = molmo_calloc(1, sizeof *h);
    if (!h) return molmo_err(err, MOLMO_ERR_NOMEM, "out of memory");
    h->timeout_s = timeout_s > 0 ? timeout_s : 30;
    h->cancel = cancel;
    if (endpoint && !url_origin(endpoint, h->origin, sizeof h->origin)) {
        molmo_free(h);
        return molmo_err(err, MOLMO_ERR_INVALID_ARG,
                         "endpoint \"%.100s\" is not a URL (http://host or https://host)",
                         endpoint);
    }
    h->curl = curl_easy_init();
    molmo_status s = h->curl ? make_headers(h, token, err)
                             : molmo_err(err, MOLMO_ERR_NOMEM, "curl_easy_init failed");
    if (s != MOLMO_OK) {
        molmo_hub_http_free(h);
        return s;
    }
    *out = h;
    return MOLMO_OK;
}

void molmo_hub_http_free(molmo_hub_http *h) {
    if (!h) return;
    if (h->curl) curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->hdr_auth);
    curl_slist_free_all(h->hdr_anon);
    molmo_free(h);
}

void molmo_hub_response_clear(molmo_hub_response *rs) {
    if (!rs) return;
    molmo_free(rs->body);
    memset(rs, 0, sizeof *rs);
    molmo_hub_headers_reset(&rs->h);
}

/* ---- one transfer ------------------------------------------------------------------------- */

typedef struct xfer {
    molmo_hub_http *http;
    const molmo_hub_request *rq;
    molmo_hub_response *rs;
    size_t body_cap;
    molmo_status fail;           /* why a callback stopped the transfer                      */
    molmo_error *err;
} xfer;

static size_t on_header(char *data, size_t size, size_t nmemb, void *user) {
    xfer *x = user;
    molmo_hub_headers_feed(&x->rs->h, data, size * nmemb);
    return size * nmemb;
}

static int keep_in_memory(xfer *x, const char *data, size_t n, size_t limit) {
    molmo_hub_response *rs = x->rs;
    if (rs->body_len + n > limit) {
        x->fail = molmo_err(x->err, MOLMO_ERR_TOO_LARGE, "%s: the answer exceeds %zu bytes",
                            x->rq->url, x->rq->max_body);
        return 0;
    }
    if (rs->body_len + n + 1 > x->body_cap) {
        size_t cap = x->body_cap ? x->body_cap : 4096;
        while (cap < rs->body_len + n + 1) cap *= 2;
        char *nb = molmo_realloc(rs->body, cap);
        if (!nb) {
            x->fail = molmo_err(x->err, MOLMO_ERR_NOMEM, "out of memory");
            return 0;
        }
        rs->body = nb;
        x->body_cap = cap;
    }
    memcpy(rs->body + rs->body_len, data, n);
    rs->body_len += n;
    rs->body[rs->body_len] = '\0';
    return 1;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user) {
    xfer *x = user;
    size_t n = size * nmemb;
    long st = x->rs->h.status;
    if (x->rq->sink && st >= 200 && st < 300) {
        molmo_status s = x->rq->sink(x->rq->sink_user, &x->rs->h, data, n);
        if (s != MOLMO_OK) {
            x->fail = s;
            return 0;
        }
        x->rs->n_sunk += n;
        return n;
    }
    if (x->rq->sink) { /* the error body of a download: its first KiBs carry the message */
        size_t room = x->rs->body_len < 4096 ? 4096 - x->rs->body_len : 0;
        if (room && !keep_in_memory(x, data, n < room ? n : room, 4096)) return 0;
        return n;
    }
    return keep_in_memory(x, data, n, x->rq->max_body) ? n : 0;
}

static int on_progress(void *user, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    xfer *x = user;
    if (x->http->cancel && *x->http->cancel) {
        x->fail = molmo_err(x->err, MOLMO_ERR_CANCELLED, "cancelled");
        return 1;
    }
    return 0;
}

static int set_options(molmo_hub_http *h, const molmo_hub_request *rq, xfer *x) {
    CURL *c = h->curl;
    char range[64];
    int ok = 1;
    curl_easy_reset(c);
#define SET(opt, val) ok &= curl_easy_setopt(c, opt, val) == CURLE_OK
    SET(CURLOPT_URL, rq->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ERRORBUFFER, h->errbuf);
    SET(CURLOPT_USERAGENT, "molmo.c/0.1.0 (libcurl)");
    SET(CURLOPT_HTTPHEADER, molmo_hub_http_same_origin(h, rq->url) ? h->hdr_auth : h->hdr_anon);
    SET(CURLOPT_FOLLOWLOCATION, rq->follow ? 1L : 0L);
    SET(CURLOPT_MAXREDIRS, 10L);
    SET(CURLOPT_NOBODY, rq->head ? 1L : 0L);
    SET(CURLOPT_CONNECTTIMEOUT, (long)h->timeout_s);
    /* a transfer that stalls (under 1 byte/s) for timeout_s is dropped and retried */
    SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
    SET(CURLOPT_LOW_SPEED_TIME, (long)h->timeout_s);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, x);
    SET(CURLOPT_NOPROGRESS, 0L);
    if (rq->range_from > 0) {
        snprintf(range, sizeof range, "%llu-", (unsigned long long)rq->range_from);
        SET(CURLOPT_RANGE, range);
    }
#undef SET
    return ok;
}

/* Transport errors worth another try: the network hiccuped, the server closed early or
 * stalled. Name resolution and TLS certificate failures are not (they do not heal by waiting). */
static int transient_curl(CURLcode rc) {
    switch (rc) {
    case CURLE_COULDNT_CONNECT: case CURLE_OPERATION_TIMEDOUT: case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR: case CURLE_PARTIAL_FILE: case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return 1;
    default:
        return 0;
    }
}

molmo_status molmo_hub_http_perform(molmo_hub_http *h, const molmo_hub_request *rq,
                                    molmo_hub_response *rs, molmo_error *err) {
    molmo_hub_response_clear(rs);
    xfer x = {.http = h, .rq = rq, .rs = rs, .fail = MOLMO_OK, .err = err};
    h->errbuf[0] = '\0';
    if (!set_options(h, rq, &x))
        return molmo_err(err, MOLMO_ERR_INTERNAL, "%s: libcurl refused an option", rq->url);
    CURLcode rc = curl_easy_perform(h->curl);
    if (x.fail != MOLMO_OK) return x.fail;
    if (rc != CURLE_OK) {
        rs->transient = transient_curl(rc);
        const char *hint = rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_CONNECT
                               ? " (no network? --offline uses the cache only)"
                               : "";
        /* no URL: a CDN one is a long signed string; callers prefix the file or repo */
        return molmo_err(err, MOLMO_ERR_NETWORK, "%s%s",
                         h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc), hint);
    }
    long code = 0;
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code > 0) rs->h.status = code;
    return MOLMO_OK;
}

/*
 * tftp_pump: the data phase of one TFTP read transfer (RFC 1350, windowsize RFC 7440) on its own
 * thread, so that a lock-step transfer costs one send and one recv per block and no trip through
 * Node's event loop. Node's per-datagram cost (loop wake-up, 'message' event, a Buffer per packet)
 * made the JS pump ~50% slower per block than tftpd-hpa; the protocol logic was never the problem.
 *
 * The JS server does everything else (requests, option negotiation, path confinement, the socket
 * that answers strangers with ERROR 5) and hands us: the open file's fd (JS owns it and closes it
 * after we report), the local address/port of that strays socket, the client, the negotiated
 * blksize/windowsize/timeout/retries and the OACK to send, if any. We bind our own socket to the
 * same address and port (SO_REUSEADDR, as the JS strays socket is) and connect() it to the client:
 * the kernel then delivers the client's packets to us and everyone else's to the strays socket.
 *
 * Threading: start() runs on the JS thread (socket set-up, so bind errors throw there), then one
 * pthread runs the transfer. JS can ask it to stop (abort: a flag, then shutdown(SHUT_RD), which
 * wakes a recv blocked on a UDP socket on Linux). The thread ends by queueing one call on a
 * thread-safe function; that call (on the JS thread) joins the thread, closes our socket and hands
 * JS the result. Our socket is closed only there (or in the env cleanup hook), on the JS thread,
 * so abort() can never shutdown() an fd number that has been closed and reused.
 *
 * Counters are single-writer (the pump thread) relaxed atomics, so JS can read them live
 * (server.stats() during a transfer) without locking the per-block path.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <node_api.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { OP_RRQ = 1, OP_WRQ = 2, OP_DATA = 3, OP_ACK = 4, OP_ERROR = 5, OP_OACK = 6 };
enum outcome { OUT_COMPLETED, OUT_ABORTED, OUT_TIMEOUT, OUT_FAILED };

#define BLKSIZE_MIN 8
#define BLKSIZE_MAX 65464
#define WINDOW_MAX 65535
/* File bytes read per pread(): large, so a lock-step transfer reads the disk once per ~350 blocks. */
#define CHUNK_TARGET (512 * 1024)
/* A datagram can be up to 64 KiB; we read it whole so an ERROR's message is never cut short by us. */
#define RX_CAP 65536
/* The longest ERROR message we send; JS cuts its own at 200 characters too. */
#define ERRMSG_MAX 200
/* How much of a client's ERROR message is kept for the transfer's detail line. */
#define PEER_MSG_MAX 512
#define THREAD_STACK (256 * 1024)

typedef struct {
  _Atomic uint64_t packets_received;
  _Atomic uint64_t bytes_sent;
  _Atomic uint64_t retransmissions;
  _Atomic uint64_t timeouts;
  _Atomic uint64_t dropped_malformed;
} counters_t;

typedef struct pump {
  /* Fixed at start. */
  int sock;
  int file_fd;
  uint32_t blksize;
  uint32_t windowsize;
  int64_t timeout_us;
  uint32_t retries;
  uint8_t *oack;
  size_t oack_len;

  /* File bytes [buf_off, buf_off + buf_len) are in buf; eof_off is the file's end once seen. */
  uint8_t *buf;
  size_t buf_cap;
  uint64_t buf_off;
  size_t buf_len;
  int eof;
  uint64_t eof_off;
  int read_errno;

  uint8_t *rx;
  /* One DATA header, two iovecs and one mmsghdr per block of a window, for one sendmmsg() per window. */
  uint8_t (*hdr)[4];
  struct iovec *iov;
  struct mmsghdr *msgs;

  /* Transfer state, pump thread only. Block numbers are unwrapped (1-based), 16-bit only on the wire. */
  int in_oack;
  uint64_t win_start;  /* first block not yet acknowledged */
  uint32_t sent;       /* blocks of the window from win_start that are in flight */
  uint64_t last_block; /* the final (short or empty) block, once the file's end is known */
  uint32_t tries;
  int64_t deadline_us;
  int fresh;          /* the deadline was just set by a send: SO_RCVTIMEO = the full timeout is right */
  int64_t armed_us;   /* what SO_RCVTIMEO is set to now */

  counters_t c;

  /* Abort request: JS writes code and message, then sets the flag (release); the thread reads (acquire). */
  atomic_int abort_requested;
  uint16_t abort_code;
  uint8_t abort_msg[ERRMSG_MAX];
  size_t abort_msg_len;

  /* Result: written by the thread before it queues its call, read by JS after pthread_join. */
  enum outcome outcome;
  int error_sent; /* the ERROR code we sent the client, -1 for none */
  uint64_t timeout_block;
  uint16_t peer_error_code;
  uint8_t peer_error_msg[PEER_MSG_MAX];
  size_t peer_error_len;
  char failure[160];
  char first_drop[96];
  uint64_t socket_errors;
  int last_socket_errno;
  int call_queued;

  /* Lifecycle, JS thread only. */
  pthread_t thread;
  int joined;
  int finished;
  int refs; /* the thread's completion call, and the JS handle */
  napi_threadsafe_function tsfn;
} pump_t;

/* ---------- small helpers ---------- */

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Single writer: a relaxed load and store is enough and keeps the per-block path free of locked ops. */
static void bump(_Atomic uint64_t *c, uint64_t by) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by, memory_order_relaxed);
}

static uint64_t peek(_Atomic uint64_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}

static int aborting(pump_t *p) {
  return atomic_load_explicit(&p->abort_requested, memory_order_acquire);
}

static void pump_free(pump_t *p) {
  if (p->sock >= 0) close(p->sock);
  free(p->oack);
  free(p->buf);
  free(p->rx);
  free(p->hdr);
  free(p->iov);
  free(p->msgs);
  free(p);
}

static void unref(pump_t *p) {
  if (--p->refs == 0) pump_free(p);
}

/* ---------- sending ---------- */

/* Errors from send on a connected UDP socket (ECONNREFUSED after an ICMP, ENOBUFS …) mean a lost
 * packet, which retransmission covers, as the JS pump does; they are counted and reported. */
static void note_socket_error(pump_t *p, int err) {
  p->socket_errors++;
  p->last_socket_errno = err;
}

static void send_raw(pump_t *p, const uint8_t *pkt, size_t len) {
  for (;;) {
    if (send(p->sock, pkt, len, 0) >= 0) return;
    if (errno == EINTR) continue;
    note_socket_error(p, errno);
    return;
  }
}

static void send_error(pump_t *p, uint16_t code, const uint8_t *msg, size_t msg_len) {
  uint8_t pkt[4 + ERRMSG_MAX + 1];
  if (msg_len > ERRMSG_MAX) msg_len = ERRMSG_MAX;
  pkt[0] = 0;
  pkt[1] = OP_ERROR;
  pkt[2] = (uint8_t)(code >> 8);
  pkt[3] = (uint8_t)code;
  memcpy(pkt + 4, msg, msg_len);
  pkt[4 + msg_len] = 0;
  send_raw(p, pkt, 5 + msg_len);
  p->error_sent = code;
}

static void send_error_text(pump_t *p, uint16_t code, const char *text) {
  send_error(p, code, (const uint8_t *)text, strlen(text));
}

/* ---------- the file ---------- */

/* Payload length of block n; the block must be in the buffer (see fill). */
static size_t payload_len(const pump_t *p, uint64_t n) {
  uint64_t off = (n - 1) * p->blksize;
  uint64_t end = p->buf_off + p->buf_len;
  if (p->eof && p->eof_off < end) end = p->eof_off;
  if (off >= end) return 0;
  uint64_t avail = end - off;
  return avail < p->blksize ? (size_t)avail : p->blksize;
}

/*
 * Makes file bytes up to want_end (or the file's end) available in the buffer. Drops what lies before
 * win_start (acknowledged), keeps the window in flight (retransmissions need it), and fills the rest
 * of the buffer with as few pread()s as the kernel allows. Returns 0, or an errno (sticky).
 */
static int fill(pump_t *p, uint64_t want_end) {
  if (p->read_errno) return p->read_errno;
  if (p->eof && want_end > p->eof_off) want_end = p->eof_off;
  if (want_end <= p->buf_off + p->buf_len) return 0;
  uint64_t keep_from = (p->win_start - 1) * p->blksize;
  if (keep_from < p->buf_off || keep_from > p->buf_off + p->buf_len) {
    /* Cannot happen: win_start only moves over blocks that were sent from the buffer. */
    p->read_errno = EFAULT;
    return p->read_errno;
  }
  size_t drop = (size_t)(keep_from - p->buf_off);
  if (drop > 0) {
    memmove(p->buf, p->buf + drop, p->buf_len - drop);
    p->buf_off = keep_from;
    p->buf_len -= drop;
  }
  while (p->buf_len < p->buf_cap && !p->eof) {
    ssize_t r = pread(p->file_fd, p->buf + p->buf_len, p->buf_cap - p->buf_len,
                      (off_t)(p->buf_off + p->buf_len));
    if (r < 0) {
      if (errno == EINTR) continue;
      p->read_errno = errno;
      return p->read_errno;
    }
    if (r == 0) {
      p->eof = 1;
      p->eof_off = p->buf_off + p->buf_len;
      p->last_block = p->eof_off / p->blksize + 1;
    } else {
      p->buf_len += (size_t)r;
    }
  }
  return 0;
}

/* ---------- the window ---------- */

static void arm_deadline(pump_t *p) {
  p->deadline_us = mono_us() + p->timeout_us;
  p->fresh = 1;
}

/* Sends `count` blocks from win_start with one sendmmsg() (a lock-step window is one block). */
static void send_blocks(pump_t *p, uint32_t count) {
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < count; i++) {
    uint64_t n = p->win_start + i;
    size_t len = payload_len(p, n);
    p->hdr[i][0] = 0;
    p->hdr[i][1] = OP_DATA;
    p->hdr[i][2] = (uint8_t)(n >> 8);
    p->hdr[i][3] = (uint8_t)n;
    p->iov[2 * i].iov_base = p->hdr[i];
    p->iov[2 * i].iov_len = 4;
    p->iov[2 * i + 1].iov_base = p->buf + ((n - 1) * p->blksize - p->buf_off);
    p->iov[2 * i + 1].iov_len = len;
    memset(&p->msgs[i], 0, sizeof p->msgs[i]);
    p->msgs[i].msg_hdr.msg_iov = &p->iov[2 * i];
    p->msgs[i].msg_hdr.msg_iovlen = len > 0 ? 2 : 1;
    bytes += len;
  }
  /* Counted as attempted, as the JS pump counts them: a packet the kernel refuses is a lost packet. */
  bump(&p->c.bytes_sent, bytes);
  uint32_t done = 0;
  while (done < count) {
    int r = sendmmsg(p->sock, p->msgs + done, count - done, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      note_socket_error(p, errno);
      break;
    }
    done += (uint32_t)r;
  }
}

/* How many blocks the window starting at win_start holds (fewer at the end of the file). */
static uint32_t window_count(const pump_t *p) {
  uint64_t left = p->eof ? p->last_block - p->win_start + 1 : UINT64_MAX;
  return left < p->windowsize ? (uint32_t)left : p->windowsize;
}

/* Sends the window at win_start, then reads ahead while the client works. Returns 0 or an errno. */
static int send_window(pump_t *p) {
  int err = fill(p, (p->win_start - 1 + p->windowsize) * p->blksize);
  if (err) return err;
  uint32_t count = window_count(p);
  send_blocks(p, count);
  p->sent = count;
  arm_deadline(p);
  /* Off the critical path: a read error here shows up (sticky) when its blocks are needed. */
  (void)fill(p, (p->win_start - 1 + 2 * (uint64_t)p->windowsize) * p->blksize);
  return 0;
}

static void retransmit(pump_t *p) {
  if (p->in_oack) {
    bump(&p->c.retransmissions, 1);
    send_raw(p, p->oack, p->oack_len);
  } else {
    /* The whole window again (RFC 7440: the client discards what it already has). */
    bump(&p->c.retransmissions, p->sent);
    send_blocks(p, p->sent);
  }
  arm_deadline(p);
}

/* ---------- receiving ---------- */

enum wait_result { W_PACKET, W_TIMEOUT, W_ABORT, W_FATAL };

static int set_rcvtimeo(pump_t *p, int64_t us) {
  struct timeval tv = {.tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000)};
  if (setsockopt(p->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) return errno;
  p->armed_us = us;
  return 0;
}

/*
 * Waits for the next packet from the client until the deadline. SO_RCVTIMEO does the waiting, so the
 * usual case (an ACK soon after a send) is one recv(); it is re-armed only when a packet that made no
 * progress arrived (a duplicate ACK must not extend the deadline, or a client repeating itself could
 * hold a transfer forever).
 */
static enum wait_result wait_packet(pump_t *p, size_t *len) {
  for (;;) {
    if (aborting(p)) return W_ABORT;
    int64_t want = p->timeout_us;
    if (!p->fresh) {
      want = p->deadline_us - mono_us();
      if (want <= 0) return W_TIMEOUT;
    }
    if (want != p->armed_us) {
      int err = set_rcvtimeo(p, want);
      if (err) {
        snprintf(p->failure, sizeof p->failure, "setsockopt SO_RCVTIMEO: %s", strerror(err));
        return W_FATAL;
      }
    }
    p->fresh = 0;
    ssize_t r = recv(p->sock, p->rx, RX_CAP, 0);
    /* shutdown() from abort() makes recv return 0, like an empty datagram: the flag tells them apart. */
    if (aborting(p)) return W_ABORT;
    if (r >= 0) {
      *len = (size_t)r;
      return W_PACKET;
    }
    int err = errno;
    if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK) continue;
    if (err == EBADF || err == ENOTSOCK || err == EFAULT || err == EINVAL || err == ENOTCONN) {
      snprintf(p->failure, sizeof p->failure, "recv: %s", strerror(err));
      return W_FATAL;
    }
    /* ECONNREFUSED (an ICMP for something we sent), ENOBUFS, …: noted, and we keep waiting. */
    note_socket_error(p, err);
  }
}

static void drop_malformed(pump_t *p, const char *fmt, unsigned v) {
  if (peek(&p->c.dropped_malformed) == 0) snprintf(p->first_drop, sizeof p->first_drop, fmt, v);
  bump(&p->c.dropped_malformed, 1);
}

/* ---------- the transfer ---------- */

static void fail_read(pump_t *p, int err) {
  p->outcome = OUT_FAILED;
  snprintf(p->failure, sizeof p->failure, "read error: %s", strerror(err));
  send_error_text(p, 0, p->failure);
}

/* Returns 1 when the transfer is over. */
static int on_ack(pump_t *p, uint16_t block) {
  if (p->in_oack) {
    if (block != 0) return 0;
    p->in_oack = 0;
    p->tries = 0;
  } else {
    /* Which block in flight does it acknowledge? 0 = the one before the window (duplicate or old),
     * beyond what was sent = stale from an earlier wrap. Both are ignored: no Sorcerer's Apprentice. */
    uint32_t delta = (uint16_t)(block - (uint16_t)(p->win_start - 1));
    if (delta == 0 || delta > p->sent) return 0;
    p->win_start += delta;
    p->sent = 0;
    p->tries = 0;
    if (p->eof && p->win_start > p->last_block) {
      p->outcome = OUT_COMPLETED;
      return 1;
    }
  }
  int err = send_window(p);
  if (err) {
    fail_read(p, err);
    return 1;
  }
  return 0;
}

/* Returns 1 when the transfer is over. Every packet is bounds-checked before a byte of it is read. */
static int on_packet(pump_t *p, size_t len) {
  bump(&p->c.packets_received, 1);
  if (len < 2) {
    drop_malformed(p, "%u-byte packet has no opcode", (unsigned)len);
    return 0;
  }
  unsigned op = (unsigned)p->rx[0] << 8 | p->rx[1];
  switch (op) {
    case OP_ACK:
      /* RFC 1350 ACKs are 4 bytes; trailing bytes are ignored, as the JS parser does. */
      if (len < 4) {
        drop_malformed(p, "%u-byte ACK", (unsigned)len);
        return 0;
      }
      return on_ack(p, (uint16_t)(p->rx[2] << 8 | p->rx[3]));
    case OP_ERROR: {
      if (len < 4) {
        drop_malformed(p, "%u-byte ERROR", (unsigned)len);
        return 0;
      }
      p->peer_error_code = (uint16_t)(p->rx[2] << 8 | p->rx[3]);
      const uint8_t *msg = p->rx + 4;
      const uint8_t *nul = memchr(msg, 0, len - 4);
      size_t mlen = nul ? (size_t)(nul - msg) : len - 4;
      if (mlen > PEER_MSG_MAX) mlen = PEER_MSG_MAX;
      memcpy(p->peer_error_msg, msg, mlen);
      p->peer_error_len = mlen;
      p->outcome = OUT_ABORTED;
      return 1;
    }
    case OP_RRQ:
    case OP_WRQ:
    case OP_DATA:
    case OP_OACK:
      drop_malformed(p, "unexpected opcode %u in a read transfer", op);
      return 0;
    default:
      drop_malformed(p, "unknown opcode %u", op);
      return 0;
  }
}

static void run_transfer(pump_t *p) {
  if (p->oack) {
    p->in_oack = 1;
    send_raw(p, p->oack, p->oack_len);
    arm_deadline(p);
  } else {
    int err = send_window(p);
    if (err) {
      fail_read(p, err);
      return;
    }
  }
  for (;;) {
    size_t len = 0;
    switch (wait_packet(p, &len)) {
      case W_PACKET:
        if (on_packet(p, len)) return;
        break;
      case W_TIMEOUT:
        p->tries++;
        if (p->tries > p->retries) {
          bump(&p->c.timeouts, 1);
          p->timeout_block = p->in_oack ? 0 : p->win_start;
          p->outcome = OUT_TIMEOUT;
          send_error_text(p, 0, "Timeout");
          return;
        }
        retransmit(p);
        break;
      case W_ABORT:
        p->outcome = OUT_FAILED;
        send_error(p, p->abort_code, p->abort_msg, p->abort_msg_len);
        return;
      case W_FATAL:
        p->outcome = OUT_FAILED;
        send_error_text(p, 0, p->failure);
        return;
    }
  }
}

static void *pump_thread(void *arg) {
  pump_t *p = arg;
  run_transfer(p);
  /* The transfer state (win_start …) is final: what the client acknowledged. */
  /* Unlimited queue, so this never blocks; napi_closing means the env is going away (cleanup hook). */
  if (napi_call_threadsafe_function(p->tsfn, p, napi_tsfn_nonblocking) == napi_ok) p->call_queued = 1;
  napi_release_threadsafe_function(p->tsfn, napi_tsfn_release);
  return NULL;
}

/* ---------- N-API glue ---------- */

static const napi_type_tag PUMP_TAG = {0x7466747070756d70ULL, 0x6f73737465737431ULL};

#define CHECK(env, call)                                   \
  do {                                                     \
    if ((call) != napi_ok) {                               \
      napi_throw_error((env), NULL, "tftp_pump: " #call); \
      return NULL;                                         \
    }                                                      \
  } while (0)

static uint64_t bytes_acked(const pump_t *p) {
  uint64_t b = (p->win_start - 1) * p->blksize;
  if (p->eof && b > p->eof_off) b = p->eof_off;
  return p->in_oack ? 0 : b;
}

static void set_num(napi_env env, napi_value obj, const char *name, double v) {
  napi_value n;
  if (napi_create_double(env, v, &n) == napi_ok) napi_set_named_property(env, obj, name, n);
}

static void set_str(napi_env env, napi_value obj, const char *name, const char *s) {
  napi_value v;
  if (napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, obj, name, v);
}

static void put_counters(napi_env env, napi_value obj, pump_t *p) {
  set_num(env, obj, "packetsReceived", (double)peek(&p->c.packets_received));
  set_num(env, obj, "bytesSent", (double)peek(&p->c.bytes_sent));
  set_num(env, obj, "retransmissions", (double)peek(&p->c.retransmissions));
  set_num(env, obj, "timeouts", (double)peek(&p->c.timeouts));
  set_num(env, obj, "droppedMalformed", (double)peek(&p->c.dropped_malformed));
}

/* stop: the thread may still be running (env teardown), so ask it to end before joining. */
static void join_and_close(pump_t *p, int stop) {
  if (!p->joined) {
    if (stop && !atomic_load_explicit(&p->abort_requested, memory_order_relaxed)) {
      atomic_store_explicit(&p->abort_requested, 1, memory_order_release);
      shutdown(p->sock, SHUT_RD);
    }
    pthread_join(p->thread, NULL);
    p->joined = 1;
  }
  if (p->sock >= 0) {
    close(p->sock);
    p->sock = -1;
  }
  p->finished = 1;
}

static const char *outcome_name(enum outcome o) {
  switch (o) {
    case OUT_COMPLETED: return "completed";
    case OUT_ABORTED: return "aborted";
    case OUT_TIMEOUT: return "timeout";
    default: return "failed";
  }
}

static void cleanup_hook(void *arg);

/* On the JS thread, once per transfer. env is NULL when the env is being torn down. */
static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  pump_t *p = data;
  /* The thread has queued this call as its last act, so a normal join waits only for it to return. */
  join_and_close(p, env == NULL);
  if (env != NULL) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, p);
    napi_value r, undef, buf;
    if (napi_create_object(env, &r) == napi_ok) {
      set_str(env, r, "outcome", outcome_name(p->outcome));
      set_num(env, r, "bytes", (double)bytes_acked(p));
      set_num(env, r, "errorSent", p->error_sent);
      set_num(env, r, "timeoutBlock", (double)p->timeout_block);
      set_num(env, r, "peerErrorCode", p->peer_error_code);
      if (napi_create_buffer_copy(env, p->peer_error_len, p->peer_error_msg, NULL, &buf) == napi_ok)
        napi_set_named_property(env, r, "peerErrorMessage", buf);
      set_str(env, r, "failure", p->failure);
      set_str(env, r, "firstDrop", p->first_drop);
      set_num(env, r, "socketErrors", (double)p->socket_errors);
      set_str(env, r, "lastSocketError", p->last_socket_errno ? strerror(p->last_socket_errno) : "");
      put_counters(env, r, p);
      if (napi_get_undefined(env, &undef) == napi_ok) napi_call_function(env, undef, js_cb, 1, &r, NULL);
    }
  }
  unref(p);
}

/* The env is going away with the transfer running (a worker exiting): stop and join the thread. */
static void cleanup_hook(void *arg) {
  pump_t *p = arg;
  if (p->finished) return;
  join_and_close(p, 1);
  if (!p->call_queued) unref(p); /* otherwise call_js(env = NULL) drops that reference */
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  unref((pump_t *)data);
}

/* Property getters that throw a TypeError naming the option. */
static int get_prop(napi_env env, napi_value obj, const char *name, napi_value *out) {
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has ||
      napi_get_named_property(env, obj, name, out) != napi_ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "tftp_pump: option %s is required", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

static int get_int(napi_env env, napi_value obj, const char *name, int64_t min, int64_t max, int64_t *out) {
  napi_value v;
  if (get_prop(env, obj, name, &v)) return -1;
  double d;
  char msg[128];
  /* Range first (NaN fails it), so the cast that tests for a fraction is defined. */
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= (double)min && d <= (double)max) ||
      d != (double)(int64_t)d) {
    snprintf(msg, sizeof msg, "tftp_pump: option %s must be an integer in %lld..%lld", name, (long long)min,
             (long long)max);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  *out = (int64_t)d;
  return 0;
}

static int get_str(napi_env env, napi_value obj, const char *name, char *out, size_t cap) {
  napi_value v;
  size_t len = 0;
  if (get_prop(env, obj, name, &v)) return -1;
  if (napi_get_value_string_utf8(env, v, out, cap, &len) != napi_ok || len + 1 >= cap) {
    char msg[96];
    snprintf(msg, sizeof msg, "tftp_pump: option %s must be a string of an IP address", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

/* An IP literal as Node gives them ("10.0.0.1", "fe80::1%eth0", "::ffff:10.0.0.1"). When the
 * socket is IPv6 (family AF_INET6) an IPv4 address is written as its v4-mapped form. */
static int parse_addr(const char *s, uint16_t port, int family, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct in_addr a4;
  if (inet_pton(AF_INET, s, &a4) == 1) {
    if (family == AF_INET6) {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(port);
      sin6->sin6_addr.s6_addr[10] = 0xff;
      sin6->sin6_addr.s6_addr[11] = 0xff;
      memcpy(&sin6->sin6_addr.s6_addr[12], &a4, 4);
      *len = sizeof *sin6;
    } else {
      struct sockaddr_in *sin = (struct sockaddr_in *)ss;
      sin->sin_family = AF_INET;
      sin->sin_port = htons(port);
      sin->sin_addr = a4;
      *len = sizeof *sin;
    }
    return AF_INET;
  }
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (strlen(s) >= sizeof host) return -1;
  memcpy(host, s, strlen(s) + 1);
  uint32_t scope = 0;
  char *pct = strchr(host, '%');
  if (pct) {
    *pct = 0;
    const char *zone = pct + 1;
    scope = if_nametoindex(zone);
    if (scope == 0) {
      char *end;
      unsigned long n = strtoul(zone, &end, 10);
      if (*zone == 0 || *end != 0 || n > UINT32_MAX) return -1;
      scope = (uint32_t)n;
    }
  }
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
  if (family == AF_INET || inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) return -1;
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  sin6->sin6_scope_id = scope;
  *len = sizeof *sin6;
  return AF_INET6;
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160], code[32];
  snprintf(msg, sizeof msg, "tftp_pump: %s: %s", what, strerror(err));
  snprintf(code, sizeof code, "E%d", err);
  napi_throw_error(env, code, msg);
  return NULL;
}

/* Sizes the buffers: the file buffer holds two windows (in flight + the next) plus a read chunk. */
static int alloc_buffers(pump_t *p) {
  uint64_t chunk_blocks = CHUNK_TARGET / p->blksize;
  if (chunk_blocks == 0) chunk_blocks = 1;
  uint64_t cap = (2 * (uint64_t)p->windowsize + chunk_blocks) * p->blksize;
  if (cap > SIZE_MAX) return ENOMEM;
  p->buf_cap = (size_t)cap;
  p->buf = malloc(p->buf_cap);
  p->rx = malloc(RX_CAP);
  p->hdr = calloc(p->windowsize, sizeof *p->hdr);
  p->iov = calloc(2 * (size_t)p->windowsize, sizeof *p->iov);
  p->msgs = calloc(p->windowsize, sizeof *p->msgs);
  return p->buf && p->rx && p->hdr && p->iov && p->msgs ? 0 : ENOMEM;
}

/*
 * start({ fd, localAddress, localPort, peerAddress, peerPort, blksize, windowsize, timeoutMs, retries,
 *         oack?: Buffer }, onEnd(result)) -> handle
 */
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t0, t1;
  if (argc < 2 || napi_typeof(env, argv[0], &t0) != napi_ok || t0 != napi_object ||
      napi_typeof(env, argv[1], &t1) != napi_ok || t1 != napi_function) {
    napi_throw_type_error(env, NULL, "tftp_pump: start(options, onEnd) expects an object and a function");
    return NULL;
  }
  napi_value o = argv[0];
  int64_t fd, lport, pport, blksize, windowsize, timeout_ms, retries;
  char laddr[128], paddr[128];
  if (get_int(env, o, "fd", 0, INT_MAX, &fd) || get_int(env, o, "localPort", 1, 65535, &lport) ||
      get_int(env, o, "peerPort", 1, 65535, &pport) ||
      get_int(env, o, "blksize", BLKSIZE_MIN, BLKSIZE_MAX, &blksize) ||
      get_int(env, o, "windowsize", 1, WINDOW_MAX, &windowsize) ||
      get_int(env, o, "timeoutMs", 1, 3600 * 1000, &timeout_ms) ||
      get_int(env, o, "retries", 0, 1000000, &retries) || get_str(env, o, "localAddress", laddr, sizeof laddr) ||
      get_str(env, o, "peerAddress", paddr, sizeof paddr))
    return NULL;

  struct sockaddr_storage local, peer;
  socklen_t local_len, peer_len;
  int family = parse_addr(laddr, (uint16_t)lport, 0, &local, &local_len);
  if (family < 0) {
    napi_throw_type_error(env, NULL, "tftp_pump: localAddress is not an IP address");
    return NULL;
  }
  if (parse_addr(paddr, (uint16_t)pport, family, &peer, &peer_len) < 0) {
    napi_throw_type_error(env, NULL, "tftp_pump: peerAddress is not an IP address of the local address's family");
    return NULL;
  }

  pump_t *p = calloc(1, sizeof *p);
  if (!p) return throw_errno(env, "calloc", ENOMEM);
  p->sock = -1;
  p->file_fd = (int)fd;
  p->blksize = (uint32_t)blksize;
  p->windowsize = (uint32_t)windowsize;
  p->timeout_us = timeout_ms * 1000;
  p->retries = (uint32_t)retries;
  p->win_start = 1;
  p->last_block = UINT64_MAX;
  p->error_sent = -1;
  p->armed_us = -1;
  p->refs = 2;

  bool has_oack = false;
  if (napi_has_named_property(env, o, "oack", &has_oack) == napi_ok && has_oack) {
    napi_value ov;
    bool is_buf = false;
    napi_valuetype ot;
    if (napi_get_named_property(env, o, "oack", &ov) == napi_ok && napi_typeof(env, ov, &ot) == napi_ok &&
        ot != napi_undefined && ot != napi_null) {
      void *data;
      size_t len;
      if (napi_is_buffer(env, ov, &is_buf) != napi_ok || !is_buf ||
          napi_get_buffer_info(env, ov, &data, &len) != napi_ok || len < 2 || len > RX_CAP) {
        pump_free(p);
        napi_throw_type_error(env, NULL, "tftp_pump: option oack must be a Buffer of 2..65536 bytes");
        return NULL;
      }
      p->oack = malloc(len);
      if (!p->oack) {
        pump_free(p);
        return throw_errno(env, "malloc", ENOMEM);
      }
      memcpy(p->oack, data, len);
      p->oack_len = len;
    }
  }
  if (alloc_buffers(p)) {
    pump_free(p);
    return throw_errno(env, "allocating the transfer's buffers", ENOMEM);
  }

  int s = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    int err = errno;
    pump_free(p);
    return throw_errno(env, "socket", err);
  }
  p->sock = s;
  int one = 1;
  const char *what = NULL;
  if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) what = "setsockopt SO_REUSEADDR";
  else if (bind(s, (struct sockaddr *)&local, local_len) != 0) what = "bind";
  else if (connect(s, (struct sockaddr *)&peer, peer_len) != 0) what = "connect";
  if (what) {
    int err = errno;
    pump_free(p);
    return throw_errno(env, what, err);
  }

  napi_value name;
  CHECK(env, napi_create_string_utf8(env, "tftp_pump", NAPI_AUTO_LENGTH, &name));
  if (napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &p->tsfn) !=
      napi_ok) {
    pump_free(p);
    napi_throw_error(env, NULL, "tftp_pump: napi_create_threadsafe_function failed");
    return NULL;
  }

  napi_value handle;
  if (napi_create_external(env, p, handle_finalize, NULL, &handle) != napi_ok) {
    napi_release_threadsafe_function(p->tsfn, napi_tsfn_abort);
    pump_free(p);
    napi_throw_error(env, NULL, "tftp_pump: cannot create the handle");
    return NULL;
  }
  /* From here the handle's finalizer owns one reference: failures below only drop the thread's. */
  int err = napi_type_tag_object(env, handle, &PUMP_TAG) == napi_ok ? 0 : EINVAL;

  pthread_attr_t attr;
  sigset_t all, old;
  if (!err) err = pthread_attr_init(&attr);
  if (!err) err = pthread_attr_setstacksize(&attr, THREAD_STACK);
  if (!err) {
    /* The pump thread takes no signals: they belong to Node's threads, and recv() stays uninterrupted. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&p->thread, &attr, pump_thread, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
  }
  if (err) {
    napi_release_threadsafe_function(p->tsfn, napi_tsfn_abort);
    close(p->sock);
    p->sock = -1;
    p->joined = 1;
    p->finished = 1;
    p->refs--; /* no thread: only the handle holds it now */
    return throw_errno(env, "starting the pump thread", err);
  }
  napi_add_env_cleanup_hook(env, cleanup_hook, p);
  return handle;
}

static pump_t *get_pump(napi_env env, napi_value v) {
  bool ok = false;
  napi_valuetype t;
  void *data = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_check_object_type_tag(env, v, &PUMP_TAG, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "tftp_pump: not a pump handle");
    return NULL;
  }
  return data;
}

/* abort(handle, code, message: Buffer): ends the transfer with that ERROR to the client. */
static napi_value js_abort(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "tftp_pump: abort(handle, code, message)");
    return NULL;
  }
  pump_t *p = get_pump(env, argv[0]);
  if (!p) return NULL;
  uint32_t code;
  bool is_buf = false;
  void *data;
  size_t len;
  if (napi_get_value_uint32(env, argv[1], &code) != napi_ok || code > 0xffff ||
      napi_is_buffer(env, argv[2], &is_buf) != napi_ok || !is_buf ||
      napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "tftp_pump: abort(handle, code 0..65535, message Buffer)");
    return NULL;
  }
  /* Once the thread is joined our socket is closed (and its number maybe reused): touch nothing. */
  if (p->finished || atomic_load_explicit(&p->abort_requested, memory_order_relaxed)) return NULL;
  p->abort_code = (uint16_t)code;
  p->abort_msg_len = len < ERRMSG_MAX ? len : ERRMSG_MAX;
  memcpy(p->abort_msg, data, p->abort_msg_len);
  atomic_store_explicit(&p->abort_requested, 1, memory_order_release);
  /* Wakes a recv() blocked on the socket; sending (the ERROR) still works after SHUT_RD. */
  shutdown(p->sock, SHUT_RD);
  return NULL;
}

/* counters(handle): the live counters, for server.stats() during a transfer. */
static napi_value js_counters(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], r;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "tftp_pump: counters(handle)");
    return NULL;
  }
  pump_t *p = get_pump(env, argv[0]);
  if (!p) return NULL;
  CHECK(env, napi_create_object(env, &r));
  put_counters(env, r, p);
  return r;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"abort", NULL, js_abort, NULL, NULL, NULL, napi_enumerable, NULL},
      {"counters", NULL, js_counters, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

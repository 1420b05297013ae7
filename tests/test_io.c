/* Checkpoints in safetensors: write/read round trips (ndim 0, empty
 * metadata, every writable dtype), every malformed header the reader must
 * reject with a message, thousands of random mutations of a valid file,
 * checkpoint save/load with an exact resume, loads that must fail without
 * changing anything, atomic writes, and export to F16/BF16.
 *
 * `test_io --write DIR` only writes DIR/ckpt.safetensors,
 * DIR/export.safetensors and DIR/expect.txt for tests/io_read.py. */
#include "check.h"
#include "ampc.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

static void path_in(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, fp) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(fp);
  *len = (size_t)n;
  return b;
}

/* Number of directory entries other than . and .. */
static int dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* ------------------------------------------------------------------------ */

static void test_roundtrip(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  float a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
  uint16_t h[5] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000};
  uint16_t bf[1] = {0x3F80};
  int32_t i32[4] = {1, -2, 2147483647, -2147483647 - 1};
  uint8_t u8[3] = {0, 128, 255};
  float scalar = 42.0f;
  uint8_t e4[2] = {0x38, 0x7E};
  amp_st_tensor t[] = {
      {"weights", AMP_F32, 2, {2, 3, 1, 1}, a, sizeof a, NULL},
      {"half.odd", AMP_F16, 1, {5, 1, 1, 1}, h, sizeof h, NULL},
      {"bf", AMP_BF16, 4, {1, 1, 1, 1}, bf, sizeof bf, NULL},
      {"ints", AMP_I32, 2, {2, 2, 1, 1}, i32, sizeof i32, NULL},
      {"bytes", AMP_U8, 1, {3, 1, 1, 1}, u8, sizeof u8, NULL},
      {"scalar", AMP_F32, 0, {1, 1, 1, 1}, &scalar, sizeof scalar, NULL},
      {"empty", AMP_F32, 2, {0, 4, 1, 1}, NULL, 0, NULL},
      {"fp8", AMP_E4M3, 1, {2, 1, 1, 1}, e4, sizeof e4, NULL},
      {"ünïcode \"quoted\"\n", AMP_F32, 1, {1, 1, 1, 1}, &scalar, sizeof scalar, NULL},
  };
  const int n = (int)(sizeof t / sizeof t[0]);
  const char *meta[] = {"run", "mnist-fp16", "lr", "0.001", "empty", "", "q\"uote", "a\\b\n"};
  char p[300];
  path_in(p, sizeof p, "rt.safetensors");
  CHECK(amp_safetensors_write(ctx, p, t, n, meta, 4) == AMP_OK, "write: %s", amp_ctx_error(ctx));
  for (int pass = 0; pass < 2; pass++) {
    amp_safetensors *f = NULL;
    if (pass == 0) {
      CHECK(amp_safetensors_read(ctx, p, &f) == AMP_OK, "read: %s", amp_ctx_error(ctx));
    } else {
      size_t len;
      unsigned char *img = slurp(p, &len);
      CHECK(img && len > 8, "image");
      CHECK(img && ((uint64_t)img[0] | (uint64_t)img[1] << 8) % 8 == 0, "header padded to 8");
      CHECK(amp_safetensors_parse(ctx, img, len, &f) == AMP_OK, "parse: %s", amp_ctx_error(ctx));
      free(img);
    }
    if (!f) continue;
    CHECK(amp_safetensors_count(f) == n, "count %d", amp_safetensors_count(f));
    for (int i = 0; i < n; i++) {
      const amp_st_tensor *r = amp_safetensors_find(f, t[i].name);
      CHECK(r != NULL, "find %s", t[i].name);
      if (!r) continue;
      CHECK(strcmp(r->name, t[i].name) == 0 && r->dtype == t[i].dtype && r->ndim == t[i].ndim &&
                r->bytes == t[i].bytes,
            "%s: dtype/ndim/bytes", t[i].name);
      for (int d = 0; d < t[i].ndim; d++) CHECK(r->shape[d] == t[i].shape[d], "%s shape", r->name);
      CHECK(t[i].bytes == 0 || memcmp(r->data, t[i].data, t[i].bytes) == 0, "%s bytes", r->name);
      size_t es = amp_dtype_size(r->dtype);
      CHECK((uintptr_t)r->data % es == 0, "%s aligned to %zu", r->name, es);
    }
    CHECK(strcmp(amp_safetensors_find(f, "fp8")->dtype_name, "F8_E4M3") == 0, "fp8 name");
    for (int i = 1; i < n; i++)
      CHECK(strcmp(amp_safetensors_at(f, i - 1)->name, amp_safetensors_at(f, i)->name) < 0,
            "name order");
    CHECK(amp_safetensors_at(f, n) == NULL && amp_safetensors_at(f, -1) == NULL, "at range");
    CHECK(amp_safetensors_find(f, "nope") == NULL, "find missing");
    CHECK(amp_safetensors_meta_count(f) == 4, "meta count");
    for (int i = 0; i < 4; i++) {
      const char *v = amp_safetensors_meta(f, meta[2 * i]);
      CHECK(v && strcmp(v, meta[2 * i + 1]) == 0, "meta %s", meta[2 * i]);
    }
    CHECK(amp_safetensors_meta(f, "absent") == NULL, "meta absent");
    const char *v = NULL;
    CHECK(amp_safetensors_meta_at(f, 0, &v) &&
              strcmp(amp_safetensors_meta_at(f, 0, &v), "empty") == 0,
          "meta_at in key order");
    amp_safetensors_free(f);
  }
  /* Empty metadata, and a file without tensors. */
  CHECK(amp_safetensors_write(ctx, p, t, 1, NULL, 0) == AMP_OK, "write, no meta");
  amp_safetensors *f = NULL;
  CHECK(amp_safetensors_read(ctx, p, &f) == AMP_OK && amp_safetensors_meta_count(f) == 0 &&
            amp_safetensors_meta(f, "run") == NULL && amp_safetensors_count(f) == 1,
        "no meta: %s", amp_ctx_error(ctx));
  amp_safetensors_free(f);
  size_t len;
  unsigned char *img = slurp(p, &len);
  int has_meta = 0;
  for (size_t i = 0; img && i + 12 <= len; i++)
    has_meta |= memcmp(img + i, "__metadata__", 12) == 0;
  CHECK(img && !has_meta, "no __metadata__ entry");
  free(img);
  CHECK(amp_safetensors_write(ctx, p, NULL, 0, NULL, 0) == AMP_OK, "write nothing");
  f = NULL;
  CHECK(amp_safetensors_read(ctx, p, &f) == AMP_OK && amp_safetensors_count(f) == 0, "empty");
  amp_safetensors_free(f);
  unlink(p);
  /* Bad arguments to the writer. */
  amp_st_tensor bad[2] = {t[0], t[0]};
  const char *dupmeta[] = {"k", "1", "k", "2"};
  struct {
    const char *what;
    int n, nmeta;
    const char *const *meta;
  } cases[] = {{"duplicate tensor name", 2, 0, NULL}, {"duplicate metadata key", 1, 2, dupmeta}};
  for (int c = 0; c < 2; c++) {
    amp_ctx_clear_error(ctx);
    CHECK(amp_safetensors_write(ctx, p, bad, cases[c].n, cases[c].meta, cases[c].nmeta) ==
                  AMP_ERR_INVALID_ARG &&
              strstr(amp_ctx_error(ctx), cases[c].what),
          "%s: %s", cases[c].what, amp_ctx_error(ctx));
  }
  amp_st_tensor b1 = t[0];
  b1.bytes = 20;
  amp_ctx_clear_error(ctx);
  CHECK(amp_safetensors_write(ctx, p, &b1, 1, NULL, 0) == AMP_ERR_INVALID_ARG &&
            strstr(amp_ctx_error(ctx), "weights"),
        "bytes mismatch: %s", amp_ctx_error(ctx));
  b1 = t[0];
  b1.ndim = 5;
  amp_ctx_clear_error(ctx);
  CHECK(amp_safetensors_write(ctx, p, &b1, 1, NULL, 0) == AMP_ERR_INVALID_ARG, "ndim 5");
  b1 = t[0];
  b1.name = "__metadata__";
  amp_ctx_clear_error(ctx);
  CHECK(amp_safetensors_write(ctx, p, &b1, 1, NULL, 0) == AMP_ERR_INVALID_ARG, "__metadata__");
  b1 = t[0];
  b1.shape[0] = -2;
  amp_ctx_clear_error(ctx);
  CHECK(amp_safetensors_write(ctx, p, &b1, 1, NULL, 0) == AMP_ERR_INVALID_ARG, "negative size");
  b1 = t[0];
  b1.name = "bad\xff";
  amp_ctx_clear_error(ctx);
  CHECK(amp_safetensors_write(ctx, p, &b1, 1, NULL, 0) == AMP_ERR_INVALID_ARG &&
            strstr(amp_ctx_error(ctx), "UTF-8"),
        "invalid UTF-8 name: %s", amp_ctx_error(ctx));
  const char *badval[] = {"k", "\xc3"};
  amp_ctx_clear_error(ctx);
  CHECK(amp_safetensors_write(ctx, p, t, 1, badval, 1) == AMP_ERR_INVALID_ARG, "bad UTF-8 value");
  b1 = t[0];
  b1.data = NULL;
  amp_ctx_clear_error(ctx);
  CHECK(amp_safetensors_write(ctx, p, &b1, 1, NULL, 0) == AMP_ERR_INVALID_ARG, "NULL data");
  CHECK(access(p, F_OK) != 0, "failed writes create nothing");
  amp_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */

/* A file image: 8-byte length (`hlen_override` when non-zero, else the
 * JSON's), the JSON header, then `data_len` zero bytes. */
static unsigned char *image(const char *json, size_t json_len, uint64_t hlen_override,
                            size_t data_len, size_t *len) {
  *len = 8 + json_len + data_len;
  unsigned char *b = calloc(*len + 1, 1);
  uint64_t h = hlen_override ? hlen_override : json_len;
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(h >> (8 * i));
  memcpy(b + 8, json, json_len);
  return b;
}

static void expect_reject(amp_ctx *ctx, const char *json, size_t jlen, uint64_t hlen,
                          size_t data_len, const char *want) {
  size_t len;
  unsigned char *b = image(json, jlen, hlen, data_len, &len);
  amp_safetensors *f = (amp_safetensors *)b; /* must become NULL */
  amp_ctx_clear_error(ctx);
  amp_status s = amp_safetensors_parse(ctx, b, len, &f);
  CHECK(s == AMP_ERR_FORMAT && f == NULL && strstr(amp_ctx_error(ctx), want),
        "%s: status %d, message '%s'", want, (int)s, amp_ctx_error(ctx));
  free(b);
}

#define REJECT(json, data_len, want) expect_reject(ctx, json, strlen(json), 0, data_len, want)

static void test_malformed(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  const char *ok1 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}   ";
  size_t len;
  unsigned char *b = image(ok1, strlen(ok1), 0, 8, &len);
  amp_safetensors *f = NULL;
  CHECK(amp_safetensors_parse(ctx, b, len, &f) == AMP_OK, "valid: %s", amp_ctx_error(ctx));
  amp_safetensors_free(f);
  /* The header length. */
  amp_ctx_clear_error(ctx);
  f = (amp_safetensors *)b;
  CHECK(amp_safetensors_parse(ctx, b, 5, &f) == AMP_ERR_FORMAT && !f &&
            strstr(amp_ctx_error(ctx), "too short"),
        "5 bytes: %s", amp_ctx_error(ctx));
  CHECK(amp_safetensors_parse(ctx, NULL, 0, &f) != AMP_OK && !f, "empty");
  free(b);
  expect_reject(ctx, ok1, strlen(ok1), 1000, 8, "exceeds the");
  expect_reject(ctx, ok1, strlen(ok1), strlen(ok1) + 9, 8, "exceeds the");
  expect_reject(ctx, ok1, strlen(ok1), (uint64_t)1 << 63, 8, "limit");
  expect_reject(ctx, ok1, strlen(ok1), 100000001, 8, "limit");
  expect_reject(ctx, "{}", 2, 1, 1, "too small");
  {
    /* Header length 0 (written explicitly: 0 means "the JSON's" above). */
    unsigned char z[16] = {0};
    f = (amp_safetensors *)z;
    amp_ctx_clear_error(ctx);
    CHECK(amp_safetensors_parse(ctx, z, sizeof z, &f) == AMP_ERR_FORMAT && !f &&
              strstr(amp_ctx_error(ctx), "too small"),
          "length 0: %s", amp_ctx_error(ctx));
  }
  /* JSON. */
  REJECT("{\"a\":", 0, "not valid JSON");
  REJECT("{\"a\":{}} x", 0, "not valid JSON");
  REJECT("[1, 2]", 0, "not a JSON object");
  REJECT("\"str\"", 0, "not a JSON object");
  REJECT("12", 0, "not a JSON object");
  expect_reject(ctx, "{\"a\0\":1}", 8, 0, 0, "NUL byte");
  /* Stricter than cJSON, as strict as the reference reader: no byte-order
   * mark, no raw control character, no \u0000 (it would cut names short). */
  REJECT("\xEF\xBB\xBF{}", 0, "byte-order mark");
  REJECT("{\"__metadata__\":{\"k\":\"a\tb\"}}", 0, "raw control character (byte 23)");
  REJECT("{\"__metadata__\":{\"k\x01\":\"v\"}}", 0, "raw control character");
  REJECT("{\x01}", 0, "raw control character (byte 1)");
  REJECT("{\"__metadata__\":{\"k\":\"v\\u0000x\"}}", 0, "\\u0000 escape");
  REJECT("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "\\u0000 escape");
  REJECT("{\"a\":1}", 0, "tensor 'a': entry is not a JSON object");
  REJECT("{\"\xff\":1}", 0, "not valid UTF-8 (byte 2 of");
  REJECT("{\"\xc0\x80\":1}", 0, "not valid UTF-8");         /* overlong NUL */
  REJECT("{\"\xed\xa0\x80\":1}", 0, "not valid UTF-8");     /* a surrogate */
  REJECT("{\"\xf4\x90\x80\x80\":1}", 0, "not valid UTF-8"); /* above U+10FFFF */
  REJECT("{\"\xe2\x82\":1}", 0, "not valid UTF-8");         /* truncated */
  /* Entries. */
  REJECT("{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "tensor 'a': unknown dtype 'F128'");
  REJECT("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is not a string");
  REJECT("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing \"dtype\"");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing \"shape\"");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing \"data_offsets\"");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "duplicate key 'dtype'");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
         "unknown key 'x'");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
         "tensor 'a': shape[0] is not a non-negative integer");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0]");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]}}", 8, "shape[1]");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4, "shape[0]");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
         "shape is not an array");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "more than 4 dimensions");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
         "\"data_offsets\":[0,4]}}",
         4, "shape overflows");
  REJECT("{\"a\":{\"dtype\":\"F64\",\"shape\":[1099511627776,4194304],\"data_offsets\":[0,4]}}", 4,
         "byte size overflows");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,400]}}", 4,
         "tensor 'a': data_offsets [0, 400] out of range");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
         "tensor 'a': data_offsets reversed");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
         "data_offsets is not");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
         "data_offsets is not");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{\"b\":0}}}", 8,
         "data_offsets is not");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
         "tensor 'a': size mismatch");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "tensors 'a' and 'b' overlap");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         12, "gap of 4 bytes before tensor 'b'");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12,
         "8 trailing bytes");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, "duplicate entry 'a'");
  /* Metadata. */
  REJECT("{\"__metadata__\":{\"k\":1}}", 0, "value of 'k' is not a string");
  REJECT("{\"__metadata__\":{\"k\":null}}", 0, "value of 'k' is not a string");
  REJECT("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "value of 'k' is not a string");
  REJECT("{\"__metadata__\":[\"a\"]}", 0, "__metadata__ is not a JSON object");
  REJECT("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate __metadata__ key 'k'");
  REJECT("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate entry '__metadata__'");
  /* Valid corner cases: no tensors, zero-size tensors, a scalar. */
  const char *fine[] = {
      "{}",
      "{\"__metadata__\":{}}",
      " {\"__metadata__\":{\"a\":\"b\"}}  ",
      "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}}",
      "{\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}",
      /* Escaped control characters, and an escaped backslash before "u0000". */
      "{\"__metadata__\":{\"k\":\"a\\tb\\u0001\\\\u0000\"}}\t\r\n",
  };
  size_t fine_data[] = {0, 0, 0, 0, 8, 0};
  for (int i = 0; i < 6; i++) {
    b = image(fine[i], strlen(fine[i]), 0, fine_data[i], &len);
    f = NULL;
    amp_ctx_clear_error(ctx);
    CHECK(amp_safetensors_parse(ctx, b, len, &f) == AMP_OK, "valid '%s': %s", fine[i],
          amp_ctx_error(ctx));
    if (i == 4 && f) {
      const amp_st_tensor *s = amp_safetensors_at(f, 0);
      CHECK(s->ndim == 0 && s->dtype == AMP_DTYPE_COUNT && strcmp(s->dtype_name, "I64") == 0 &&
                s->bytes == 8,
            "I64 scalar");
    }
    amp_safetensors_free(f);
    free(b);
  }
  /* Through amp_safetensors_read(): a short file, a bad length, no file,
   * a directory. */
  char p[300];
  path_in(p, sizeof p, "bad.safetensors");
  FILE *fp = fopen(p, "wb");
  b = image(ok1, strlen(ok1), 5000, 8, &len);
  fwrite(b, 1, len, fp);
  fclose(fp);
  free(b);
  amp_ctx_clear_error(ctx);
  f = (amp_safetensors *)p;
  CHECK(amp_safetensors_read(ctx, p, &f) == AMP_ERR_FORMAT && !f &&
            strstr(amp_ctx_error(ctx), "bad.safetensors: header length 5000 exceeds"),
        "file: %s", amp_ctx_error(ctx));
  fp = fopen(p, "wb");
  fwrite("abc", 1, 3, fp);
  fclose(fp);
  amp_ctx_clear_error(ctx);
  CHECK(amp_safetensors_read(ctx, p, &f) == AMP_ERR_FORMAT && strstr(amp_ctx_error(ctx), "short"),
        "3-byte file: %s", amp_ctx_error(ctx));
  unlink(p);
  amp_ctx_clear_error(ctx);
  CHECK(amp_safetensors_read(ctx, p, &f) == AMP_ERR_IO && strstr(amp_ctx_error(ctx), "cannot open"),
        "missing: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  CHECK(amp_safetensors_read(ctx, tmpdir, &f) == AMP_ERR_IO, "directory: %s", amp_ctx_error(ctx));
  /* A FIFO is refused at once: an open() without O_NONBLOCK would wait
   * forever for a writer (the alarm fails the test). */
  CHECK(mkfifo(p, 0600) == 0, "mkfifo %s", p);
  alarm(20);
  amp_ctx_clear_error(ctx);
  CHECK(amp_safetensors_read(ctx, p, &f) == AMP_ERR_IO &&
            strstr(amp_ctx_error(ctx), "not a regular file"),
        "FIFO: %s", amp_ctx_error(ctx));
  alarm(0);
  unlink(p);
  amp_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */

static uint64_t rnd(amp_rng *r, uint64_t n) { return amp_rng_next(r) % n; }

static void test_mutations(void) {
  /* A valid file with several tensors and metadata. */
  float a[12];
  for (int i = 0; i < 12; i++) a[i] = (float)i;
  uint16_t h[7] = {1, 2, 3, 4, 5, 6, 7};
  int32_t ii[3] = {9, 8, 7};
  amp_st_tensor t[] = {{"0.weight", AMP_F32, 2, {3, 4, 1, 1}, a, sizeof a, NULL},
                       {"0.bias", AMP_F16, 1, {7, 1, 1, 1}, h, sizeof h, NULL},
                       {"labels", AMP_I32, 1, {3, 1, 1, 1}, ii, sizeof ii, NULL},
                       {"s", AMP_F32, 0, {1, 1, 1, 1}, a, 4, NULL}};
  const char *meta[] = {"ampc.optim.step", "12", "k", "v"};
  char p[300];
  path_in(p, sizeof p, "mut.safetensors");
  amp_ctx *ctx = amp_ctx_create(NULL);
  CHECK(amp_safetensors_write(ctx, p, t, 4, meta, 2) == AMP_OK, "write");
  size_t len;
  unsigned char *orig = slurp(p, &len);
  unlink(p);
  if (!orig) return;
  size_t hlen = (size_t)orig[0] | (size_t)orig[1] << 8;
  unsigned char *m = malloc(len + 64);
  amp_rng r;
  amp_rng_seed(&r, 2024);
  int accepted = 0, rejected = 0, bad = 0;
  const char interesting[] = "{}[]\",:-0123456789e.  \\u";
  for (int it = 0; it < 6000; it++) {
    memcpy(m, orig, len);
    size_t n = len;
    int kind = (int)rnd(&r, 5);
    if (kind == 0) { /* truncation */
      n = (size_t)rnd(&r, len);
    } else if (kind == 1) { /* random bytes anywhere */
      int k = 1 + (int)rnd(&r, 4);
      for (int j = 0; j < k; j++) m[rnd(&r, len)] = (unsigned char)rnd(&r, 256);
    } else if (kind == 2) { /* JSON-ish bytes in the header */
      int k = 1 + (int)rnd(&r, 3);
      for (int j = 0; j < k; j++)
        m[8 + rnd(&r, hlen)] = (unsigned char)interesting[rnd(&r, sizeof interesting - 1)];
    } else if (kind == 3) { /* the length field */
      m[rnd(&r, 8)] ^= (unsigned char)(1u << rnd(&r, 8));
    } else { /* a bit flip in the header, plus maybe a truncation */
      m[8 + rnd(&r, hlen)] ^= (unsigned char)(1u << rnd(&r, 8));
      if (rnd(&r, 2)) n = len - (size_t)rnd(&r, 16);
    }
    amp_safetensors *f = NULL;
    amp_ctx_clear_error(ctx);
    amp_status s = amp_safetensors_parse(ctx, m, n, &f);
    if (s == AMP_OK) {
      accepted++;
      /* Whatever was accepted is consistent. */
      for (int i = 0; i < amp_safetensors_count(f); i++) {
        const amp_st_tensor *x = amp_safetensors_at(f, i);
        uint64_t numel = 1;
        for (int d = 0; d < x->ndim; d++) numel *= (uint64_t)x->shape[d];
        size_t es = 0;
        const char *names[] = {"F32", "F16", "BF16", "I32", "U8",  "I64",     "F64",    "BOOL",
                               "I8",  "I16", "U16",  "U32", "U64", "F8_E4M3", "F8_E5M2"};
        size_t sizes[] = {4, 2, 2, 4, 1, 8, 8, 1, 1, 2, 2, 4, 8, 1, 1};
        for (int q = 0; q < 15; q++)
          if (strcmp(names[q], x->dtype_name) == 0) es = sizes[q];
        if (es == 0 || numel * es != x->bytes) bad++;
        /* Touch every byte (ASan checks the bounds). */
        unsigned sum = 0;
        for (size_t q = 0; q < x->bytes; q++) sum += ((const unsigned char *)x->data)[q];
        (void)sum;
      }
      amp_safetensors_free(f);
    } else {
      rejected++;
      if (f || strncmp(amp_ctx_error(ctx), "safetensors: buffer: ", 21) != 0) bad++;
    }
  }
  printf("mutations: %d accepted, %d rejected with a message\n", accepted, rejected);
  CHECK(bad == 0, "%d mutations gave an inconsistent result", bad);
  CHECK(rejected > 3000, "most mutations are rejected (%d)", rejected);
  free(m);
  free(orig);
  amp_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                                */

typedef struct run {
  amp_ctx *ctx;
  amp_dataset *ds;
  amp_module *m;
  amp_optim *opt;
  amp_scaler *sc;
  amp_loader *ld;
} run;

/* Linear(6,5) ReLU Linear(5,out) [ReLU Linear(out,3)]; Adam with F16 working
 * copies; a dynamic scaler; a shuffling loader. */
static void run_make(run *r, uint64_t init_seed, int64_t out, int deeper, int last_bias,
                     uint64_t loader_seed) {
  r->ctx = amp_ctx_create(&(amp_ctx_params){.threads = 1});
  amp_rng g;
  amp_rng_seed(&g, init_seed);
  amp_module *kids[5] = {amp_nn_linear(r->ctx, &g, 6, 5, 1), amp_nn_relu(r->ctx),
                         amp_nn_linear(r->ctx, &g, 5, out, last_bias), amp_nn_relu(r->ctx),
                         amp_nn_linear(r->ctx, &g, out, 3, 1)};
  r->m = amp_nn_sequential(r->ctx, deeper ? 5 : 3, kids);
  amp_optim_params op = amp_optim_defaults(AMP_OPTIM_ADAM);
  op.work_dtype = AMP_F16;
  op.lr = 0.01f;
  r->opt = amp_optim_create(r->ctx, r->m, &op);
  amp_scaler_params sp = amp_scaler_defaults(AMP_SCALER_DYNAMIC);
  sp.growth_interval = 3;
  sp.hysteresis = 2;
  r->sc = amp_scaler_create(r->ctx, &sp);
  amp_synthetic_load(r->ctx, 50, 6, 3, 5, &r->ds);
  r->ld = amp_loader_create(r->ctx, r->ds, &(amp_loader_params){8, 1, loader_seed, 0, AMP_F16, 0});
  CHECK(r->m && r->opt && r->sc && r->ld, "setup: %s", amp_ctx_error(r->ctx));
}

static void run_free(run *r) {
  amp_loader_free(r->ld);
  amp_dataset_free(r->ds);
  amp_ctx_free(r->ctx);
}

static void run_train(run *r, int steps) {
  for (int s = 0; s < steps; s++) {
    amp_ctx_step_reset(r->ctx);
    amp_tensor *x, *y;
    if (amp_loader_next(r->ld, &x, &y) != 1 && amp_loader_next(r->ld, &x, &y) != 1) break;
    amp_autocast_begin(r->ctx, AMP_F16);
    amp_tensor *loss = amp_cross_entropy(r->ctx, amp_module_forward(r->ctx, r->m, x), y);
    amp_autocast_end(r->ctx);
    amp_backward(r->ctx, amp_scaler_scale(r->sc, loss));
    amp_scaler_step(r->sc, r->opt);
    amp_scaler_update(r->sc);
    amp_optim_zero_grad(r->opt);
  }
  CHECK(amp_ctx_status(r->ctx) == AMP_OK, "train: %s", amp_ctx_error(r->ctx));
}

/* Everything a load may change, copied out. */
typedef struct snap {
  float *master, *m, *v;
  unsigned char *work;
  int64_t n, step;
  amp_scaler_state ss;
  amp_loader_state ls;
  float lr;
} snap;

static snap take(run *r) {
  snap s;
  memset(&s, 0, sizeof s);
  s.n = amp_optim_numel(r->opt);
  int64_t *step;
  float *m, *v;
  amp_optim_state(r->opt, &step, &m, &v);
  size_t b = sizeof(float) * (size_t)s.n;
  s.master = malloc(b);
  s.m = malloc(b);
  s.v = malloc(b);
  s.work = malloc((size_t)s.n * 2);
  memcpy(s.master, amp_optim_master_buffer(r->opt), b);
  memcpy(s.m, m, b);
  memcpy(s.v, v, b);
  size_t off = 0;
  for (int i = 0; i < amp_module_param_count(r->m); i++) {
    amp_tensor *p = amp_module_param(r->m, i, NULL);
    memcpy(s.work + off, amp_param_work(p)->data, (size_t)p->numel * 2);
    off += (size_t)p->numel * 2;
  }
  s.step = *step;
  s.ss = amp_scaler_get_state(r->sc);
  s.ls = amp_loader_get_state(r->ld);
  s.lr = amp_optim_lr(r->opt);
  return s;
}

static void snap_free(snap *s) {
  free(s->master);
  free(s->m);
  free(s->v);
  free(s->work);
}

static int scaler_same(const amp_scaler_state *a, const amp_scaler_state *b) {
  return a->params.mode == b->params.mode &&
         memcmp(&a->params.init_scale, &b->params.init_scale, 4) == 0 &&
         memcmp(&a->params.growth_factor, &b->params.growth_factor, 8) == 0 &&
         memcmp(&a->params.backoff_factor, &b->params.backoff_factor, 8) == 0 &&
         a->params.growth_interval == b->params.growth_interval &&
         memcmp(&a->params.min_scale, &b->params.min_scale, 4) == 0 &&
         memcmp(&a->params.max_scale, &b->params.max_scale, 4) == 0 &&
         a->params.hysteresis == b->params.hysteresis && memcmp(&a->scale, &b->scale, 4) == 0 &&
         a->growth_tracker == b->growth_tracker && a->hysteresis_left == b->hysteresis_left &&
         a->skipped == b->skipped;
}

static int snap_same(const snap *a, const snap *b) {
  size_t bytes = sizeof(float) * (size_t)a->n;
  return a->n == b->n && memcmp(a->master, b->master, bytes) == 0 &&
         memcmp(a->m, b->m, bytes) == 0 && memcmp(a->v, b->v, bytes) == 0 &&
         memcmp(a->work, b->work, (size_t)a->n * 2) == 0 && a->step == b->step &&
         scaler_same(&a->ss, &b->ss) && a->ls.epoch == b->ls.epoch && a->ls.next == b->ls.next &&
         memcmp(&a->lr, &b->lr, 4) == 0;
}

/* Rewrites checkpoint `src` as `dst` with metadata `key` set to `val`. */
static void rewrite_meta(const char *src, const char *dst, const char *key, const char *val) {
  amp_safetensors *f = NULL;
  amp_safetensors_read(NULL, src, &f);
  int n = amp_safetensors_count(f), nm = amp_safetensors_meta_count(f);
  amp_st_tensor *t = calloc((size_t)n + 1, sizeof *t);
  const char **kv = calloc(2 * (size_t)nm + 2, sizeof *kv);
  for (int i = 0; i < n; i++) t[i] = *amp_safetensors_at(f, i);
  for (int i = 0; i < nm; i++) {
    kv[2 * i] = amp_safetensors_meta_at(f, i, &kv[2 * i + 1]);
    if (strcmp(kv[2 * i], key) == 0) kv[2 * i + 1] = val;
  }
  CHECK(amp_safetensors_write(NULL, dst, t, n, kv, nm) == AMP_OK, "rewrite");
  free(t);
  free(kv);
  amp_safetensors_free(f);
}

static void test_checkpoint(void) {
  char ck[300], ck2[300];
  path_in(ck, sizeof ck, "ck.safetensors");
  path_in(ck2, sizeof ck2, "ck2.safetensors");
  run a;
  run_make(&a, 1, 4, 0, 1, 11);
  run_train(&a, 9);
  /* A scale that is not a power of two: it must come back bit for bit. */
  amp_scaler_state ss = amp_scaler_get_state(a.sc);
  ss.scale = 1234.5677f;
  ss.params.min_scale = 1.1754944e-38f;
  ss.params.max_scale = 3.3e38f;
  ss.params.backoff_factor = 0.3; /* a double that no float equals */
  ss.skipped = 3;
  ss.hysteresis_left = 1;
  CHECK(amp_scaler_set_state(a.sc, &ss) == AMP_OK, "set_state: %s", amp_ctx_error(a.ctx));
  amp_optim_set_lr(a.opt, 0.0123456789f);
  const char *extra[] = {"config.recipe", "fp16", "config.steps", "100"};
  CHECK(amp_checkpoint_save(a.ctx, ck, a.m, a.opt, a.sc, a.ld, extra, 2) == AMP_OK, "save: %s",
        amp_ctx_error(a.ctx));
  snap sa = take(&a);
  CHECK(sa.step > 0 && sa.ls.next > 0, "trained state (step %lld, next %lld)", (long long)sa.step,
        (long long)sa.ls.next);
  amp_safetensors *f = NULL;
  CHECK(amp_safetensors_read(a.ctx, ck, &f) == AMP_OK, "read back");
  if (f) {
    CHECK(amp_safetensors_find(f, "0.weight") && amp_safetensors_find(f, "2.bias") &&
              amp_safetensors_find(f, "optim.exp_avg.0.weight") &&
              amp_safetensors_find(f, "optim.exp_avg_sq.2.bias") && amp_safetensors_count(f) == 12,
          "tensor names (%d)", amp_safetensors_count(f));
    const char *cfg = amp_safetensors_meta(f, "config.recipe");
    CHECK(cfg && strcmp(cfg, "fp16") == 0, "extra metadata");
    const char *sc = amp_safetensors_meta(f, "ampc.scaler.scale");
    CHECK(sc && strtof(sc, NULL) == 1234.5677f, "scale metadata %s", sc ? sc : "(none)");
    amp_safetensors_free(f);
  }
  /* b: another initialisation and fresh state, then the load. */
  run b;
  run_make(&b, 99, 4, 0, 1, 11);
  snap sb0 = take(&b);
  CHECK(!snap_same(&sa, &sb0), "b starts different");
  CHECK(amp_checkpoint_load(b.ctx, ck, b.m, b.opt, b.sc, b.ld) == AMP_OK, "load: %s",
        amp_ctx_error(b.ctx));
  snap sb = take(&b);
  CHECK(snap_same(&sa, &sb), "everything restored exactly (masters, moments, working copies, "
                             "step, lr, scaler, loader)");
  /* The resume is exact: the same steps give the same bits. */
  run_train(&a, 7);
  run_train(&b, 7);
  snap a2 = take(&a), b2 = take(&b);
  CHECK(snap_same(&a2, &b2), "training after the resume gives the same bits");
  snap_free(&a2);
  snap_free(&b2);
  snap_free(&sb0);
  snap_free(&sb);

  /* Loads that must fail and change nothing. */
  struct {
    const char *what;
    int64_t out;
    int deeper, last_bias;
    uint64_t seed;
    amp_status want;
    const char *msg;
  } bad[] = {
      {"shape", 3, 0, 1, 11, AMP_ERR_SHAPE,
       "tensor '2.weight' has shape [4, 5] in the file, [3, 5]"},
      {"extra", 4, 0, 0, 11, AMP_ERR_SHAPE, "unexpected tensor '2.bias'"},
      {"missing", 4, 1, 1, 11, AMP_ERR_SHAPE, "missing tensor '4.weight'"},
      {"seed", 4, 0, 1, 12, AMP_ERR_STATE, "seed"},
  };
  for (int i = 0; i < 4; i++) {
    run c;
    run_make(&c, 5, bad[i].out, bad[i].deeper, bad[i].last_bias, bad[i].seed);
    run_train(&c, 2);
    snap before = take(&c);
    amp_status s = amp_checkpoint_load(c.ctx, ck, c.m, c.opt, c.sc, c.ld);
    CHECK(s == bad[i].want && strstr(amp_ctx_error(c.ctx), bad[i].msg) &&
              strstr(amp_ctx_error(c.ctx), "ck.safetensors"),
          "%s: status %d, '%s'", bad[i].what, (int)s, amp_ctx_error(c.ctx));
    snap after = take(&c);
    CHECK(snap_same(&before, &after), "%s: nothing changed", bad[i].what);
    snap_free(&before);
    snap_free(&after);
    run_free(&c);
  }
  /* Bad metadata: found before anything is written, or refused by the
   * scaler / loader, which are then left (or put back) as they were. */
  struct {
    const char *key, *val, *msg;
  } badmeta[] = {
      {"ampc.optim.step", "-3", "ampc.optim.step"},
      {"ampc.optim.step", "12x", "ampc.optim.step"},
      {"ampc.scaler.scale", "nan", "ampc.scaler.scale"},
      {"ampc.scaler.mode", "turbo", "ampc.scaler.mode"},
      {"ampc.scaler.growth_tracker", "999", "growth_tracker out of range"},
      {"ampc.loader.next", "51", "invalid loader position"},
      {"ampc.format", "other", "ampc.format"},
      {"ampc.optim.state", "momentum", "optimizer state 'momentum'"},
      /* Counters are bounded so that a run cannot overflow them (2^53 + 1). */
      {"ampc.optim.step", "9007199254740993", "ampc.optim.step"},
      {"ampc.scaler.skipped", "9007199254740993", "ampc.scaler.skipped"},
      {"ampc.loader.epoch", "9007199254740993", "ampc.loader.epoch"},
      {"ampc.optim.lr", "-1", "ampc.optim.lr"},
  };
  for (int i = 0; i < (int)(sizeof badmeta / sizeof badmeta[0]); i++) {
    rewrite_meta(ck, ck2, badmeta[i].key, badmeta[i].val);
    run c;
    run_make(&c, 5, 4, 0, 1, 11);
    run_train(&c, 2);
    snap before = take(&c);
    amp_status s = amp_checkpoint_load(c.ctx, ck2, c.m, c.opt, c.sc, c.ld);
    CHECK(s != AMP_OK && strstr(amp_ctx_error(c.ctx), badmeta[i].msg) &&
              strstr(amp_ctx_error(c.ctx), "ck2.safetensors"),
          "%s=%s: status %d, '%s'", badmeta[i].key, badmeta[i].val, (int)s, amp_ctx_error(c.ctx));
    snap after = take(&c);
    CHECK(snap_same(&before, &after), "%s: nothing changed", badmeta[i].key);
    snap_free(&before);
    snap_free(&after);
    run_free(&c);
  }
  unlink(ck2);
  /* Without optimizer, scaler or loader: the model alone (optimizer tensors
   * ignored); a model-only checkpoint cannot restore an optimizer. */
  {
    run c;
    run_make(&c, 7, 4, 0, 1, 11);
    snap before = take(&c);
    CHECK(amp_checkpoint_load(c.ctx, ck, c.m, NULL, NULL, NULL) == AMP_OK, "model only: %s",
          amp_ctx_error(c.ctx));
    CHECK(memcmp(amp_optim_master_buffer(c.opt), sa.master, sizeof(float) * (size_t)sa.n) == 0,
          "model only: masters");
    snap mid = take(&c);
    CHECK(memcmp(mid.m, before.m, sizeof(float) * (size_t)sa.n) == 0 && mid.step == before.step,
          "model only: optimizer untouched");
    CHECK(amp_checkpoint_save(c.ctx, ck2, c.m, NULL, NULL, NULL, NULL, 0) == AMP_OK, "save model");
    amp_status s = amp_checkpoint_load(c.ctx, ck2, c.m, c.opt, NULL, NULL);
    CHECK(s == AMP_ERR_SHAPE && strstr(amp_ctx_error(c.ctx), "missing tensor 'optim.exp_avg.0"),
          "no optimizer state: %s", amp_ctx_error(c.ctx));
    amp_ctx_clear_error(c.ctx);
    s = amp_checkpoint_load(c.ctx, ck2, c.m, NULL, c.sc, NULL);
    CHECK(s == AMP_ERR_FORMAT && strstr(amp_ctx_error(c.ctx), "'ampc.scaler.mode' is missing"),
          "no scaler state: %s", amp_ctx_error(c.ctx));
    unlink(ck2);
    snap_free(&before);
    snap_free(&mid);
    run_free(&c);
  }
  /* A key of the extra metadata may not repeat one of ours. */
  const char *clash[] = {"ampc.optim.step", "1"};
  amp_ctx_clear_error(a.ctx);
  CHECK(amp_checkpoint_save(a.ctx, ck2, a.m, a.opt, NULL, NULL, clash, 1) == AMP_ERR_INVALID_ARG &&
            access(ck2, F_OK) != 0,
        "clashing key: %s", amp_ctx_error(a.ctx));
  snap_free(&sa);
  unlink(ck);
  run_free(&a);
  run_free(&b);
}

/* "%.9g" and strtof give back the same bits (what the metadata relies on). */
static void test_float_text(void) {
  amp_rng r;
  amp_rng_seed(&r, 7);
  int bad = 0;
  char buf[48];
  for (int i = 0; i < 300000; i++) {
    uint32_t bits = (uint32_t)amp_rng_next(&r);
    if (i < 64) bits = (uint32_t)i; /* subnormals, zero */
    float x;
    memcpy(&x, &bits, 4);
    if (!isfinite(x)) continue;
    snprintf(buf, sizeof buf, "%.9g", (double)x);
    float y = strtof(buf, NULL);
    bad += memcmp(&x, &y, 4) != 0;
  }
  CHECK(bad == 0, "%d floats did not round-trip through %%.9g", bad);
}

/* ------------------------------------------------------------------------ */

static void test_atomic(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_rng g;
  amp_rng_seed(&g, 3);
  amp_module *m = amp_nn_linear(ctx, &g, 64, 64, 1); /* 16.6 kB of masters */
  char ck[300], sub[300], inner[400];
  path_in(ck, sizeof ck, "atomic.safetensors");
  path_in(sub, sizeof sub, "ro");
  snprintf(inner, sizeof inner, "%s/ck.safetensors", sub);
  /* A directory that does not exist, and (unless root) one not writable. */
  amp_status s = amp_checkpoint_save(ctx, "/nonexistent-dir-ampc/ck.safetensors", m, NULL, NULL,
                                     NULL, NULL, 0);
  CHECK(s == AMP_ERR_IO && strstr(amp_ctx_error(ctx), "nonexistent-dir-ampc/ck.safetensors"),
        "missing directory: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  /* A "directory" that is a file (fails even for root). */
  char notdir[400];
  snprintf(notdir, sizeof notdir, "%s/sub/ck.safetensors", ck);
  CHECK(amp_checkpoint_save(ctx, ck, m, NULL, NULL, NULL, NULL, 0) == AMP_OK, "plain save");
  s = amp_checkpoint_save(ctx, notdir, m, NULL, NULL, NULL, NULL, 0);
  CHECK(s == AMP_ERR_IO && strstr(amp_ctx_error(ctx), "cannot create the temporary file"),
        "a file as the directory: %s", amp_ctx_error(ctx));
  unlink(ck);
  amp_ctx_clear_error(ctx);
  mkdir(sub, 0555);
  chmod(sub, 0555);
  if (geteuid() != 0) {
    s = amp_checkpoint_save(ctx, inner, m, NULL, NULL, NULL, NULL, 0);
    CHECK(s == AMP_ERR_IO && strstr(amp_ctx_error(ctx), "cannot create the temporary file"),
          "read-only directory: %s", amp_ctx_error(ctx));
    CHECK(dir_entries(sub) == 0, "nothing left in the read-only directory");
    amp_ctx_clear_error(ctx);
  } else {
    printf("note: running as root; the read-only directory case is skipped\n");
  }
  rmdir(sub);
  /* An existing checkpoint survives a save that fails while writing (the
   * file size limit makes write() fail with EFBIG). */
  CHECK(amp_checkpoint_save(ctx, ck, m, NULL, NULL, NULL, NULL, 0) == AMP_OK, "first save");
  size_t len0;
  unsigned char *before = slurp(ck, &len0);
  int entries = dir_entries(tmpdir);
  amp_tensor *w = amp_module_param(m, 0, NULL);
  ((float *)w->data)[0] += 1.0f; /* the new save would differ */
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = 4096;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
    s = amp_checkpoint_save(ctx, ck, m, NULL, NULL, NULL, NULL, 0);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(s == AMP_ERR_IO && strstr(amp_ctx_error(ctx), "cannot write"), "failed save: %d %s",
          (int)s, amp_ctx_error(ctx));
    size_t len1;
    unsigned char *after = slurp(ck, &len1);
    CHECK(before && after && len0 == len1 && memcmp(before, after, len0) == 0,
          "the old checkpoint is intact");
    CHECK(dir_entries(tmpdir) == entries, "no temporary file left (%d entries, %d before)",
          dir_entries(tmpdir), entries);
    free(after);
    amp_ctx_clear_error(ctx);
  } else {
    printf("note: setrlimit failed; the failed-write case is skipped\n");
  }
  signal(SIGXFSZ, prev);
  /* And a good save replaces it. */
  CHECK(amp_checkpoint_save(ctx, ck, m, NULL, NULL, NULL, NULL, 0) == AMP_OK, "second save");
  amp_safetensors *f = NULL;
  CHECK(amp_safetensors_read(ctx, ck, &f) == AMP_OK &&
            ((const float *)amp_safetensors_find(f, "weight")->data)[0] == ((float *)w->data)[0],
        "replaced");
  amp_safetensors_free(f);
  CHECK(dir_entries(tmpdir) == entries, "no temporary file after a good save");
  free(before);
  unlink(ck);
  amp_ctx_free(ctx);
}

static void test_export(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_rng g;
  amp_rng_seed(&g, 4);
  amp_module *kids[3] = {amp_nn_linear(ctx, &g, 7, 5, 1), amp_nn_relu(ctx),
                         amp_nn_linear(ctx, &g, 5, 2, 0)};
  amp_module *m = amp_nn_sequential(ctx, 3, kids);
  char p[300];
  path_in(p, sizeof p, "export.safetensors");
  amp_dtype dts[2] = {AMP_F16, AMP_BF16};
  for (int k = 0; k < 2; k++) {
    CHECK(amp_checkpoint_export(ctx, p, m, dts[k]) == AMP_OK, "export: %s", amp_ctx_error(ctx));
    amp_safetensors *f = NULL;
    CHECK(amp_safetensors_read(ctx, p, &f) == AMP_OK, "read export");
    if (!f) continue;
    CHECK(amp_safetensors_count(f) == amp_module_param_count(m), "count");
    for (int i = 0; i < amp_module_param_count(m); i++) {
      const char *name;
      amp_tensor *w = amp_module_param(m, i, &name);
      const amp_st_tensor *t = amp_safetensors_find(f, name);
      uint16_t *want = malloc((size_t)w->numel * 2);
      amp_convert(want, dts[k], w->data, AMP_F32, (size_t)w->numel);
      CHECK(t && t->dtype == dts[k] && t->bytes == (size_t)w->numel * 2 &&
                memcmp(t->data, want, t->bytes) == 0 && t->ndim == w->ndim,
            "%s: %s values equal amp_convert", name, amp_dtype_name(dts[k]));
      free(want);
    }
    const char *d = amp_safetensors_meta(f, "ampc.dtype");
    CHECK(d && strcmp(d, amp_dtype_name(dts[k])) == 0, "ampc.dtype");
    amp_safetensors_free(f);
  }
  CHECK(amp_checkpoint_export(ctx, p, m, AMP_I32) == AMP_ERR_INVALID_ARG, "export to I32");
  unlink(p);
  amp_ctx_free(ctx);
}

/* ------------------------------------------------------------------------ */

/* Files for tests/io_read.py, with the expected values in expect.txt. */
static int write_sample(const char *dir) {
  run a;
  run_make(&a, 1, 4, 0, 1, 11);
  run_train(&a, 5);
  char ck[512], ex[512], txt[512];
  snprintf(ck, sizeof ck, "%s/ckpt.safetensors", dir);
  snprintf(ex, sizeof ex, "%s/export.safetensors", dir);
  snprintf(txt, sizeof txt, "%s/expect.txt", dir);
  const char *extra[] = {"config.recipe", "fp16"};
  if (amp_checkpoint_save(a.ctx, ck, a.m, a.opt, a.sc, a.ld, extra, 1) != AMP_OK ||
      amp_checkpoint_export(a.ctx, ex, a.m, AMP_F16) != AMP_OK) {
    fprintf(stderr, "write: %s\n", amp_ctx_error(a.ctx));
    return 1;
  }
  FILE *fp = fopen(txt, "w");
  if (!fp) return 1;
  int64_t *step;
  float *mm, *vv;
  amp_optim_state(a.opt, &step, &mm, &vv);
  fprintf(fp, "count ckpt.safetensors %d\n", 3 * amp_module_param_count(a.m));
  fprintf(fp, "count export.safetensors %d\n", amp_module_param_count(a.m));
  int64_t off = 0;
  for (int i = 0; i < amp_module_param_count(a.m); i++) {
    const char *name;
    amp_tensor *p = amp_module_param(a.m, i, &name);
    int64_t idx[3] = {0, p->numel / 2, p->numel - 1};
    const char *pre[3] = {"", "optim.exp_avg.", "optim.exp_avg_sq."};
    const float *src[3] = {p->data, mm + off, vv + off};
    for (int j = 0; j < 3; j++)
      for (int q = 0; q < 3; q++) {
        uint32_t bits;
        memcpy(&bits, &src[j][idx[q]], 4);
        fprintf(fp, "tensor ckpt.safetensors %s%s F32 %lld", pre[j], name, (long long)idx[q]);
        fprintf(fp, " %u shape", bits);
        for (int d = 0; d < p->ndim; d++) fprintf(fp, " %lld", (long long)p->shape[d]);
        fprintf(fp, "\n");
      }
    for (int q = 0; q < 3; q++) {
      amp_f16 h = amp_f32_to_f16(((float *)p->data)[idx[q]]);
      fprintf(fp, "tensor export.safetensors %s F16 %lld %u shape", name, (long long)idx[q],
              (unsigned)h.bits);
      for (int d = 0; d < p->ndim; d++) fprintf(fp, " %lld", (long long)p->shape[d]);
      fprintf(fp, "\n");
    }
    off += p->numel;
  }
  amp_scaler_state ss = amp_scaler_get_state(a.sc);
  uint32_t sbits;
  memcpy(&sbits, &ss.scale, 4);
  fprintf(fp, "metaf32 ckpt.safetensors ampc.scaler.scale %u\n", sbits);
  fprintf(fp, "meta ckpt.safetensors ampc.optim.step %lld\n", (long long)*step);
  fprintf(fp, "meta ckpt.safetensors ampc.loader.next %lld\n",
          (long long)amp_loader_get_state(a.ld).next);
  fprintf(fp, "meta ckpt.safetensors config.recipe fp16\n");
  fprintf(fp, "meta export.safetensors ampc.dtype f16\n");
  fclose(fp);
  run_free(&a);
  return 0;
}

/* Issue 11: non-finite state is never saved (the old file stays), a file
 * holding a non-finite value is refused on load with the tensor's name, and
 * a save removes the temporary files a killed process left for the same
 * target (only those: a live process's and another target's stay). */
static void test_nonfinite_and_stale(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_rng g;
  amp_rng_seed(&g, 5);
  amp_module *m = amp_nn_linear(ctx, &g, 4, 3, 1);
  amp_optim_params op = amp_optim_defaults(AMP_OPTIM_ADAM);
  amp_optim *opt = amp_optim_create(ctx, m, &op);
  char ck[300], stale[400], live[400], other[400], odd[400];
  path_in(ck, sizeof ck, "nf.safetensors");
  CHECK(amp_checkpoint_save(ctx, ck, m, opt, NULL, NULL, NULL, 0) == AMP_OK, "good save");
  size_t len0, len1;
  unsigned char *before = slurp(ck, &len0);
  amp_tensor *w = amp_module_param(m, 1, NULL);
  float keep = ((float *)w->data)[2];
  ((float *)w->data)[2] = NAN;
  CHECK(amp_checkpoint_check_finite(ctx, m, opt, NULL) == AMP_ERR_STATE &&
            strstr(amp_ctx_error(ctx), "index 2"),
        "check_finite names the value: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  CHECK(amp_checkpoint_save(ctx, ck, m, opt, NULL, NULL, NULL, 0) == AMP_ERR_STATE &&
            strstr(amp_ctx_error(ctx), "not saved"),
        "a NaN master is not saved: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  ((float *)w->data)[2] = keep;
  float *mom[2];
  int64_t *step;
  amp_optim_state(opt, &step, &mom[0], &mom[1]);
  mom[1][0] = INFINITY; /* Adam's v saturated */
  CHECK(amp_checkpoint_save(ctx, ck, m, opt, NULL, NULL, NULL, 0) == AMP_ERR_STATE &&
            strstr(amp_ctx_error(ctx), "optim.exp_avg_sq."),
        "an inf moment is not saved: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  unsigned char *after = slurp(ck, &len1);
  CHECK(before && after && len0 == len1 && memcmp(before, after, len0) == 0,
        "the good checkpoint stays");
  /* A non-finite value in the file: refused, named, nothing changed. */
  mom[1][0] = 0;
  ((float *)w->data)[2] = INFINITY;
  {
    /* Write the non-finite file by hand: the checkpoint writer refuses. */
    amp_st_tensor ts[2];
    memset(ts, 0, sizeof ts);
    amp_tensor *b = amp_module_param(m, 0, NULL);
    const char *n0 = NULL, *n1 = NULL;
    amp_module_param(m, 0, &n0);
    amp_module_param(m, 1, &n1);
    amp_tensor *ps[2] = {b, w};
    const char *names[2] = {n0, n1};
    for (int i = 0; i < 2; i++) {
      ts[i].name = names[i];
      ts[i].dtype = AMP_F32;
      ts[i].ndim = ps[i]->ndim;
      for (int d = 0; d < AMP_MAX_DIMS; d++) ts[i].shape[d] = d < ps[i]->ndim ? ps[i]->shape[d] : 1;
      ts[i].data = ps[i]->data;
      ts[i].bytes = (size_t)ps[i]->numel * 4;
    }
    const char *meta[] = {"ampc.format", "ampc-checkpoint-1"};
    CHECK(amp_safetensors_write(ctx, ck, ts, 2, meta, 1) == AMP_OK, "hand-written file");
  }
  ((float *)w->data)[2] = keep;
  CHECK(amp_checkpoint_load(ctx, ck, m, NULL, NULL, NULL) == AMP_ERR_FORMAT &&
            strstr(amp_ctx_error(ctx), "non-finite value at index 2"),
        "a non-finite weight is refused on load: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  CHECK(((float *)w->data)[2] == keep, "nothing loaded");
  /* Stale temporary files. */
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, NULL, 0);
  snprintf(stale, sizeof stale, "%s.tmp.%ld.3", ck, (long)dead);
  snprintf(live, sizeof live, "%s.tmp.%ld.0", ck, (long)getppid());
  snprintf(other, sizeof other, "%s.x.tmp.%ld.0", ck, (long)dead);
  snprintf(odd, sizeof odd, "%s.tmp.%ld.3.old", ck, (long)dead);
  const char *made[] = {stale, live, other, odd};
  for (int i = 0; i < 4; i++) fclose(fopen(made[i], "w"));
  CHECK(amp_checkpoint_save(ctx, ck, m, opt, NULL, NULL, NULL, 0) == AMP_OK, "save");
  CHECK(access(stale, F_OK) != 0, "the dead process's temporary file is removed");
  CHECK(access(live, F_OK) == 0 && access(other, F_OK) == 0 && access(odd, F_OK) == 0,
        "a live process's, another target's and an odd name stay");
  for (int i = 0; i < 4; i++) unlink(made[i]);
  unlink(ck);
  free(before);
  free(after);
  amp_ctx_free(ctx);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--write") == 0) return write_sample(argv[2]);
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/ampc_test_io.XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_roundtrip();
  test_malformed();
  test_mutations();
  test_float_text();
  test_checkpoint();
  test_atomic();
  test_nonfinite_and_stale();
  test_export();
  CHECK(dir_entries(tmpdir) == 0, "the tests leave no files (%d)", dir_entries(tmpdir));
  rmdir(tmpdir);
  TEST_MAIN_END();
}

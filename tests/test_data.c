/* The data layer: the IDX parser, MNIST loading (crafted files in a temp
 * directory, and the real files when present), synthetic and caller-supplied
 * data sets, and the loader (shuffling, batching, dtypes, resumable state). */
#include "check.h"

#include "ampc.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int has(const amp_ctx *ctx, const char *needle) {
  return strstr(amp_ctx_error(ctx), needle) != NULL;
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* A malloc'd IDX buffer (exact size, so ASan catches over-reads): magic
 * 0x000008nd, nd dims, then `payload` bytes (i*13+1 & 255), then `extra`
 * bytes. */
static uint8_t *make_idx(int nd, const uint32_t *dims, size_t payload, size_t extra, size_t *len) {
  *len = 4 + 4 * (size_t)nd + payload + extra;
  uint8_t *b = malloc(*len ? *len : 1);
  put_be32(b, 0x800u | (uint32_t)nd);
  for (int i = 0; i < nd; i++) put_be32(b + 4 + 4 * i, dims[i]);
  for (size_t i = 0; i < payload + extra; i++) b[4 + 4 * nd + i] = (uint8_t)(i * 13 + 1);
  return b;
}

/* Runs amp_idx_parse on buf[0..len) (copied into an exact-size allocation)
 * and checks it fails with `want` and a message containing `needle`. */
static void expect_idx_error(const uint8_t *buf, size_t len, int nd, amp_status want,
                             const char *needle, const char *what) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  uint8_t *copy = malloc(len ? len : 1);
  if (len) memcpy(copy, buf, len);
  int64_t dims[3] = {-1, -1, -1};
  const uint8_t *pl = (const uint8_t *)1;
  amp_status s = amp_idx_parse(ctx, copy, len, nd, dims, &pl);
  CHECK(s == want, "%s: status %d, want %d (%s)", what, (int)s, (int)want, amp_ctx_error(ctx));
  CHECK(amp_ctx_status(ctx) == want, "%s: recorded on ctx", what);
  CHECK(has(ctx, needle), "%s: message '%s' lacks '%s'", what, amp_ctx_error(ctx), needle);
  CHECK(pl == NULL, "%s: payload not set on failure", what);
  free(copy);
  amp_ctx_free(ctx);
}

static void test_idx_parse(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  size_t len;
  uint32_t d3[3] = {2, 3, 4};
  uint8_t *b = make_idx(3, d3, 24, 0, &len);
  int64_t dims[3] = {0, 0, 0};
  const uint8_t *pl = NULL;
  CHECK(amp_idx_parse(ctx, b, len, 3, dims, &pl) == AMP_OK, "good 3-d: %s", amp_ctx_error(ctx));
  CHECK(dims[0] == 2 && dims[1] == 3 && dims[2] == 4, "dims %lld %lld %lld", (long long)dims[0],
        (long long)dims[1], (long long)dims[2]);
  CHECK(pl == b + 16, "payload follows the 16-byte header");
  CHECK(pl && pl[0] == 1 && pl[23] == (uint8_t)(23 * 13 + 1), "payload bytes");
  /* Error paths, each on a fresh context. */
  expect_idx_error(b, len - 1, 3, AMP_ERR_FORMAT, "truncated: expected 40 bytes, found 39",
                   "payload short by one");
  free(b);
  b = make_idx(3, d3, 24, 1, &len);
  expect_idx_error(b, len, 3, AMP_ERR_FORMAT, "trailing bytes: expected 40 bytes, found 41",
                   "one trailing byte");
  expect_idx_error(b, len, 1, AMP_ERR_FORMAT, "magic", "3-d file read as 1-d");
  expect_idx_error(b, 10, 3, AMP_ERR_FORMAT, "truncated", "header cut");
  expect_idx_error(b, 3, 3, AMP_ERR_FORMAT, "truncated", "3 bytes");
  expect_idx_error(b, 0, 3, AMP_ERR_FORMAT, "truncated", "empty");
  b[2] = 0x09; /* signed bytes */
  expect_idx_error(b, len, 3, AMP_ERR_FORMAT, "bad magic number 0x00000903", "type 0x09");
  b[2] = 0x08;
  b[0] = 0x01;
  expect_idx_error(b, len, 3, AMP_ERR_FORMAT, "magic", "non-zero first byte");
  free(b);
  /* 1-d: good, and a zero dimension. */
  uint32_t d1 = 5;
  b = make_idx(1, &d1, 5, 0, &len);
  CHECK(amp_idx_parse(ctx, b, len, 1, dims, &pl) == AMP_OK, "good 1-d");
  CHECK(dims[0] == 5 && dims[1] == 1 && dims[2] == 1, "1-d dims padded with 1");
  free(b);
  uint32_t d0[3] = {4, 0, 28};
  b = make_idx(3, d0, 0, 0, &len);
  expect_idx_error(b, len, 3, AMP_ERR_FORMAT, "dimension 1 is 0", "zero dimension");
  free(b);
  /* Huge declared dimensions: overflow (never a huge read). */
  uint32_t dh[3] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
  b = make_idx(3, dh, 8, 0, &len);
  expect_idx_error(b, len, 3, AMP_ERR_FORMAT, "overflow", "2^96 bytes");
  free(b);
  uint32_t dbig[3] = {65536, 65536, 65536};
  b = make_idx(3, dbig, 8, 0, &len);
  expect_idx_error(b, len, 3, AMP_ERR_FORMAT, "truncated: expected 281474976710672 bytes",
                   "2^48 elements: representable, so truncated");
  free(b);
  uint32_t d65[3] = {0xFFFFFFFFu, 0xFFFFFFFFu, 2};
  b = make_idx(3, d65, 8, 0, &len);
  expect_idx_error(b, len, 3, AMP_ERR_FORMAT, "overflow", "2^65 elements");
  free(b);
  uint32_t dlarge[3] = {0xFFFFFFFFu, 1, 1};
  b = make_idx(3, dlarge, 8, 0, &len);
  expect_idx_error(b, len, 3, AMP_ERR_FORMAT, "truncated: expected 4294967311 bytes, found 24",
                   "4 GB declared, 8 bytes present");
  free(b);
  /* Misuse. */
  amp_ctx_clear_error(ctx);
  CHECK(amp_idx_parse(ctx, NULL, 10, 3, dims, &pl) == AMP_ERR_INVALID_ARG, "NULL buffer");
  amp_ctx_clear_error(ctx);
  CHECK(amp_idx_parse(ctx, "x", 1, 4, dims, &pl) == AMP_ERR_INVALID_ARG, "ndim 4");
  CHECK(amp_idx_parse(NULL, "x", 1, 3, dims, &pl) == AMP_ERR_FORMAT, "NULL ctx is allowed");
  /* Random corruptions of a good file: an error or a consistent success,
     never a read outside the buffer (ASan checks that). */
  uint32_t ds[3] = {3, 2, 2};
  uint8_t *good = make_idx(3, ds, 12, 0, &len);
  uint64_t r = 12345;
  int ok = 0, bad = 0;
  for (int it = 0; it < 3000; it++) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    size_t l2 = (size_t)(r >> 33) % (len + 4);
    uint8_t *m = malloc(l2 ? l2 : 1);
    for (size_t i = 0; i < l2; i++) m[i] = i < len ? good[i] : 0;
    if (l2 > 0) m[(r >> 20) % l2] ^= (uint8_t)(1u << ((r >> 8) % 8));
    amp_ctx_clear_error(ctx);
    amp_status s = amp_idx_parse(ctx, m, l2, 3, dims, &pl);
    if (s == AMP_OK) {
      ok++;
      CHECK(16 + (size_t)(dims[0] * dims[1] * dims[2]) == l2 && pl == m + 16,
            "success is consistent");
    } else {
      bad++;
      CHECK(s == AMP_ERR_FORMAT && amp_ctx_error(ctx)[0] != '\0', "error with message");
    }
    free(m);
  }
  CHECK(bad > 2000 && ok > 10, "fuzz mix: %d ok, %d errors", ok, bad);
  free(good);
  amp_ctx_free(ctx);
}

/* ---- Crafted MNIST directories ---------------------------------------- */

static void write_file(const char *dir, const char *name, const uint8_t *b, size_t len) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL, "create %s", path);
  if (!f) return;
  CHECK(fwrite(b, 1, len, f) == len, "write %s", path);
  fclose(f);
}

static void remove_file(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  remove(path);
}

static const char *const mnist_names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

static uint8_t pixel(int64_t i, int64_t j) { return (uint8_t)((i * 131 + j * 7 + (j >> 3)) & 255); }

/* Writes an MNIST split with n images (rows x cols) and nl labels: label i
 * is labels[i]. */
static void write_mnist(const char *dir, int train, uint32_t n, uint32_t rows, uint32_t cols,
                        uint32_t nl, const uint8_t *labels) {
  size_t px = (size_t)n * rows * cols;
  uint8_t *b = malloc(16 + px);
  put_be32(b, 0x803);
  put_be32(b + 4, n);
  put_be32(b + 8, rows);
  put_be32(b + 12, cols);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < (size_t)rows * cols; j++)
      b[16 + i * rows * cols + j] = pixel((int64_t)i, (int64_t)j);
  write_file(dir, mnist_names[train ? 0 : 2], b, 16 + px);
  free(b);
  uint8_t *l = malloc(8 + nl);
  put_be32(l, 0x801);
  put_be32(l + 4, nl);
  memcpy(l + 8, labels, nl);
  write_file(dir, mnist_names[train ? 1 : 3], l, 8 + nl);
  free(l);
}

static void expect_mnist_error(const char *dir, int train, amp_status want, const char *needle,
                               const char *needle2, const char *what) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_dataset *ds = (amp_dataset *)&ctx; /* must be overwritten with NULL */
  amp_status s = amp_mnist_load(ctx, dir, train, &ds);
  CHECK(s == want, "%s: status %d want %d (%s)", what, (int)s, (int)want, amp_ctx_error(ctx));
  CHECK(ds == NULL, "%s: no data set on failure", what);
  CHECK(has(ctx, "mnist: "), "%s: message '%s' names mnist", what, amp_ctx_error(ctx));
  CHECK(has(ctx, needle), "%s: message '%s' lacks '%s'", what, amp_ctx_error(ctx), needle);
  if (needle2)
    CHECK(has(ctx, needle2), "%s: message '%s' lacks '%s'", what, amp_ctx_error(ctx), needle2);
  amp_ctx_free(ctx);
}

/* A FIFO in place of an IDX file is refused at once (an open() without
 * O_NONBLOCK would wait forever for a writer: the alarm fails the test). */
static void test_mnist_fifo(void) {
  char dir[] = "/tmp/ampc_test_data_XXXXXX";
  if (!mkdtemp(dir)) {
    CHECK(0, "mkdtemp failed");
    return;
  }
  char p[128];
  snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
  CHECK(mkfifo(p, 0600) == 0, "mkfifo %s", p);
  alarm(20);
  expect_mnist_error(dir, 1, AMP_ERR_IO, "not a regular file", "train-images-idx3-ubyte", "FIFO");
  alarm(0);
  unlink(p);
  rmdir(dir);
}

static void test_mnist_crafted(void) {
  char dir[] = "/tmp/ampc_test_data_XXXXXX";
  if (!mkdtemp(dir)) {
    CHECK(0, "mkdtemp failed");
    return;
  }
  const uint8_t labels[5] = {3, 1, 4, 1, 5}, labels_t[2] = {9, 0};
  /* Nothing there yet: the message says how to fetch the data. */
  expect_mnist_error(dir, 1, AMP_ERR_IO, "scripts/fetch-mnist", "train-images-idx3-ubyte",
                     "empty dir");
  write_mnist(dir, 1, 5, 28, 28, 5, labels);
  write_mnist(dir, 0, 2, 28, 28, 2, labels_t);
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_dataset *ds = NULL;
  CHECK(amp_mnist_load(ctx, dir, 1, &ds) == AMP_OK, "load crafted train: %s", amp_ctx_error(ctx));
  CHECK(amp_dataset_size(ds) == 5 && amp_dataset_features(ds) == 784 &&
            amp_dataset_classes(ds) == 10,
        "crafted train shape");
  if (ds) {
    /* In-order F32 batches without normalisation give x/255 exactly. */
    amp_loader_params p = {.batch = 5, .dtype = AMP_F32};
    amp_loader *l = amp_loader_create(ctx, ds, &p);
    amp_tensor *x, *y;
    CHECK(amp_loader_next(l, &x, &y) == 1, "one batch");
    int bad = 0;
    for (int64_t i = 0; i < 5; i++) {
      CHECK(((int32_t *)y->data)[i] == labels[i], "label %lld", (long long)i);
      for (int64_t j = 0; j < 784; j++)
        bad += ((float *)x->data)[i * 784 + j] != (float)pixel(i, j) / 255.0f;
    }
    CHECK(bad == 0, "%d pixels differ from x/255", bad);
    CHECK(x->shape[0] == 5 && x->shape[1] == 784 && x->dtype == AMP_F32, "x shape");
    amp_loader_free(l);
  }
  amp_dataset_free(ds);
  ds = NULL;
  CHECK(amp_mnist_load(ctx, dir, 0, &ds) == AMP_OK, "load crafted t10k");
  CHECK(amp_dataset_size(ds) == 2, "t10k size");
  amp_dataset_free(ds);
  amp_ctx_free(ctx);

  /* Failure modes, one at a time, each rewriting the train split. */
  write_mnist(dir, 1, 5, 28, 28, 4, labels);
  expect_mnist_error(dir, 1, AMP_ERR_FORMAT, "5 images", "4 labels", "count mismatch");
  write_mnist(dir, 1, 5, 27, 28, 5, labels);
  expect_mnist_error(dir, 1, AMP_ERR_FORMAT, "27x28, expected 28x28", NULL, "27x28 images");
  const uint8_t badlab[5] = {3, 1, 10, 1, 5};
  write_mnist(dir, 1, 5, 28, 28, 5, badlab);
  expect_mnist_error(dir, 1, AMP_ERR_FORMAT, "label 10 of sample 2 is not in 0..9",
                     "train-labels-idx1-ubyte", "label 10");
  /* Truncated images: keep the header, cut the payload to 1000 bytes. */
  write_mnist(dir, 1, 5, 28, 28, 5, labels);
  {
    uint8_t b[1000];
    put_be32(b, 0x803);
    put_be32(b + 4, 5);
    put_be32(b + 8, 28);
    put_be32(b + 12, 28);
    memset(b + 16, 7, sizeof b - 16);
    write_file(dir, mnist_names[0], b, sizeof b);
    expect_mnist_error(dir, 1, AMP_ERR_FORMAT,
                       "train-images-idx3-ubyte: truncated: expected 3936 "
                       "bytes, found 1000",
                       NULL, "truncated images");
    put_be32(b, 0x801);
    write_file(dir, mnist_names[0], b, sizeof b);
    expect_mnist_error(dir, 1, AMP_ERR_FORMAT, "bad magic number 0x00000801", NULL,
                       "labels magic in the images file");
  }
  /* Trailing bytes in the labels file. */
  write_mnist(dir, 1, 5, 28, 28, 5, labels);
  {
    uint8_t l[14];
    put_be32(l, 0x801);
    put_be32(l + 4, 5);
    memcpy(l + 8, labels, 5);
    l[13] = 0;
    write_file(dir, mnist_names[1], l, sizeof l);
    expect_mnist_error(dir, 1, AMP_ERR_FORMAT, "trailing bytes: expected 13 bytes, found 14",
                       "train-labels", "trailing label byte");
  }
  /* A missing labels file next to good images. */
  remove_file(dir, mnist_names[1]);
  expect_mnist_error(dir, 1, AMP_ERR_IO, "scripts/fetch-mnist", "train-labels-idx1-ubyte",
                     "labels missing");
  /* The test split still loads. */
  ctx = amp_ctx_create(NULL);
  ds = NULL;
  CHECK(amp_mnist_load(ctx, dir, 0, &ds) == AMP_OK, "t10k unaffected");
  amp_dataset_free(ds);
  CHECK(amp_mnist_load(ctx, NULL, 0, &ds) == AMP_ERR_INVALID_ARG && ds == NULL, "NULL dir");
  amp_ctx_free(ctx);
  for (int i = 0; i < 4; i++) remove_file(dir, mnist_names[i]);
  CHECK(rmdir(dir) == 0, "temp dir cleaned up");
}

/* Normalised U8 batches: F32 values against the formula, and F16/BF16
 * batches bit-equal to amp_convert of the F32 batch (one rounding). */
static void test_loader_u8_dtypes(void) {
  char dir[] = "/tmp/ampc_test_data_XXXXXX";
  if (!mkdtemp(dir)) {
    CHECK(0, "mkdtemp failed");
    return;
  }
  uint8_t labels[7];
  for (int i = 0; i < 7; i++) labels[i] = (uint8_t)(i % 10);
  write_mnist(dir, 0, 7, 28, 28, 7, labels);
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_dataset *ds = NULL;
  CHECK(amp_mnist_load(ctx, dir, 0, &ds) == AMP_OK, "load: %s", amp_ctx_error(ctx));
  remove_file(dir, mnist_names[2]);
  remove_file(dir, mnist_names[3]);
  rmdir(dir);
  if (!ds) {
    amp_ctx_free(ctx);
    return;
  }
  amp_loader_params p = {.batch = 3, .shuffle = 1, .seed = 99, .dtype = AMP_F32, .normalize = 1};
  amp_loader *l32 = amp_loader_create(ctx, ds, &p);
  p.dtype = AMP_F16;
  amp_loader *l16 = amp_loader_create(ctx, ds, &p);
  p.dtype = AMP_BF16;
  amp_loader *lbf = amp_loader_create(ctx, ds, &p);
  CHECK(l32 && l16 && lbf, "loaders");
  amp_tensor *x32, *y32, *x16, *y16, *xbf, *ybf;
  int batches = 0, maxerr_bad = 0, f16_bad = 0, bf_bad = 0;
  uint16_t *tmp = malloc(3 * 784 * sizeof(uint16_t));
  while (amp_loader_next(l32, &x32, &y32) == 1) {
    batches++;
    CHECK(amp_loader_next(l16, &x16, &y16) == 1, "f16 batch");
    CHECK(amp_loader_next(lbf, &xbf, &ybf) == 1, "bf16 batch");
    CHECK(x16->dtype == AMP_F16 && xbf->dtype == AMP_BF16, "batch dtypes");
    CHECK(x32->arena == AMP_ARENA_STEP && y32->arena == AMP_ARENA_STEP && y32->dtype == AMP_I32,
          "step arena, I32 labels");
    int64_t b = x32->shape[0];
    CHECK(memcmp(y32->data, y16->data, (size_t)b * 4) == 0, "same labels f16");
    CHECK(memcmp(y32->data, ybf->data, (size_t)b * 4) == 0, "same labels bf16");
    /* The sample behind row r is identified by its label (i % 10 == i). */
    for (int64_t r = 0; r < b; r++) {
      int64_t s = ((int32_t *)y32->data)[r];
      for (int64_t j = 0; j < 784; j++) {
        double want = ((double)pixel(s, j) / 255.0 - 0.1307) / 0.3081;
        double got = ((float *)x32->data)[r * 784 + j];
        maxerr_bad += fabs(got - want) > 1e-6 * (1.0 + fabs(want));
      }
    }
    amp_convert(tmp, AMP_F16, x32->data, AMP_F32, (size_t)(b * 784));
    f16_bad += memcmp(tmp, x16->data, (size_t)(b * 784) * 2) != 0;
    amp_convert(tmp, AMP_BF16, x32->data, AMP_F32, (size_t)(b * 784));
    bf_bad += memcmp(tmp, xbf->data, (size_t)(b * 784) * 2) != 0;
    amp_ctx_step_reset(ctx);
  }
  free(tmp);
  CHECK(batches == 3, "7 samples in batches of 3: %d batches", batches);
  CHECK(maxerr_bad == 0, "%d normalised values off", maxerr_bad);
  CHECK(f16_bad == 0, "%d f16 batches differ from amp_convert", f16_bad);
  CHECK(bf_bad == 0, "%d bf16 batches differ from amp_convert", bf_bad);
  /* normalize = 0 with F16: x/255 rounded once. */
  p.dtype = AMP_F16;
  p.normalize = 0;
  p.shuffle = 0;
  amp_loader *lr = amp_loader_create(ctx, ds, &p);
  CHECK(amp_loader_next(lr, &x16, &y16) == 1, "raw f16 batch");
  int raw_bad = 0;
  for (int64_t j = 0; j < 3 * 784; j++) {
    float want = (float)pixel(j / 784, j % 784) / 255.0f;
    raw_bad += ((amp_f16 *)x16->data)[j].bits != amp_f32_to_f16(want).bits;
  }
  CHECK(raw_bad == 0, "%d raw f16 values differ", raw_bad);
  amp_loader_free(lr);
  amp_loader_free(l32);
  amp_loader_free(l16);
  amp_loader_free(lbf);
  amp_dataset_free(ds);
  amp_ctx_free(ctx);
}

/* ---- Caller-supplied and synthetic data sets --------------------------- */

/* n samples of 2 features: x = (i, -i), label i % classes. */
static amp_dataset *counting_dataset(amp_ctx *ctx, int64_t n, int64_t classes) {
  float *x = malloc((size_t)n * 2 * sizeof(float));
  int32_t *y = malloc((size_t)n * sizeof(int32_t));
  for (int64_t i = 0; i < n; i++) {
    x[2 * i] = (float)i;
    x[2 * i + 1] = -(float)i;
    y[i] = (int32_t)(i % classes);
  }
  amp_dataset *ds = NULL;
  CHECK(amp_dataset_from_f32(ctx, n, 2, classes, x, y, &ds) == AMP_OK, "from_f32: %s",
        amp_ctx_error(ctx));
  free(x);
  free(y);
  return ds;
}

static void test_from_f32(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  float x[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  int32_t y[4] = {0, 1, 2, 0};
  amp_dataset *ds = NULL;
  CHECK(amp_dataset_from_f32(ctx, 4, 3, 3, x, y, &ds) == AMP_OK, "good rows");
  CHECK(amp_dataset_size(ds) == 4 && amp_dataset_features(ds) == 3 && amp_dataset_classes(ds) == 3,
        "accessors");
  amp_dataset_free(ds);
  x[7] = NAN;
  ds = (amp_dataset *)&ctx;
  CHECK(amp_dataset_from_f32(ctx, 4, 3, 3, x, y, &ds) == AMP_ERR_INVALID_ARG, "NaN rejected");
  CHECK(ds == NULL, "no data set");
  CHECK(has(ctx, "sample 2") && has(ctx, "NaN"), "message names the sample: %s",
        amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  x[7] = 7;
  x[11] = -INFINITY;
  CHECK(amp_dataset_from_f32(ctx, 4, 3, 3, x, y, &ds) == AMP_ERR_INVALID_ARG, "-inf rejected");
  CHECK(has(ctx, "sample 3") && has(ctx, "infinite"), "inf message: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  x[11] = 11;
  y[1] = 3;
  CHECK(amp_dataset_from_f32(ctx, 4, 3, 3, x, y, &ds) == AMP_ERR_INVALID_ARG, "label 3 of 3");
  CHECK(has(ctx, "sample 1"), "label message: %s", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  y[1] = 1;
  CHECK(amp_dataset_from_f32(ctx, 0, 3, 3, x, y, &ds) == AMP_ERR_INVALID_ARG, "n = 0");
  amp_ctx_clear_error(ctx);
  CHECK(amp_dataset_from_f32(ctx, 4, 3, 3, NULL, y, &ds) == AMP_ERR_INVALID_ARG, "NULL x");
  CHECK(amp_dataset_size(NULL) == 0, "NULL size");
  amp_dataset_free(NULL);
  amp_ctx_free(ctx);
}

static uint64_t fnv1a(const void *p, size_t n) {
  const uint8_t *b = p;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

static void test_synthetic(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  enum { N = 2000, F = 16, C = 5 };
  amp_dataset *a = NULL, *b = NULL, *c = NULL;
  CHECK(amp_synthetic_load(ctx, N, F, C, 7, &a) == AMP_OK, "synthetic a");
  CHECK(amp_synthetic_load(ctx, N, F, C, 7, &b) == AMP_OK, "synthetic b");
  CHECK(amp_synthetic_load(ctx, N, F, C, 8, &c) == AMP_OK, "synthetic c");
  CHECK(amp_dataset_size(a) == N && amp_dataset_features(a) == F && amp_dataset_classes(a) == C,
        "synthetic shape");
  amp_loader_params p = {.batch = N, .dtype = AMP_F32};
  amp_loader *la = amp_loader_create(ctx, a, &p), *lb = amp_loader_create(ctx, b, &p),
             *lc = amp_loader_create(ctx, c, &p);
  amp_tensor *xa, *ya, *xb, *yb, *xc, *yc;
  CHECK(amp_loader_next(la, &xa, &ya) == 1 && amp_loader_next(lb, &xb, &yb) == 1 &&
            amp_loader_next(lc, &xc, &yc) == 1,
        "whole-set batches");
  CHECK(memcmp(xa->data, xb->data, sizeof(float) * N * F) == 0, "same seed, same bits");
  CHECK(memcmp(ya->data, yb->data, sizeof(int32_t) * N) == 0, "same seed, same labels");
  CHECK(memcmp(xa->data, xc->data, sizeof(float) * N * F) != 0, "other seed, other data");
  const float *x = xa->data;
  const int32_t *y = ya->data;
  /* Balanced labels; per-class means; within-class spread ~0.5. */
  double mean[C][F] = {{0}}, var = 0;
  int count[C] = {0};
  for (int i = 0; i < N; i++) {
    CHECK(y[i] >= 0 && y[i] < C, "label range");
    count[y[i]]++;
    for (int j = 0; j < F; j++) mean[y[i]][j] += x[i * F + j];
  }
  for (int k = 0; k < C; k++) {
    CHECK(count[k] == N / C, "class %d has %d samples", k, count[k]);
    for (int j = 0; j < F; j++) mean[k][j] /= count[k];
  }
  for (int i = 0; i < N; i++)
    for (int j = 0; j < F; j++) {
      double d = x[i * F + j] - mean[y[i]][j];
      var += d * d;
    }
  double sd = sqrt(var / (N * F));
  CHECK(sd > 0.47 && sd < 0.53, "within-class sd %g, want ~0.5", sd);
  /* Learnable: the nearest class mean classifies almost every sample. */
  int right = 0;
  for (int i = 0; i < N; i++) {
    int best = -1;
    double bd = 1e300;
    for (int k = 0; k < C; k++) {
      double d = 0;
      for (int j = 0; j < F; j++) d += (x[i * F + j] - mean[k][j]) * (x[i * F + j] - mean[k][j]);
      if (d < bd) bd = d, best = k;
    }
    right += best == y[i];
  }
  CHECK(right >= N * 98 / 100, "nearest-mean accuracy %d / %d", right, N);
  /* Pinned bits for a small set: the generator must give these on every
     machine (splitmix64 and exact arithmetic only). */
  amp_dataset *s = NULL;
  CHECK(amp_synthetic_load(ctx, 8, 4, 3, 1, &s) == AMP_OK, "small synthetic");
  amp_loader_params ps = {.batch = 8, .dtype = AMP_F32};
  amp_loader *ls = amp_loader_create(ctx, s, &ps);
  amp_tensor *xs, *ys;
  CHECK(amp_loader_next(ls, &xs, &ys) == 1, "small batch");
  uint64_t h = fnv1a(xs->data, 8 * 4 * sizeof(float));
  CHECK(h == 0x6c22b765749c452cull, "pinned hash %016llx", (unsigned long long)h);
  amp_ctx_clear_error(ctx);
  amp_dataset *z = (amp_dataset *)&ctx;
  CHECK(amp_synthetic_load(ctx, 10, 0, 2, 1, &z) == AMP_ERR_INVALID_ARG && z == NULL, "0 features");
  amp_loader_free(ls);
  amp_dataset_free(s);
  amp_loader_free(la);
  amp_loader_free(lb);
  amp_loader_free(lc);
  amp_dataset_free(a);
  amp_dataset_free(b);
  amp_dataset_free(c);
  amp_ctx_free(ctx);
}

/* ---- The loader --------------------------------------------------------- */

/* Runs one epoch; writes the sample ids (x[.,0]) into ids and returns how
 * many were delivered; batch sizes go into sizes (returns count in *nb). */
static int64_t run_epoch(amp_ctx *ctx, amp_loader *l, int64_t *ids, int64_t *sizes, int *nb) {
  amp_tensor *x, *y;
  int64_t k = 0;
  int r;
  *nb = 0;
  while ((r = amp_loader_next(l, &x, &y)) == 1) {
    CHECK(x->dtype == AMP_F32 && x->shape[1] == 2 && y->shape[0] == x->shape[0], "batch shape");
    for (int64_t i = 0; i < x->shape[0]; i++) {
      float v = ((float *)x->data)[2 * i];
      CHECK(((float *)x->data)[2 * i + 1] == -v, "row intact");
      ids[k++] = (int64_t)v;
      CHECK(((int32_t *)y->data)[i] == (int32_t)((int64_t)v % 3), "label follows its sample");
    }
    sizes[(*nb)++] = x->shape[0];
    amp_ctx_step_reset(ctx);
  }
  CHECK(r == 0 && x == NULL && y == NULL, "end of epoch returns 0 and NULLs");
  return k;
}

static void test_loader(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  enum { N = 100 };
  amp_dataset *ds = counting_dataset(ctx, N, 3);
  int64_t e0[N], e1[N], e2[N], sizes[N];
  int nb;
  /* In order, no shuffle: 0..N-1 in batches 7,...,7,2. */
  amp_loader_params p = {.batch = 7, .dtype = AMP_F32};
  amp_loader *l = amp_loader_create(ctx, ds, &p);
  CHECK(amp_loader_batches_per_epoch(l) == 15, "15 batches");
  CHECK(run_epoch(ctx, l, e0, sizes, &nb) == N && nb == 15, "in-order epoch");
  int inorder = 1;
  for (int i = 0; i < N; i++) inorder &= e0[i] == i;
  CHECK(inorder, "unshuffled order is 0..N-1");
  CHECK(sizes[0] == 7 && sizes[13] == 7 && sizes[14] == 2, "last batch partial");
  CHECK(amp_loader_get_state(l).epoch == 1 && amp_loader_get_state(l).next == 0, "epoch 1");
  amp_loader_free(l);

  /* Shuffled: each sample exactly once per epoch; epochs differ. */
  p.shuffle = 1;
  p.seed = 2024;
  l = amp_loader_create(ctx, ds, &p);
  CHECK(run_epoch(ctx, l, e0, sizes, &nb) == N, "epoch 0 size");
  CHECK(run_epoch(ctx, l, e1, sizes, &nb) == N, "epoch 1 size");
  int seen0[N] = {0}, seen1[N] = {0}, same = 0, fixed = 0;
  for (int i = 0; i < N; i++) {
    if (e0[i] >= 0 && e0[i] < N) seen0[e0[i]]++;
    if (e1[i] >= 0 && e1[i] < N) seen1[e1[i]]++;
    same += e0[i] == e1[i];
    fixed += e0[i] == i;
  }
  int once = 1;
  for (int i = 0; i < N; i++) once &= seen0[i] == 1 && seen1[i] == 1;
  CHECK(once, "every sample exactly once per epoch");
  CHECK(same < 10, "epochs 0 and 1 differ (%d positions agree)", same);
  CHECK(fixed < 10, "epoch 0 is shuffled (%d fixed points)", fixed);
  /* The same seed repeats; another seed does not. */
  amp_loader *l2 = amp_loader_create(ctx, ds, &p);
  CHECK(run_epoch(ctx, l2, e2, sizes, &nb) == N && memcmp(e0, e2, sizeof e0) == 0,
        "same seed, same epoch 0");
  CHECK(run_epoch(ctx, l2, e2, sizes, &nb) == N && memcmp(e1, e2, sizeof e1) == 0,
        "same seed, same epoch 1");
  amp_loader_free(l2);
  p.seed = 2025;
  l2 = amp_loader_create(ctx, ds, &p);
  run_epoch(ctx, l2, e2, sizes, &nb);
  CHECK(memcmp(e0, e2, sizeof e0) != 0, "other seed, other order");
  amp_loader_free(l2);

  /* drop_last: 14 full batches, 98 distinct samples. */
  p.drop_last = 1;
  l2 = amp_loader_create(ctx, ds, &p);
  CHECK(amp_loader_batches_per_epoch(l2) == 14, "14 batches with drop_last");
  for (int ep = 0; ep < 2; ep++) {
    int64_t k = run_epoch(ctx, l2, e2, sizes, &nb);
    CHECK(k == 98 && nb == 14, "drop_last epoch %d: %lld samples, %d batches", ep, (long long)k,
          nb);
    int all7 = 1, dup = 0;
    for (int i = 0; i < nb; i++) all7 &= sizes[i] == 7;
    int seen[N] = {0};
    for (int64_t i = 0; i < k; i++) dup += seen[e2[i]]++ != 0;
    CHECK(all7 && dup == 0, "full batches, no repeats");
  }
  amp_loader_free(l2);
  p.drop_last = 0;

  /* get/set state resumes the exact sequence, mid-epoch and at a boundary. */
  p.seed = 77;
  p.batch = 8;
  l2 = amp_loader_create(ctx, ds, &p);
  amp_tensor *x, *y;
  for (int i = 0; i < 20; i++) amp_loader_next(l2, &x, &y); /* into epoch 1 */
  amp_loader_state st = amp_loader_get_state(l2);
  CHECK(st.epoch == 1 && st.next == 6 * 8, "state %lld/%lld", (long long)st.epoch,
        (long long)st.next);
  int64_t ref[300], k1 = 0;
  int ends_ref = 0;
  for (int i = 0; i < 30; i++) {
    int r = amp_loader_next(l2, &x, &y);
    if (r == 0) ends_ref++;
    for (int64_t j = 0; r == 1 && j < x->shape[0]; j++)
      ref[k1++] = (int64_t)((float *)x->data)[2 * j];
    amp_ctx_step_reset(ctx);
  }
  amp_loader *l3 = amp_loader_create(ctx, ds, &p);
  CHECK(amp_loader_set_state(l3, st) == AMP_OK, "set state");
  CHECK(amp_loader_get_state(l3).epoch == 1 && amp_loader_get_state(l3).next == 48, "state set");
  int64_t got[300], k2 = 0;
  int ends = 0;
  for (int i = 0; i < 30; i++) {
    int r = amp_loader_next(l3, &x, &y);
    if (r == 0) ends++;
    for (int64_t j = 0; r == 1 && j < x->shape[0]; j++)
      got[k2++] = (int64_t)((float *)x->data)[2 * j];
    amp_ctx_step_reset(ctx);
  }
  CHECK(k1 == k2 && k1 > 150 && ends == ends_ref && ends == 2, "resumed length %lld/%lld",
        (long long)k1, (long long)k2);
  CHECK(memcmp(ref, got, (size_t)k1 * sizeof(int64_t)) == 0, "resumed sequence identical");
  /* At the end of an epoch: next returns 0, then epoch+1 begins. */
  amp_loader_state end = {3, N};
  CHECK(amp_loader_set_state(l3, end) == AMP_OK, "state at epoch end");
  CHECK(amp_loader_next(l3, &x, &y) == 0, "0 at the end");
  CHECK(amp_loader_get_state(l3).epoch == 4 && amp_loader_get_state(l3).next == 0, "epoch 4");
  amp_loader_state bad = {0, N + 1};
  CHECK(amp_loader_set_state(l3, bad) == AMP_ERR_INVALID_ARG, "next beyond size");
  CHECK(amp_loader_get_state(l3).epoch == 4, "unchanged after a bad state");
  amp_ctx_clear_error(ctx);
  amp_loader_free(l2);
  amp_loader_free(l3);
  amp_loader_free(l);

  /* Bad parameters. */
  amp_loader_params q = {.batch = 0, .dtype = AMP_F32};
  CHECK(amp_loader_create(ctx, ds, &q) == NULL && amp_ctx_status(ctx) == AMP_ERR_INVALID_ARG,
        "batch 0");
  amp_ctx_clear_error(ctx);
  q.batch = 4;
  q.dtype = AMP_I32;
  CHECK(amp_loader_create(ctx, ds, &q) == NULL && has(ctx, "i32"), "I32 batch dtype");
  amp_ctx_clear_error(ctx);
  /* A batch larger than the data set: one batch of everything. */
  q.dtype = AMP_F16;
  q.batch = 1000;
  amp_loader *lb = amp_loader_create(ctx, ds, &q);
  CHECK(amp_loader_batches_per_epoch(lb) == 1, "one batch");
  CHECK(amp_loader_next(lb, &x, &y) == 1 && x->shape[0] == N && x->dtype == AMP_F16, "all in one");
  int f16_ok = 1;
  for (int i = 0; i < N; i++)
    f16_ok &= ((amp_f16 *)x->data)[2 * i].bits == amp_f32_to_f16((float)i).bits;
  CHECK(f16_ok, "f16 batch of an f32 data set");
  amp_loader_free(lb);
  amp_dataset_free(ds);
  amp_ctx_free(ctx);
}

/* Fisher-Yates is unbiased: all 24 orders of 4 samples about equally often. */
static void test_shuffle_uniform(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_dataset *ds = counting_dataset(ctx, 4, 3);
  amp_loader_params p = {.batch = 4, .shuffle = 1, .seed = 5, .dtype = AMP_F32};
  amp_loader *l = amp_loader_create(ctx, ds, &p);
  int count[256] = {0};
  enum { EPOCHS = 4800 };
  for (int e = 0; e < EPOCHS; e++) {
    amp_tensor *x, *y;
    CHECK(amp_loader_next(l, &x, &y) == 1, "batch");
    int code = 0;
    for (int i = 0; i < 4; i++) code = code * 4 + (int)((float *)x->data)[2 * i];
    count[code & 255]++;
    CHECK(amp_loader_next(l, &x, &y) == 0, "end");
    amp_ctx_step_reset(ctx);
  }
  int distinct = 0, lo = EPOCHS, hi = 0;
  for (int i = 0; i < 256; i++)
    if (count[i]) {
      distinct++;
      lo = count[i] < lo ? count[i] : lo;
      hi = count[i] > hi ? count[i] : hi;
    }
  /* Expected 200 each, sd ~14: [140, 260] is > 4 sd. */
  CHECK(distinct == 24 && lo >= 140 && hi <= 260, "%d orders, counts %d..%d", distinct, lo, hi);
  amp_loader_free(l);
  amp_dataset_free(ds);
  amp_ctx_free(ctx);
}

/* The real MNIST files, when they have been fetched. */
static void test_mnist_real(void) {
  const char *env = getenv("AMPC_MNIST_DIR");
  char dir[1024];
  if (env && *env) {
    snprintf(dir, sizeof dir, "%s", env);
  } else {
    /* data/mnist under the source tree: this file is <root>/tests/test_data.c. */
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *t = strstr(dir, "tests/test_data.c");
    if (!t || dir[0] != '/') {
      printf("note: cannot locate the source tree; set AMPC_MNIST_DIR to test real MNIST\n");
      return;
    }
    snprintf(t, sizeof dir - (size_t)(t - dir), "data/mnist");
  }
  char probe[1100];
  snprintf(probe, sizeof probe, "%s/t10k-labels-idx1-ubyte", dir);
  if (access(probe, R_OK) != 0) {
    printf("note: %s not found; skipping the real-MNIST check (run scripts/fetch-mnist)\n", dir);
    return;
  }
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_dataset *tr = NULL, *te = NULL;
  CHECK(amp_mnist_load(ctx, dir, 1, &tr) == AMP_OK, "real train: %s", amp_ctx_error(ctx));
  CHECK(amp_mnist_load(ctx, dir, 0, &te) == AMP_OK, "real t10k: %s", amp_ctx_error(ctx));
  CHECK(amp_dataset_size(tr) == 60000 && amp_dataset_size(te) == 10000, "60000 / 10000");
  CHECK(amp_dataset_features(tr) == 784 && amp_dataset_classes(tr) == 10, "784 features");
  if (tr && te) {
    amp_loader_params p = {.batch = 2, .dtype = AMP_F32, .normalize = 1};
    amp_loader *l = amp_loader_create(ctx, tr, &p), *lt = amp_loader_create(ctx, te, &p);
    amp_tensor *x, *y;
    CHECK(amp_loader_next(l, &x, &y) == 1, "first train batch");
    CHECK(((int32_t *)y->data)[0] == 5 && ((int32_t *)y->data)[1] == 0, "train labels 5, 0");
    /* Pixels of the first image: mean of x/255 is ~0.137 for that digit;
       the normalised minimum is -0.1307/0.3081. */
    float mn = 1e9f;
    for (int j = 0; j < 784; j++) mn = ((float *)x->data)[j] < mn ? ((float *)x->data)[j] : mn;
    CHECK(fabsf(mn - (-0.1307f / 0.3081f)) < 1e-6f, "background pixel %g", mn);
    CHECK(amp_loader_next(lt, &x, &y) == 1 && ((int32_t *)y->data)[0] == 7, "first test label 7");
    amp_loader_free(l);
    amp_loader_free(lt);
  }
  amp_dataset_free(tr);
  amp_dataset_free(te);
  amp_ctx_free(ctx);
}

int main(void) {
  test_idx_parse();
  test_mnist_crafted();
  test_mnist_fifo();
  test_loader_u8_dtypes();
  test_from_f32();
  test_synthetic();
  test_loader();
  test_shuffle_uniform();
  test_mnist_real();
  TEST_MAIN_END();
}

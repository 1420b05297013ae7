/* The data of the models (issue 13): gzip-compressed IDX files (MNIST and
 * Fashion-MNIST as Debian ships them), corrupt gzip input, and byte-level
 * text with its llm.c-style batches. Small files are generated here (gzip
 * written with zlib); the real Fashion-MNIST and fortune files are checked
 * when installed (scripts/install-deps --data) and skipped with a reason
 * otherwise. */
#include "check.h"

#include <ampc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static int has(amp_ctx *ctx, const char *needle) {
  return strstr(amp_ctx_error(ctx), needle) != NULL;
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* gzip of `len` bytes (repeated `reps` times) into a malloc'd buffer. */
static uint8_t *gzip_bytes(const uint8_t *b, size_t len, int reps, size_t *out_len) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
  size_t cap = deflateBound(&z, (uLong)len) * (size_t)reps + 64, have = 0;
  uint8_t *o = malloc(cap);
  for (int r = 0; o && r < reps; r++) {
    z.next_in = (Bytef *)b;
    z.avail_in = (uInt)len;
    z.next_out = o + have;
    z.avail_out = (uInt)(cap - have);
    deflate(&z, r == reps - 1 ? Z_FINISH : Z_NO_FLUSH);
    have = cap - z.avail_out;
  }
  deflateEnd(&z);
  *out_len = have;
  return o;
}

static void write_file(const char *dir, const char *name, const uint8_t *b, size_t len) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  CHECK(f && fwrite(b, 1, len, f) == len, "write %s", path);
  if (f) fclose(f);
}

static const uint8_t LABELS[5] = {3, 1, 4, 1, 5};

/* The gzip-compressed IDX files of a 5-image train split (pixel i·784+j is
 * (i·31 + j) mod 256); img_gz/lbl_gz receive the compressed images. */
static void write_gz_split(const char *dir, uint8_t **img_gz, size_t *img_len) {
  size_t px = 5 * 784;
  uint8_t *img = malloc(16 + px), lbl[8 + 5];
  put_be32(img, 0x803);
  put_be32(img + 4, 5);
  put_be32(img + 8, 28);
  put_be32(img + 12, 28);
  for (size_t i = 0; i < px; i++) img[16 + i] = (uint8_t)((i / 784) * 31 + i % 784);
  put_be32(lbl, 0x801);
  put_be32(lbl + 4, 5);
  memcpy(lbl + 8, LABELS, 5);
  size_t gl, ll;
  uint8_t *g = gzip_bytes(img, 16 + px, 1, &gl), *l = gzip_bytes(lbl, sizeof lbl, 1, &ll);
  write_file(dir, "train-images-idx3-ubyte.gz", g, gl);
  write_file(dir, "train-labels-idx1-ubyte.gz", l, ll);
  *img_gz = g;
  *img_len = gl;
  free(img);
  free(l);
}

static void expect_gz_error(const char *dir, const char *needle, const char *what) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_dataset *ds = (amp_dataset *)&ctx;
  amp_status s = amp_fashion_mnist_load(ctx, dir, 1, &ds);
  CHECK(s == AMP_ERR_FORMAT && ds == NULL, "%s: status %d (%s)", what, (int)s, amp_ctx_error(ctx));
  CHECK(has(ctx, needle) && has(ctx, "train-images-idx3-ubyte.gz") && has(ctx, "fashion-mnist"),
        "%s: message '%s' lacks '%s' or the file", what, amp_ctx_error(ctx), needle);
  amp_ctx_free(ctx);
}

static void test_gzip_idx(void) {
  char dir[] = "/tmp/ampc_test_gz_XXXXXX";
  if (!mkdtemp(dir)) {
    CHECK(0, "mkdtemp failed");
    return;
  }
  uint8_t *gz;
  size_t gl;
  write_gz_split(dir, &gz, &gl);
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_dataset *ds = NULL;
  CHECK(amp_mnist_load(ctx, dir, 1, &ds) == AMP_OK, "mnist from .gz: %s", amp_ctx_error(ctx));
  amp_dataset_free(ds);
  ds = NULL;
  CHECK(amp_fashion_mnist_load(ctx, dir, 1, &ds) == AMP_OK, "fashion from .gz: %s",
        amp_ctx_error(ctx));
  if (ds) {
    /* The loader normalises with Fashion-MNIST's own mean and std. */
    amp_loader *l = amp_loader_create(
        ctx, ds, &(amp_loader_params){.batch = 5, .dtype = AMP_F32, .normalize = 1});
    amp_tensor *x, *y;
    CHECK(l && amp_loader_next(l, &x, &y) == 1, "batch");
    int bad = 0;
    for (int64_t i = 0; l && i < 5 * 784; i++) {
      float want = ((float)(uint8_t)((i / 784) * 31 + i % 784) / 255.0f - AMP_FASHION_MNIST_MEAN) /
                   AMP_FASHION_MNIST_STD;
      bad += ((float *)x->data)[i] != want;
    }
    for (int i = 0; l && i < 5; i++) CHECK(((int32_t *)y->data)[i] == LABELS[i], "label %d", i);
    CHECK(bad == 0, "%d pixels differ from Fashion-MNIST's normalisation", bad);
    amp_loader_free(l);
  }
  amp_dataset_free(ds);
  amp_ctx_free(ctx);

  /* Corrupt input: a flipped byte inside the deflate data, a truncated
     stream, bytes after the stream, a file that is not gzip, and a bomb. */
  uint8_t *bad = malloc(gl + 16);
  memcpy(bad, gz, gl);
  bad[gl / 2] ^= 0x55;
  write_file(dir, "train-images-idx3-ubyte.gz", bad, gl);
  expect_gz_error(dir, "corrupt gzip", "flipped byte");
  write_file(dir, "train-images-idx3-ubyte.gz", gz, gl / 2);
  expect_gz_error(dir, "truncated", "truncated gzip");
  memcpy(bad, gz, gl);
  memcpy(bad + gl, "trailing garbage", 16);
  write_file(dir, "train-images-idx3-ubyte.gz", bad, gl + 16);
  expect_gz_error(dir, "trailing bytes", "trailing bytes");
  write_file(dir, "train-images-idx3-ubyte.gz", (const uint8_t *)"not gzip at all\n", 16);
  expect_gz_error(dir, "corrupt gzip", "not gzip");
  uint8_t *zeros = calloc(1, 1 << 20);
  size_t bl;
  uint8_t *bomb = gzip_bytes(zeros, 1 << 20, 257, &bl); /* 257 MiB of zeros */
  write_file(dir, "train-images-idx3-ubyte.gz", bomb, bl);
  expect_gz_error(dir, "more than 256 MiB", "gzip bomb");
  free(bomb);
  free(zeros);
  free(bad);
  free(gz);
  char path[512];
  snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
  remove(path);
  /* Missing files: the message says where Fashion-MNIST comes from. */
  ctx = amp_ctx_create(NULL);
  CHECK(amp_fashion_mnist_load(ctx, dir, 1, &ds) == AMP_ERR_IO && has(ctx, "dataset-fashion-mnist"),
        "missing file: %s", amp_ctx_error(ctx));
  amp_ctx_free(ctx);
  snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
  remove(path);
  rmdir(dir);
}

/* The installed data set: sizes, and the normalisation constants are its
 * train set's mean and standard deviation. */
static void test_fashion_real(void) {
  struct stat sb;
  if (stat(AMP_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz", &sb) != 0) {
    printf("skip: Fashion-MNIST is not installed in " AMP_FASHION_MNIST_DIR
           " (scripts/install-deps --data)\n");
    return;
  }
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_dataset *tr = NULL, *te = NULL;
  CHECK(amp_fashion_mnist_load(ctx, NULL, 1, &tr) == AMP_OK, "%s", amp_ctx_error(ctx));
  CHECK(amp_fashion_mnist_load(ctx, NULL, 0, &te) == AMP_OK, "%s", amp_ctx_error(ctx));
  CHECK(amp_dataset_size(tr) == 60000 && amp_dataset_size(te) == 10000, "sizes");
  if (tr) {
    amp_loader *l =
        amp_loader_create(ctx, tr, &(amp_loader_params){.batch = 60000, .dtype = AMP_F32});
    amp_tensor *x, *y;
    double s = 0, ss = 0;
    if (l && amp_loader_next(l, &x, &y) == 1) {
      for (int64_t i = 0; i < x->numel; i++) s += ((float *)x->data)[i];
      double mean = s / (double)x->numel;
      for (int64_t i = 0; i < x->numel; i++) {
        double d = ((float *)x->data)[i] - mean;
        ss += d * d;
      }
      double sd = sqrt(ss / (double)x->numel);
      CHECK(fabs(mean - AMP_FASHION_MNIST_MEAN) < 1e-3 && fabs(sd - AMP_FASHION_MNIST_STD) < 1e-3,
            "Fashion-MNIST mean %.4f std %.4f", mean, sd);
    }
    amp_loader_free(l);
  }
  amp_dataset_free(tr);
  amp_dataset_free(te);
  amp_ctx_free(ctx);
}

static uint8_t tok(int64_t i) { return (uint8_t)(i * 7 + (i >> 8)); }

static void test_text_batches(void) {
  amp_ctx *ctx = amp_ctx_create(NULL);
  uint8_t b[1000];
  for (int i = 0; i < 1000; i++) b[i] = tok(i);
  amp_text *t = NULL;
  CHECK(amp_text_from_bytes(ctx, b, sizeof b, &t) == AMP_OK, "from bytes");
  CHECK(amp_text_tokens(t, AMP_TEXT_TRAIN) == 900 && amp_text_tokens(t, AMP_TEXT_VAL) == 100,
        "90/10 split");
  CHECK(amp_text_data(t, AMP_TEXT_VAL)[0] == tok(900), "validation is the last 10%%");
  /* In order: batch k holds tokens k·16 .. k·16+16, rows consecutive. */
  amp_text_loader *l = amp_text_loader_create(ctx, t, AMP_TEXT_TRAIN, 2, 8, 0, 0);
  CHECK(l && amp_text_loader_batches_per_epoch(l) == 56, "(900-1)/16 = 56 batches");
  int bad = 0;
  for (int64_t i = 0; l && i < 60; i++) { /* past the end of the epoch: wraps */
    amp_tensor *x, *y;
    CHECK(amp_text_loader_next(l, &x, &y) == 1, "batch %lld", (long long)i);
    CHECK(x->ndim == 2 && x->shape[0] == 2 && x->shape[1] == 8 && x->dtype == AMP_I32, "x shape");
    int64_t off = (i % 56) * 16;
    for (int64_t j = 0; j < 16; j++)
      bad += ((int32_t *)x->data)[j] != tok(off + j) || ((int32_t *)y->data)[j] != tok(off + j + 1);
  }
  CHECK(bad == 0, "%d tokens off llm.c's layout", bad);
  amp_text_loader_free(l);
  /* Shuffled: every start once per epoch, a new order each epoch, the same
     order for the same seed. */
  amp_text_loader *a = amp_text_loader_create(ctx, t, AMP_TEXT_TRAIN, 2, 8, 1, 42);
  amp_text_loader *c = amp_text_loader_create(ctx, t, AMP_TEXT_TRAIN, 2, 8, 1, 42);
  int seen[56] = {0}, same = 1, differs = 0, order0[56];
  for (int e = 0; a && c && e < 2; e++)
    for (int i = 0; i < 56; i++) {
      amp_tensor *x, *y, *x2, *y2;
      amp_text_loader_next(a, &x, &y);
      amp_text_loader_next(c, &x2, &y2);
      int64_t k = 0;
      for (; k < 56; k++) { /* which batch start this is */
        int ok = 1;
        for (int j = 0; j < 16 && ok; j++) ok = ((int32_t *)x->data)[j] == tok(k * 16 + j);
        if (ok) break;
      }
      CHECK(k < 56, "shuffled batch is not a batch start");
      if (e == 0 && k < 56) {
        seen[k]++;
        order0[i] = (int)k;
      }
      if (e == 1 && k < 56) differs += order0[i] != (int)k;
      same &= memcmp(x->data, x2->data, 16 * 4) == 0;
    }
  for (int k = 0; k < 56; k++)
    CHECK(seen[k] == 1, "start %d seen %d times in an epoch", k, seen[k]);
  CHECK(same, "the same seed gave another order");
  CHECK(differs > 10, "epoch 2 repeats epoch 1's order (%d differ)", differs);
  amp_text_loader_free(a);
  amp_text_loader_free(c);
  /* A split shorter than one batch: a clear error. */
  CHECK(!amp_text_loader_create(ctx, t, AMP_TEXT_VAL, 4, 32, 0, 0) &&
            has(ctx, "validation split has 100 tokens") && has(ctx, "needs 129"),
        "short split: '%s'", amp_ctx_error(ctx));
  amp_ctx_clear_error(ctx);
  amp_text_free(t);
  CHECK(amp_text_load(ctx, "/nonexistent/corpus.txt", &t) == AMP_ERR_IO && t == NULL &&
            has(ctx, "/nonexistent/corpus.txt"),
        "missing file: '%s'", amp_ctx_error(ctx));
  amp_ctx_free(ctx);
}

/* A file shorter than one batch, from disk: loads, then the loader refuses. */
static void test_text_file(void) {
  char path[] = "/tmp/ampc_test_text_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0, "mkstemp");
  if (fd < 0) return;
  CHECK(write(fd, "hello, world\n", 13) == 13, "write");
  close(fd);
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_text *t = NULL;
  CHECK(amp_text_load(ctx, path, &t) == AMP_OK && amp_text_tokens(t, AMP_TEXT_TRAIN) == 12,
        "small file: %s", amp_ctx_error(ctx));
  CHECK(amp_text_data(t, AMP_TEXT_TRAIN)[0] == 'h', "first token");
  CHECK(!amp_text_loader_create(ctx, t, AMP_TEXT_TRAIN, 1, 16, 0, 0) &&
            has(ctx, "training split has 12 tokens"),
        "short file: '%s'", amp_ctx_error(ctx));
  amp_text_free(t);
  amp_ctx_clear_error(ctx);
  /* A FIFO is refused at once, not read (which would block). */
  remove(path);
  CHECK(mkfifo(path, 0600) == 0, "mkfifo %s", path);
  CHECK(amp_text_load(ctx, path, &t) == AMP_ERR_IO && t == NULL && has(ctx, "not a regular file"),
        "FIFO: '%s'", amp_ctx_error(ctx));
  amp_ctx_free(ctx);
  remove(path);
}

static void test_fortunes(void) {
  struct stat sb;
  if (stat(AMP_FORTUNES_DIR "/art", &sb) != 0) {
    printf("skip: the fortunes are not installed in " AMP_FORTUNES_DIR
           " (scripts/install-deps --data)\n");
    return;
  }
  amp_ctx *ctx = amp_ctx_create(NULL);
  amp_text *t = NULL;
  CHECK(amp_text_load_fortunes(ctx, NULL, &t) == AMP_OK, "%s", amp_ctx_error(ctx));
  int64_t n = amp_text_tokens(t, AMP_TEXT_TRAIN) + amp_text_tokens(t, AMP_TEXT_VAL);
  CHECK(n > 2000000 && n < 3500000, "fortunes: %lld bytes, expected about 2.5 MB", (long long)n);
  /* "art" sorts first: the corpus starts with it. */
  FILE *f = fopen(AMP_FORTUNES_DIR "/art", "rb");
  uint8_t head[64];
  size_t got = f ? fread(head, 1, sizeof head, f) : 0;
  if (f) fclose(f);
  CHECK(t && got == sizeof head && memcmp(amp_text_data(t, AMP_TEXT_TRAIN), head, got) == 0,
        "the corpus starts with the art file");
  amp_text_free(t);
  CHECK(amp_text_load_fortunes(ctx, "/nonexistent", &t) == AMP_ERR_IO && has(ctx, "fortunes"),
        "missing directory: '%s'", amp_ctx_error(ctx));
  amp_ctx_free(ctx);
}

int main(void) {
  test_gzip_idx();
  test_fashion_real();
  test_text_batches();
  test_text_file();
  test_fortunes();
  TEST_MAIN_END();
}

/* Shared SVG helpers of the ampc tool (see svg.h). */
#include "svg.h"

#include "ampc.h"

#include <stdlib.h>

static const char *const colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                      "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

const char *ampc_svg_colour(int i) {
  return colours[(unsigned)i % (sizeof colours / sizeof *colours)];
}

void ampc_svg_text(FILE *f, const char *s) {
  for (; *s; s++) switch (*s) {
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '&': fputs("&amp;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&apos;", f); break;
    default:
      if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
    }
}

void ampc_svg_begin(FILE *f, int width, int height) {
  fprintf(f,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
          "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
          "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
          width, height, width, height);
}

void ampc_svg_end(FILE *f) { fputs("</svg>\n", f); }

int ampc_svg_save(const char *cmd, const char *path, int (*draw)(FILE *f, const void *arg),
                  const void *arg) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) {
    fprintf(stderr, "ampc %s: cannot write '%s': out of memory\n", cmd, path);
    return -1;
  }
  int rc = draw(f, arg);
  if (ferror(f)) rc = -1;
  if (fclose(f) != 0) rc = -1;
  if (rc != 0) {
    fprintf(stderr, "ampc %s: cannot write '%s': out of memory drawing it\n", cmd, path);
    free(buf);
    return -1;
  }
  amp_ctx *ctx = amp_ctx_create(&(amp_ctx_params){.threads = 1});
  if (!ctx || amp_file_write_atomic(ctx, path, buf, len) != AMP_OK) {
    fprintf(stderr, "ampc %s: cannot write '%s': %s\n", cmd, path,
            ctx ? amp_ctx_error(ctx) : "out of memory");
    rc = -1;
  }
  amp_ctx_free(ctx);
  free(buf);
  return rc;
}

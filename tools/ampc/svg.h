/* What the SVG figures of the ampc tool share (plot.c, diag_report.c): the
 * document's head, escaped text, the colour cycle, and writing a figure
 * atomically (drawn into memory, then amp_file_write_atomic()). */
#ifndef AMPC_SVG_H
#define AMPC_SVG_H

#include <stdio.h>

/* The i-th colour of the cycle (i >= 0). */
const char *ampc_svg_colour(int i);

/* Writes s with XML's five special characters escaped (and control
 * characters other than tab dropped). */
void ampc_svg_text(FILE *f, const char *s);

/* The XML declaration, the <svg> element of width × height pixels and a
 * white background; ampc_svg_end() closes it. */
void ampc_svg_begin(FILE *f, int width, int height);
void ampc_svg_end(FILE *f);

/* Draws a figure with draw(f, arg) (returning 0, or -1) into memory and
 * writes it to `path` atomically. On failure prints "ampc CMD: cannot write
 * 'PATH': why" and returns -1; `path` is then left as it was. */
int ampc_svg_save(const char *cmd, const char *path, int (*draw)(FILE *f, const void *arg),
                  const void *arg);

#endif

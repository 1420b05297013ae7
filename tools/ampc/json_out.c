/* JSON output through cJSON (see json_out.h). */
#include "json_out.h"

#include <math.h>
#include <stdlib.h>

void ampc_json_float(cJSON *obj, const char *key, float v) {
  if (!isfinite(v)) {
    cJSON_AddNullToObject(obj, key);
    return;
  }
  char buf[32];
  double d = (double)v;
  for (int digits = 6; digits <= 9; digits++) { /* 9 digits always read back */
    snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
    if (strtof(buf, NULL) == v) {
      d = strtod(buf, NULL);
      break;
    }
  }
  /* cJSON prints a double with 15 digits when they read back to it, else
   * 17: the shortest decimal above, a double, comes out as written. */
  cJSON_AddNumberToObject(obj, key, d);
}

void ampc_json_fmt(cJSON *obj, const char *key, const char *fmt, double v) {
  if (!isfinite(v)) {
    cJSON_AddNullToObject(obj, key);
    return;
  }
  char buf[64];
  snprintf(buf, sizeof buf, fmt, v);
  cJSON_AddNumberToObject(obj, key, strtod(buf, NULL));
}

void ampc_json_int(cJSON *obj, const char *key, long long v) {
  cJSON_AddNumberToObject(obj, key, (double)v);
}

void ampc_json_str(cJSON *obj, const char *key, const char *v) {
  if (v)
    cJSON_AddStringToObject(obj, key, v);
  else
    cJSON_AddNullToObject(obj, key);
}

int ampc_json_line(FILE *f, cJSON *obj) {
  char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
  cJSON_Delete(obj);
  if (!s) return -1;
  int rc = fprintf(f, "%s\n", s) < 0 ? -1 : 0;
  cJSON_free(s);
  return rc;
}

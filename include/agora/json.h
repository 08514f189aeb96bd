/* JSON and streaming JSONL over jansson. */
#ifndef AGORA_JSON_H
#define AGORA_JSON_H

#include "agora/base.h"

#include <jansson.h>

/* Streams a JSONL file one object per line in bounded memory (a line is
 * held at a time). A malformed line is an error naming file, line number and
 * what is wrong; it is never skipped. Blank lines are skipped; CRLF endings
 * and a missing final newline are accepted. */
typedef struct ag_jsonl_reader ag_jsonl_reader;
ag_status ag_jsonl_open(const char *path, ag_jsonl_reader **out);
/* On success *value is a new reference the caller must json_decref, or NULL
 * at end of file. */
ag_status ag_jsonl_next(ag_jsonl_reader *r, json_t **value);
int64_t ag_jsonl_line(const ag_jsonl_reader *r); /* line number of the last value */
/* Bytes the reader holds for its line buffer: grows to the longest line. */
size_t ag_jsonl_buffer_bytes(const ag_jsonl_reader *r);
void ag_jsonl_close(ag_jsonl_reader *r);

/* Appends one compact JSON object and a newline; flushes. */
ag_status ag_jsonl_write(FILE *f, const json_t *value);

/* Reads / atomically writes a whole JSON file. */
ag_status ag_json_load(const char *path, json_t **value);
ag_status ag_json_save(const char *path, const json_t *value);

#endif

/* ctr_check.h: `ctrecctl check`, a checker for CodeTracer trace folders
 * (JSON; CTFS trace.ct through the trace reader, ctr_reader.h).
 *
 * It verifies a folder against what CodeTracer's reader requires and what the
 * format's writer rules say (trace.json records, ids and call nesting,
 * trace_metadata.json, trace_paths.json, files/), and names each problem with
 * its file and record number. trace.json is read as a stream in fixed-size
 * chunks, one record at a time, so memory is bounded by the intern tables
 * and the largest record, not by the file. */
#ifndef CTR_CHECK_H
#define CTR_CHECK_H

/* Runs `ctrecctl check [OPTIONS] TRACE_DIR...` (argv[0] is "check").
 * Returns 0 when every folder is valid, 1 when one is not, 2 on a usage or
 * I/O error. */
int ctr_check_main(int argc, char **argv);

#endif

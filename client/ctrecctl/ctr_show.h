/* ctr_show.h: `ctrecctl show`, the step listing of one trace folder.
 *
 * It prints what a finished or live trace folder (trace.json or trace.ct)
 * holds now, through the trace reader and the renderer `follow` uses
 * (ctr_render.h), and ends. */
#ifndef CTR_SHOW_H
#define CTR_SHOW_H

/* Runs `ctrecctl show [OPTIONS] TRACE_DIR` (argv[0] is "show"). Returns 0,
 * 1 when the trace cannot be read, 2 on a usage error. */
int ctr_show_main(int argc, char **argv);

#endif

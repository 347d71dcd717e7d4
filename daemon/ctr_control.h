/* ctr_control.h: the control role: STATUS, START, STOP and RELOAD from
 * ctrecctl (PROTOCOL.md section 6). A peer sees and acts on the sessions
 * of its own uid; root on all. */
#ifndef CTR_CONTROL_H
#define CTR_CONTROL_H

#include "ctr_conn.h"

/* Answers one request of control connection c. Anything but a control
 * request is a protocol error that closes c; returns its code. */
int ctr_control_handle(ctr_conn_t *c, const ctr_msg_t *m);

#endif

/* ctr_uuid.h: UUIDv7 recording ids (RFC 9562 section 5.7).
 *
 * A trace folder's recording_id: 48 bits of Unix time in milliseconds,
 * the version 7, 12 bits that keep ids made within one millisecond in
 * order (RFC 9562 6.2 method 1, a counter seeded at random each new
 * millisecond), the variant 10, and 62 random bits from getrandom. */
#ifndef CTR_UUID_H
#define CTR_UUID_H

#include <stdint.h>

#define CTR_UUID_LEN 36

/* Writes the UUIDv7 of time now_ms as 36 lowercase characters and a NUL.
 * Ids made in one process sort in the order they were made (by text too)
 * while the clock does not go back. Returns 0 or a negative code. */
int ctr_uuid7_at(char out[CTR_UUID_LEN + 1], int64_t now_ms);

/* The same at the realtime clock's time. */
int ctr_uuid7(char out[CTR_UUID_LEN + 1]);

#endif

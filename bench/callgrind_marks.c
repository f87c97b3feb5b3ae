/* Callgrind client requests callable from Python through ctypes: bench/micro_count.py
 * compiles this with the machine's cc at run time (never committed as a binary) and marks
 * the region it counts. Outside valgrind each call is a handful of no-op instructions.
 * Needs <valgrind/callgrind.h>, which Debian's valgrind package installs.
 */
#include <valgrind/callgrind.h>

void marks_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void marks_zero(void) { CALLGRIND_ZERO_STATS; }
void marks_dump(void) { CALLGRIND_DUMP_STATS; }

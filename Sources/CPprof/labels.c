// Label tags for handlers. pp_labels_current runs inside signal handlers.
#include "pp_labels.h"

uint64_t pp_labels_current(void) { return 0; }

// The C side of swift-pprof, as imported into Swift. Add each new public header here (an explicit
// umbrella header, so that adding a header invalidates the module cache).
#include "pp_arch.h"
#include "pp_demangle.h"
#include "pp_heap.h"
#include "pp_images.h"
#include "pp_labels.h"
#include "pp_signals.h"
#include "pp_tables.h"
#include "pp_thread_events.h"
#include "pp_thread_id.h"
#include "pp_unwind.h"
#include "pp_zlib.h"

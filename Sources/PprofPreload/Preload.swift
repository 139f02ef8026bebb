import Pprof
import PprofHooks

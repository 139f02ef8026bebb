import Pprof

print("pprof-bench")

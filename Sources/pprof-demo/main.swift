import Pprof

print("pprof-demo")

import Pprof

print("pprof-testhelper")

"""
Benchmarks of the gslb appliance (see benchmarks/README.md).
"""

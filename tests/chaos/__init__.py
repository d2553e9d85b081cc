"""
The short chaos cases (issue 9): one fault at a time injected into a real
appliance under steady DNS load; what is answered, lost and wrong.  The long
ones belong in benchmarks/chaos.
"""

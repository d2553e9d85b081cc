"""
The remote site appliance emulator, C{twistd -n gslb-site}: a site's
services and their metrics (L{model}), where the metrics come from
(L{sources}), and the service that publishes them over MEP and obeys its
control endpoint (L{emulator}).
"""

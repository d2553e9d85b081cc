"""
The remote site appliance emulator, C{twistd -n gslb-site}: a site's
services and their metrics (L{model}), where the metrics come from
(L{sources}), the RTTs it reports to client networks (L{proximity}), the
persistence sessions it keeps and relays between appliances
(L{persistence}), and the service that publishes them over MEP and obeys
its control endpoint (L{emulator}).
"""

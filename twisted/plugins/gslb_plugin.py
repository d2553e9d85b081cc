from twisted.application.service import ServiceMaker

gslb = ServiceMaker(
    "gslb",
    "gslb_twisted.tap",
    "A multi-core GSLB appliance emulator: authoritative GSLB DNS.",
    "gslb",
)

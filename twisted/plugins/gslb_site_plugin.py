from twisted.application.service import ServiceMaker

gslbSite = ServiceMaker(
    "gslb-site",
    "gslb_twisted.site.tap",
    "A remote GSLB site appliance emulator: publishes its services' metrics over MEP.",
    "gslb-site",
)

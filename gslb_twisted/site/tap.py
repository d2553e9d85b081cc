"""
C{twistd gslb-site}: options and the assembly of one site emulator.
"""

from __future__ import annotations

import os

from twisted.python import usage

from gslb_twisted.config import LOG_FORMATS, ConfigError, Topology, loadTopology


class Options(usage.Options):
    synopsis = "--config PATH --site NAME [options]"
    longdesc = (
        "Run one remote site appliance emulator of a topology: it publishes "
        "its services' metrics (seeded random walk, scripted timeline, "
        "health checks of real backends, console pins) over MEP to every "
        "appliance it knows, and obeys gslb-console on its control endpoint."
    )
    optParameters = [
        ["config", "c", None, "Topology file (TOML). Required."],
        ["site", "s", None, "Which [[site]] of the topology to emulate. Required."],
        ["control", None, None, "Control endpoint for gslb-console (default: the site's [site.emulator] control, else unix:NAME.ctl)."],
        ["log-format", None, "text", "Log format: text or json (one JSON object per line)."],
    ]

    def postOptions(self) -> None:
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError("--log-format must be text or json")
        if not self["config"]:
            raise usage.UsageError("--config is required")
        if not self["site"]:
            raise usage.UsageError("--site is required")
        self["config"] = os.path.abspath(self["config"])
        try:
            topology = loadTopology(self["config"])
        except ConfigError as e:
            raise SystemExit(f"twistd gslb-site: {e}") from None
        self["topology"] = topology
        self.checkSite(topology, self["site"])
        if self["log-format"] == "json" and self.parent is not None:
            # twistd resolves its logger option by name, after this runs.
            self.parent["logger"] = "gslb_twisted.logs.jsonStdoutLogObserver"

    def checkSite(self, topology: Topology, name: str) -> None:
        """Refuse, naming file, table and key, a site this emulator cannot run."""
        from gslb_twisted.site.emulator import knownAppliances, mepPlan

        path = topology.path
        site = topology.siteByName.get(name)
        if site is None:
            known = ", ".join(s.name for s in topology.sites) or "none"
            raise SystemExit(
                f"twistd gslb-site: {path}: --site: expected the name of a [[site]] (known: {known}), found {name!r}"
            )
        if site.protocol != "mep":
            raise SystemExit(
                f"twistd gslb-site: {path}: [[site]] {name!r}: key 'protocol': "
                f"expected \"mep\" (gslb-site emulates MEP sites), found {site.protocol!r}"
            )
        try:
            mepPlan(site, knownAppliances(topology, site))
        except ValueError as e:
            raise SystemExit(f"twistd gslb-site: {path}: [[site]] {name!r}: key 'ip': {e}") from None


def makeService(options: Options):
    from twisted.internet import reactor
    from twisted.web.client import Agent, HTTPConnectionPool
    from treq.client import HTTPClient

    from gslb_twisted.site.emulator import controlEndpointDescription, makeSiteEmulator

    topology = options["topology"]
    description = controlEndpointDescription(topology.siteByName[options["site"]], options["control"])
    if not description.lower().startswith("unix:") and topology.appliance.control_token is None:
        # Anyone who reaches a TCP port could steer the site.
        raise SystemExit(
            f"twistd gslb-site: control endpoint {description!r}: a control endpoint that is not a unix socket"
            ' needs [appliance] control_token (a secret: a string, { file = "PATH" } or { env = "NAME" })'
        )

    # A fresh connection per check: a backend that went away is seen at once.
    client = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
    try:
        return makeSiteEmulator(reactor, options["topology"], options["site"], options["control"], client)
    except ConfigError as e:
        raise SystemExit(f"twistd gslb-site: {e}") from None

"""
What a core process loads: only what its topology needs (each module is
memory in every core, spawned afresh, not forked).  Checked in a fresh
interpreter, as a core starts.
"""

from __future__ import annotations

import json
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

PROBE = """
import json, sys
from gslb_twisted.core import process
process.withoutTLS()
process_modules = set(sys.modules)
from twisted.internet import reactor
import gslb_twisted.core.gslb, gslb_twisted.core.service, gslb_twisted.dns.authority
from gslb_twisted.protocol.descriptors import CHILD_AMP_IN
print(json.dumps(sorted(sys.modules)))
"""


class CoreImportTests(SynchronousTestCase):
    def loaded(self) -> set:
        output = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        return set(json.loads(output))

    def test_leanCore(self):
        """
        A core without monitors or TLS loads neither the HTTP client of the
        monitors (treq, twisted.web), nor pyOpenSSL, nor the supervisor.
        """
        loaded = self.loaded()
        self.assertIn("gslb_twisted.core.gslb", loaded)
        self.assertIn("gslb_twisted.monitors.trigger", loaded)
        for module in ("treq", "twisted.web.client", "gslb_twisted.monitors.probes", "OpenSSL.SSL",
                       "gslb_twisted.supervisor"):
            self.assertNotIn(module, loaded)

    def test_monitorsOnDemand(self):
        """The package's names still come from the submodules, loaded when asked for."""
        from gslb_twisted import monitors
        from gslb_twisted.monitors.runner import MonitorRunner

        self.assertIs(monitors.MonitorRunner, MonitorRunner)
        with self.assertRaises(AttributeError):
            monitors.NoSuchThing

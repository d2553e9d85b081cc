"""
Private net-snmp agents for the tests: a real C{snmpd} on a loopback
address of its own, with a generated configuration, serving the host's own
MIBs (UCD-SNMP, IF-MIB, TCP-MIB: the linux-host table) plus values the test
controls under L{BASE}, through a C{pass} script that reads a file the test
rewrites.

Missing snmpd: the test is skipped with the reason, except under CI=true,
where it fails (CI installs Debian's snmpd).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from typing import Mapping, Optional, Sequence

from twisted.internet import reactor, task
from twisted.trial.unittest import SkipTest

SNMPD = shutil.which("snmpd") or ("/usr/sbin/snmpd" if os.path.exists("/usr/sbin/snmpd") else None)
# The arc the pass script serves (an enterprise number nobody uses here).
BASE = "1.3.6.1.4.1.99999"

PASS_SCRIPT = """#!/bin/sh
# snmpd pass protocol: "-g OID" gets, "-n OID" gets the next, "-s" sets.
# Values: lines "SUFFIX TYPE VALUE" in the file next to this script.
values="$(dirname "$0")/values"
if [ "$1" = "-g" ]; then
  suffix="${2#.%(base)s.}"
  while read -r s t v; do
    if [ "$s" = "$suffix" ]; then printf '%%s\\n%%s\\n%%s\\n' "$2" "$t" "$v"; exit 0; fi
  done < "$values"
fi
echo NONE
"""


def requireSnmpd() -> str:
    if SNMPD is not None:
        return SNMPD
    reason = "snmpd is not installed (apt-get install snmpd); .ci/run installs it"
    if os.environ.get("CI") == "true":
        raise AssertionError(reason + " -- and CI=true, so this is a failure, not a skip")
    raise SkipTest(reason)


def freeUDPPort(interface: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((interface, 0))
        return probe.getsockname()[1]


class SNMPAgent:
    """
    One snmpd.  C{community} for v1/v2c; C{users}: v3 users as
    (name, auth protocol, auth key, priv protocol or None, priv key or None).
    """

    def __init__(
        self,
        testCase,
        ip: str,
        community: str = "public",
        users: Sequence[tuple] = (),
        values: Optional[Mapping[str, tuple[str, object]]] = None,
    ) -> None:
        self.binary = requireSnmpd()
        self.ip = ip
        self.port = freeUDPPort(ip)
        self.community = community
        self.users = tuple(users)
        self.directory = tempfile.mkdtemp(prefix="gslb-snmpd-")
        testCase.addCleanup(shutil.rmtree, self.directory, True)
        testCase.addCleanup(self.stop)
        self.process: Optional[subprocess.Popen] = None
        self.log = os.path.join(self.directory, "snmpd.log")
        script = os.path.join(self.directory, "pass.sh")
        with open(script, "w") as f:
            f.write(PASS_SCRIPT % {"base": BASE})
        os.chmod(script, 0o755)
        self.set(values or {})
        lines = [
            f"agentAddress udp:{ip}:{self.port}",
            f"rocommunity {community} 127.0.0.0/8",
            f"pass .{BASE} {script}",
        ]
        for name, authProtocol, authKey, privProtocol, privKey in self.users:
            create = f'createUser {name} {authProtocol} "{authKey}"'
            if privProtocol:
                create += f' {privProtocol} "{privKey}"'
            lines += [create, f"rouser {name} {'priv' if privProtocol else 'auth'}"]
        self.config = os.path.join(self.directory, "snmpd.conf")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def set(self, values: Mapping[str, tuple[str, object]]) -> None:
        """
        Serve C{values}: OID suffix under L{BASE} -> (snmpd pass type such
        as "gauge", "integer", "counter", "string", value).  Replaced whole,
        atomically (the agent reads the file at every request).
        """
        path = os.path.join(self.directory, "values")
        with open(path + ".new", "w") as f:
            for suffix, (kind, value) in values.items():
                f.write(f"{suffix} {kind} {value}\n")
        os.replace(path + ".new", path)

    async def start(self, deadline: float = 20.0) -> None:
        """Start snmpd and wait until it says it serves (it logs its version then)."""
        persistent = os.path.join(self.directory, "persist")
        os.makedirs(persistent, exist_ok=True)
        if os.path.exists(self.log):
            os.remove(self.log)
        env = dict(os.environ, SNMP_PERSISTENT_DIR=persistent, MIBS="")
        # -C: only our config; -M/-m: load no MIB files (numeric OIDs only).
        self.process = subprocess.Popen(
            [self.binary, "-f", "-C", "-c", self.config, "-Lf", self.log,
             "-p", os.path.join(self.directory, "snmpd.pid"), "-M", "/nonexistent", "-m", ""],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        waited = 0.0
        while waited < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"snmpd exited with {self.process.returncode}: {self.logText()}")
            if "NET-SNMP version" in self.logText():
                return
            await task.deferLater(reactor, 0.05, lambda: None)
            waited += 0.05
        raise AssertionError(f"snmpd did not start within {deadline} s: {self.logText()}")

    def logText(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop snmpd (SIGTERM, then SIGKILL) and reap it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def freeze(self) -> None:
        """SIGSTOP: the agent stays bound but answers nothing."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

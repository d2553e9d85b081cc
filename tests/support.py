"""
Helpers for integration tests: run the real appliance (C{twistd -n gslb})
as a subprocess on free loopback ports, query it with a real DNS client,
poll for conditions with a deadline, and check nothing is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import signal
import socket
import sys
from typing import Awaitable, Callable, Optional

from twisted.internet import defer, reactor, task, threads
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.utils import getProcessOutputAndValue

BIN = os.path.dirname(sys.executable)
TWISTD = os.path.join(BIN, "twistd")
CONSOLE = os.path.join(BIN, "gslb-console")

TOPOLOGY = """
[appliance]
name = "test"
ip = "127.0.0.5"
cores = 2
mep_port = MEP_PORT

[[zone]]
name = "test.gslb"

[[site]]
name = "east"
ip = "127.0.0.2"

[[site]]
name = "west"
ip = "127.0.0.3"

[[service]]
name = "east-web"
site = "east"
ip = "192.0.2.10"

[[service]]
name = "west-web"
site = "west"
ip = "198.51.100.10"

[[service]]
name = "east-web6"
site = "east"
ip = "2001:db8::10"

[[vserver]]
name = "www"
domains = ["www.test.gslb"]
lb_method = "ROUNDROBIN"
ttl = 5
services = ["east-web", "west-web", "east-web6"]
"""


def freePort(interface: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on C{interface}."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((interface, 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind((interface, port))
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
        return port
    raise RuntimeError("no free port")


async def poll(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool],
    deadline: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
):
    """
    Wait until C{condition()} is true (it may return a Deferred or be a
    coroutine function), checking every C{interval} seconds; fail after
    C{deadline} seconds.
    """
    start = reactor.seconds()
    while True:
        result = condition()
        if isinstance(result, defer.Deferred) or hasattr(result, "__await__"):
            result = await result
        if result:
            return result
        if reactor.seconds() - start > deadline:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}")
        await task.deferLater(reactor, interval, lambda: None)


def query(
    port: int, name: str, rdtype: str = "A", tcp: bool = False, timeout: float = 1.0, source: Optional[str] = None, **kwargs
):
    """
    A DNS query with dnspython, in a thread so the reactor keeps running;
    from C{source} (a loopback address such as 127.0.3.1: a client "in
    London" for the location database) when given.
    """
    import dns.message
    import dns.query

    message = dns.message.make_query(name, rdtype, **kwargs)

    def ask():
        if tcp:
            return dns.query.tcp(message, "127.0.0.1", port=port, timeout=timeout, source=source)
        return dns.query.udp(message, "127.0.0.1", port=port, timeout=timeout, source=source)

    return threads.deferToThread(ask)


def addresses(response) -> list[str]:
    return [item.address for rrset in response.answer for item in rrset]


class _Collector(ProcessProtocol):
    def __init__(self) -> None:
        self.output = bytearray()
        self.ended: defer.Deferred = defer.Deferred()
        self.exitCode: Optional[int] = None
        self.signal: Optional[int] = None

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self.exitCode = reason.value.exitCode
        self.signal = reason.value.signal
        self.ended.callback(None)


class Appliance:
    """
    One C{twistd -n gslb} run by a test, on a private port and control
    socket.
    """

    def __init__(self, testCase, topology: str = TOPOLOGY, cores: int = 2, extra: tuple = ()) -> None:
        self.testCase = testCase
        self.directory = os.path.abspath(testCase.mktemp())
        os.makedirs(self.directory)
        self.config = os.path.join(self.directory, "topology.toml")
        self.port = freePort()
        # Every appliance of a test run listens for MEP on a port of its own.
        self.mepPort = freePort("127.0.0.5")
        with open(self.config, "w") as f:
            f.write(topology.replace("MEP_PORT", str(self.mepPort)))
        # A unix socket path must fit in 108 bytes: trial's temp paths do not.
        socketDirectory = tempfile.mkdtemp(prefix="gslb-")
        testCase.addCleanup(shutil.rmtree, socketDirectory, True)
        self.control = "unix:" + os.path.join(socketDirectory, "gslb.ctl")
        self.args = [
            TWISTD,
            "--pidfile=",
            "-n",
            "gslb",
            "--config",
            self.config,
            "--cores",
            str(cores),
            "--dns",
            f"udp:{self.port}:interface=127.0.0.1",
            "--dns",
            f"tcp:{self.port}:interface=127.0.0.1",
            "--control",
            self.control,
        ] + list(extra)
        self.process = None
        self.collector = _Collector()
        self.seenPids: set[int] = set()

    @property
    def output(self) -> str:
        return self.collector.output.decode("utf-8", "replace")

    def start(self) -> None:
        self.process = reactor.spawnProcess(
            self.collector, TWISTD, self.args, env=dict(os.environ), path=self.directory
        )
        self.pid = self.process.pid
        self.testCase.addCleanup(self.saveOutput)
        self.testCase.addCleanup(self.stop)

    async def waitUntilServing(self, deadline: float = 30.0, name: str = "www.test.gslb") -> None:
        async def answered():
            if self.collector.ended.called:
                raise AssertionError(f"appliance exited early:\n{self.output}")
            try:
                response = await query(self.port, name, timeout=0.3)
            except Exception:
                return False
            return bool(response.answer)

        await poll(answered, deadline, what="the appliance to answer DNS")

        async def allUp():
            cores = await self.console("show cores")
            return all(c["state"] == "up" for c in cores)

        await poll(allUp, deadline, what="every core to be up")

    async def console(self, command: str, check: bool = True):
        out, err, code = await getProcessOutputAndValue(
            CONSOLE, ["--connect", self.control, "-c", command, "--json"], env=dict(os.environ)
        )
        if check and code != 0:
            raise AssertionError(f"gslb-console -c {command!r} exited {code}: {err.decode()}")
        result = json.loads(out) if code == 0 else None
        if command == "show cores" and result:
            self.seenPids.update(c["pid"] for c in result if c.get("pid"))
        return result

    async def stop(self, sig: int = signal.SIGTERM, deadline: float = 30.0) -> None:
        if self.process is None or self.collector.ended.called:
            return
        os.kill(self.pid, sig)
        await poll(lambda: self.collector.ended.called, deadline, what="the appliance to exit")

    def saveOutput(self) -> None:
        """Keep what it logged beside the test, for whoever reads a failure."""
        with open(os.path.join(self.directory, "appliance.log"), "w") as f:
            f.write(self.output)

    def assertCleanExit(self) -> None:
        """
        It stopped on request: twistd exits re-raising the SIGTERM it got,
        after logging its orderly shutdown, with no traceback anywhere.
        """
        output = self.output
        self.testCase.assertTrue(
            self.collector.exitCode == 0 or self.collector.signal == signal.SIGTERM,
            f"exit code {self.collector.exitCode}, signal {self.collector.signal}:\n{output}",
        )
        self.testCase.assertIn("Server Shut Down", output)
        for bad in ("Traceback", "Unhandled"):
            self.testCase.assertNotIn(bad, output)

    async def assertNothingLeft(self, deadline: float = 15.0) -> None:
        """Every process this appliance ever had is gone."""
        pids = set(self.seenPids)
        if self.process is not None:
            pids.add(self.pid)
        await poll(lambda: not [p for p in pids if alive(p)], deadline, what=f"processes {sorted(pids)} to exit")


def alive(pid: int) -> bool:
    """True while C{pid} runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


class SiteProcess:
    """
    One C{twistd -n gslb-site} of a topology, with its own control socket.
    """

    def __init__(self, testCase, config: str, site: str) -> None:
        self.testCase = testCase
        self.config = config
        self.site = site
        socketDirectory = tempfile.mkdtemp(prefix="gslb-site-")
        testCase.addCleanup(shutil.rmtree, socketDirectory, True)
        self.control = "unix:" + os.path.join(socketDirectory, f"{site}.ctl")
        self.collector: Optional[_Collector] = None
        self.pid: Optional[int] = None

    def start(self, config: Optional[str] = None) -> None:
        self.collector = _Collector()
        args = [TWISTD, "--pidfile=", "-n", "gslb-site", "--config", config or self.config,
                "--site", self.site, "--control", self.control]
        process = reactor.spawnProcess(self.collector, TWISTD, args, env=dict(os.environ),
                                       path=os.path.dirname(self.config))
        self.pid = process.pid
        self.testCase.addCleanup(self.saveOutput)
        self.testCase.addCleanup(self.stop)

    def saveOutput(self) -> None:
        with open(os.path.join(os.path.dirname(self.config), f"site-{self.site}.log"), "a") as f:
            f.write(self.output)

    @property
    def output(self) -> str:
        return self.collector.output.decode("utf-8", "replace") if self.collector else ""

    async def console(self, command: str):
        out, err, code = await getProcessOutputAndValue(
            CONSOLE, ["--connect", self.control, "-c", command, "--json"], env=dict(os.environ)
        )
        if code != 0:
            raise AssertionError(f"site {self.site}: gslb-console -c {command!r} exited {code}: {err.decode()}")
        return json.loads(out) if out.strip() else None

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.collector is None or self.collector.ended.called:
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return
        await poll(lambda: self.collector.ended.called, 30, what=f"site {self.site} to exit")


def selfSignedCertificate(directory: str, name: str, addresses) -> tuple[str, str]:
    """
    Write a self-signed certificate naming these IP addresses, and its key;
    return their paths.  A lab's one certificate, also its own CA.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certPath, keyPath = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")
    with open(certPath, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(keyPath, "wb") as f:
        f.write(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ))
    return certPath, keyPath

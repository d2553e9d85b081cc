"""
The servers under test, each run as its own process tree: started, waited
for until it answers DNS, sampled, and stopped with nothing left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import dns.exception
import dns.message
import dns.query
import dns.rcode

from benchmarks import procstat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)
QUERY_NAME = "www.bench.gslb"


class ServerError(Exception):
    """
    A server did not start, did not answer, or did not stop.
    """


def answers(host: str, port: int, name: str = QUERY_NAME, timeout: float = 0.3) -> bool:
    """
    Does C{host:port} answer C{name A} over UDP with NOERROR and an address?
    """
    query = dns.message.make_query(name, "A")
    try:
        response = dns.query.udp(query, host, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return False
    return response.rcode() == dns.rcode.NOERROR and bool(response.answer)


class ServerProcess:
    """
    One server under test, as a process tree rooted at the process we spawn.

    @ivar command: the argv, including any C{taskset} prefix (taskset execs
        the server, so the root pid is the server's).
    @ivar seen: every process (pid, start time) seen in the tree while it
        ran, to check after the stop that none is left.
    """

    label = "server"

    def __init__(self, command: Sequence[str], host: str, port: int, logPath: str) -> None:
        self.command = list(command)
        self.host = host
        self.port = port
        self.logPath = logPath
        self.process: Optional[subprocess.Popen] = None
        self.seen: Dict[int, Tuple[int, int]] = {}

    def start(self) -> None:
        with open(self.logPath, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def pids(self) -> List[int]:
        """
        The live processes of the tree, and remember them.
        """
        stats = procstat.allStats()
        tree = procstat.descendants(self.pid, stats)
        for pid in tree:
            self.seen[pid] = (pid, stats[pid].startTime)
        return tree

    def waitReady(self, deadline: float = 20.0, name: str = QUERY_NAME) -> float:
        """
        Poll with DNS queries (for C{name}) until the server answers.

        @return: seconds it took.
        @raise ServerError: it exited, or did not answer in time.
        """
        started = time.monotonic()
        while True:
            if self.process.poll() is not None:
                raise ServerError(
                    f"{self.label} exited with status {self.process.returncode} before "
                    f"answering DNS (log: {self.logPath}); last lines:\n{self.logTail()}"
                )
            if answers(self.host, self.port, name) and self.ready():
                self.pids()
                return time.monotonic() - started
            if time.monotonic() - started > deadline:
                raise ServerError(
                    f"{self.label} did not answer {name} on {self.host}:{self.port} "
                    f"within {deadline:.0f} s (log: {self.logPath}); last lines:\n{self.logTail()}"
                )
            time.sleep(0.1)

    def ready(self) -> bool:
        """
        Beyond answering DNS, is the server fully up?  (Subclasses refine.)
        """
        return True

    def stop(self, grace: float = 10.0) -> List[str]:
        """
        SIGTERM the root, wait up to C{grace} seconds, then SIGKILL it;
        then make sure no process of the tree is left (killing, by pid, any
        that is).

        @return: problems seen (empty when the stop was clean).
        """
        problems = []
        if self.process is None:
            return problems
        self.pids()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                problems.append(f"{self.label} (pid {self.pid}) ignored SIGTERM for {grace:.0f} s; SIGKILLed")
                self.process.kill()
                self.process.wait()
        # Children may need a moment to notice their parent is gone.
        leftDeadline = time.monotonic() + grace
        while True:
            left = [identity for identity in self.seen.values() if procstat.alive(identity)]
            if not left or time.monotonic() > leftDeadline:
                break
            time.sleep(0.1)
        for pid, _ in left:
            problems.append(f"{self.label}: process {pid} was left running after the stop; SIGKILLed")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return problems

    def logTail(self, lines: int = 15) -> str:
        try:
            with open(self.logPath, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"


class NamesServer(ServerProcess):
    """
    The twisted.names baseline (L{benchmarks.names_server}).
    """

    label = "twisted.names"

    @classmethod
    def build(cls, port: int, cpus: Optional[str], logPath: str, host: str = "127.0.0.1") -> "NamesServer":
        command = _pinned(cpus) + [
            sys.executable, "-m", "benchmarks.names_server",
            "--port", str(port), "--interface", host,
        ]
        return cls(command, host, port, logPath)


class GslbServer(ServerProcess):
    """
    The appliance: C{twistd -n gslb} (a supervisor and its cores).
    """

    label = "gslb"

    def __init__(self, command, host, port, logPath, control: str, cores: int) -> None:
        super().__init__(command, host, port, logPath)
        self.control = control
        self.cores = cores

    @classmethod
    def build(
        cls,
        port: int,
        cores: int,
        cpus: Optional[str],
        control: str,
        logPath: str,
        config: str = "benchmarks/bench.toml",
        socketSharing: Optional[str] = None,
        host: str = "127.0.0.1",
    ) -> "GslbServer":
        command = _pinned(cpus) + [
            os.path.join(VENV_BIN, "twistd"), "--pidfile=", "-n", "gslb",
            "--config", config,
            "--cores", str(cores),
            "--dns", f"udp:{port}:interface={host}",
            "--control", control,
        ]
        if socketSharing is not None:
            command += ["--socket-sharing", socketSharing]
        return cls(command, host, port, logPath, control, cores)

    def showCores(self, timeout: float = 10.0) -> List[dict]:
        """
        C{gslb-console -c "show cores" --json}: a list of
        C{{core, pid, state, queries, ...}}.

        @raise ServerError: the console failed or printed no JSON list.
        """
        argv = [os.path.join(VENV_BIN, "gslb-console"), "--connect", self.control,
                "-c", "show cores", "--json"]
        try:
            result = subprocess.run(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                timeout=timeout, cwd=REPO, check=False,
            )
        except subprocess.TimeoutExpired:
            raise ServerError(f"`{' '.join(argv)}` did not return within {timeout:.0f} s") from None
        if result.returncode != 0:
            raise ServerError(
                f"`{' '.join(argv)}` exited with {result.returncode}: {result.stderr.strip()}"
            )
        try:
            cores = json.loads(result.stdout)
        except ValueError:
            raise ServerError(f"`{' '.join(argv)}` printed no JSON: {result.stdout[:200]!r}") from None
        if not isinstance(cores, list):
            raise ServerError(f"`show cores --json` gave {type(cores).__name__}, expected a list")
        return cores

    def ready(self) -> bool:
        """
        All C{cores} cores are listed with a pid and a state that is not a
        starting, stopping or dead one.
        """
        try:
            cores = self.showCores()
        except ServerError:
            return False
        return len(cores) == self.cores and all(corePid(core) and coreUp(core) for core in cores)


NOT_UP_STATES = {"starting", "spawning", "stopping", "stopped", "down", "dead", "exited",
                 "backoff", "respawning", "syncing", "waiting"}


def corePid(core: dict) -> Optional[int]:
    pid = core.get("pid")
    return pid if isinstance(pid, int) and pid > 0 else None


def coreUp(core: dict) -> bool:
    return str(core.get("state", "")).lower() not in NOT_UP_STATES


def _pinned(cpus: Optional[str]) -> List[str]:
    return [] if cpus is None else ["taskset", "-c", cpus]

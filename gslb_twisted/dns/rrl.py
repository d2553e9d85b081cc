"""
Response rate limiting (RRL), as BIND and Knot do it, for the appliance as
a whole.

Identical responses (the same question) to one client network (a /24 or
/56 by default) are limited to C{responses_per_second}.  Each account holds
a credit that grows by the rate every second (at most one second's worth)
and loses one per response; below zero the response is not sent, except
every C{slip}-th, which is sent truncated (TC) so a real client retries over
TCP; the debt is bounded by C{window} seconds of responses.  UDP only.

Appliance-wide: a client's queries may reach any core, so each core allows
a share of the rate, the share of that client's responses it sent in the
last consolidation round (C{share}), measured from the consolidated counters
of the accounts that are hot (see L{RateLimiter.hot}).  An account whose
share is not known yet gets an equal share among the serving cores.

A plain object: the time is passed in, no reactor.
"""

from __future__ import annotations

from typing import Optional

from gslb_twisted.lb.clients import ClientKeyer

ALLOW = 0
DROP = 1
SLIP = 2

# Accounts one core keeps; the least recently used go first.
MAX_ACCOUNTS = 100_000
# Accounts reported for consolidation at most (the hottest).
MAX_HOT = 1000


class _Account:
    __slots__ = ("credit", "last", "responses", "limited", "share")

    def __init__(self, credit: float, now: float, share: float) -> None:
        self.credit = credit
        self.last = now
        self.responses = 0  # cumulative: what consolidation sums
        self.limited = 0
        self.share = share


class RateLimiter:
    """
    @ivar dropped: responses not sent; C{slipped}: sent truncated.
    """

    def __init__(
        self,
        responsesPerSecond: float,
        window: float = 15.0,
        slip: int = 2,
        v4Prefix: int = 24,
        v6Prefix: int = 56,
        cores: int = 1,
    ) -> None:
        self.rate = float(responsesPerSecond)
        self.window = float(window)
        self.slip = int(slip)
        self.keyer = ClientKeyer(v4Prefix, v6Prefix)
        self.cores = max(1, cores)
        self._accounts: dict[tuple, _Account] = {}
        self.dropped = 0
        self.slipped = 0

    def check(self, address: str, question: bytes, now: float) -> int:
        """ALLOW, DROP or SLIP for a response to C{question} bytes sent to C{address}."""
        network = self.keyer.key(address)
        if network is None:
            return ALLOW
        key = (network, question)
        account = self._accounts.get(key)
        if account is None:
            if len(self._accounts) >= MAX_ACCOUNTS:
                # Forget the oldest (dicts keep insertion order).
                for old in list(self._accounts)[: MAX_ACCOUNTS // 10]:
                    del self._accounts[old]
            share = 1.0 / self.cores
            account = self._accounts[key] = _Account(self.rate * share, now, share)
        rate = self.rate * account.share
        account.credit = min(rate, account.credit + (now - account.last) * rate)
        account.last = now
        account.responses += 1
        account.credit -= 1.0
        if account.credit >= 0:
            return ALLOW
        account.credit = max(account.credit, -self.window * rate)
        account.limited += 1
        if self.slip and account.limited % self.slip == 0:
            self.slipped += 1
            return SLIP
        self.dropped += 1
        return DROP

    def hot(self, since: dict) -> dict[str, int]:
        """
        The cumulative responses of the accounts worth consolidating: those
        that answered more than a tenth of the limit since C{since} (the
        values reported last time), at most L{MAX_HOT}.
        """
        found = []
        threshold = self.rate / 10.0
        for (network, question), account in self._accounts.items():
            name = accountName(network, question)
            if account.responses - since.get(name, 0) > threshold:
                found.append((account.responses - since.get(name, 0), name, account.responses))
        found.sort(reverse=True)
        return {name: responses for _, name, responses in found[:MAX_HOT]}

    def setShares(self, shares: dict[str, float]) -> None:
        """This core's share of each hot account, from the consolidated round."""
        for (network, question), account in self._accounts.items():
            share = shares.get(accountName(network, question))
            if share is not None:
                account.share = min(1.0, max(share, 0.05))

    def setCores(self, cores: int) -> None:
        self.cores = max(1, cores)


def accountName(network: tuple[int, int], question: bytes) -> str:
    """An account's name in the consolidated counters (no tabs)."""
    version, value = network
    return f"{version}:{value:x}:{question.hex()}"


def questionBytes(data: bytes) -> Optional[bytes]:
    """The question section of a query (name lower-cased, type, class), or None."""
    offset = 12
    size = len(data)
    while offset < size:
        length = data[offset]
        if length == 0:
            end = offset + 5
            return data[12:end].lower() if end <= size else None
        if length & 0xC0:
            return None
        offset += length + 1
    return None


def truncated(reply: bytes, questionLength: int) -> bytes:
    """C{reply} cut to its header (TC set, counts but the question zeroed) and question."""
    flags = (reply[2] << 8 | reply[3]) | 0x0200
    return reply[:2] + bytes((flags >> 8, flags & 0xFF)) + b"\x00\x01\x00\x00\x00\x00\x00\x00" + reply[12:12 + questionLength]

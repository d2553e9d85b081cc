"""
The interactive console's connection to a control endpoint: one AMP
connection, kept up (L{ClientService}: when the appliance restarts, it
dials again with backoff), subscribed to the events the endpoint pushes.
"""

from __future__ import annotations

import os
from typing import Optional, Protocol as Interface

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer
from twisted.internet.endpoints import clientFromString
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols import amp

from gslb_twisted.protocol.commands import Authenticate, ConsoleEvent, Subscribe

# Dial again half a second after a loss, then less and less often, at most
# every 5 seconds: an appliance restarting is back within a few.
RETRY = backoffPolicy(initialDelay=0.5, factor=1.5, maxDelay=5.0)


class NotConnected(Exception):
    """The endpoint is not connected now (the link is dialling it again)."""


class Listener(Interface):
    """What a L{Link} tells the console."""

    def connected(self, state: Optional[dict]) -> None:
        """(Re)connected; C{state}: the endpoint's answer to C{Subscribe}, or None when it has none."""

    def disconnected(self) -> None:
        """The connection was lost; the link dials again."""

    def event(self, event: dict) -> None:
        """The endpoint pushed C{event}."""


class ConsoleProtocol(amp.AMP):
    """The console's end of a control connection: it takes the pushed events."""

    def __init__(self, link: "Link") -> None:
        super().__init__()
        self.link = link
        self.lost = False

    @ConsoleEvent.responder
    def consoleEvent(self, event: dict) -> dict:
        self.link.listener.event(event)
        return {}

    def connectionLost(self, reason) -> None:
        self.lost = True
        super().connectionLost(reason)
        self.link._lost(self)


TOKEN_VARIABLE = "GSLB_CONTROL_TOKEN"


def authenticate(protocol: amp.AMP) -> defer.Deferred:
    """
    Present $GSLB_CONTROL_TOKEN to the endpoint, when set (a TCP control
    endpoint wants it before any other command; a unix socket needs none).
    """
    token = os.environ.get(TOKEN_VARIABLE)
    if not token:
        return defer.succeed(None)
    return protocol.callRemote(Authenticate, token=token)


class Link:
    """
    A control endpoint, kept connected.  L{start} fires with the first
    connection, or fails with the reason none was made (with C{wait}, it
    keeps trying instead); L{call} sends a command on the connection in
    use; after a loss, the L{Listener} hears of it and of each new
    connection.
    """

    log = Logger()

    def __init__(self, reactor, description: str, listener: Listener, retryPolicy=RETRY) -> None:
        self.reactor = reactor
        self.description = description
        self.listener = listener
        self.protocol: Optional[ConsoleProtocol] = None
        self.state: Optional[dict] = None
        self._stopping = False
        endpoint = clientFromString(reactor, description)
        self.service = ClientService(
            endpoint,
            Factory.forProtocol(lambda: ConsoleProtocol(self)),
            retryPolicy=retryPolicy,
            clock=reactor,
            prepareConnection=self._subscribe,
        )

    @property
    def connected(self) -> bool:
        return self.protocol is not None

    def start(self, wait: bool = False) -> defer.Deferred:
        self.service.startService()
        d = self.service.whenConnected(failAfterFailures=None if wait else 1)

        def failed(failure):
            # Not from within the service's own callback: it is not reentrant.
            self._stopping = True
            self.reactor.callLater(0, self.service.stopService)
            return failure

        return d.addErrback(failed)

    def stop(self) -> defer.Deferred:
        self._stopping = True
        if not self.service.running:
            return defer.succeed(None)
        return self.service.stopService()

    def call(self, command: type[amp.Command], **arguments) -> defer.Deferred:
        if self.protocol is None:
            return defer.fail(NotConnected(f"not connected to {self.description} (retrying; the toolbar says when it is back)"))
        return self.protocol.callRemote(command, **arguments)

    def _subscribe(self, protocol: ConsoleProtocol) -> defer.Deferred:
        """
        Before the connection is handed out: authenticate (a TCP endpoint,
        with $GSLB_CONTROL_TOKEN), then subscribe to the endpoint's events.
        An endpoint without them (an older one) is still worth talking to:
        the toolbar then only says it is connected.
        """

        def subscribed(answer: dict) -> None:
            self._connected(protocol, answer.get("state"))

        def refused(failure) -> None:
            self._connected(protocol, None)

        def subscribe(_=None) -> defer.Deferred:
            return protocol.callRemote(Subscribe).addCallbacks(subscribed, refused)

        return authenticate(protocol).addCallback(subscribe)

    def _connected(self, protocol: ConsoleProtocol, state: Optional[dict]) -> None:
        if protocol.lost:
            return
        self.protocol = protocol
        self.state = state
        self.listener.connected(state)

    def _lost(self, protocol: ConsoleProtocol) -> None:
        # self.protocol is the service's proxy of the protocol: it says
        # whether the connection it stands for is the one lost.
        if self.protocol is None or not self.protocol.lost:
            return
        self.protocol = None
        if not self._stopping:
            self.listener.disconnected()

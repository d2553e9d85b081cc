"""
The Metric Exchange Protocol (MEP): how remote sites send their services'
metrics to the appliance, report round-trip times to client networks
(PROBE/RTT) and share persistence sessions (SESSIONS).  The protocol is
specified in docs/MEP.md.

  - L{frames}: framing and payload validation (pure)
  - L{auth}: HMAC-SHA256 challenge-response (pure)
  - L{rules}: the lower-IP rule and the sequence/gap decision (pure)
  - L{tls}: TLS context factories
  - L{session}: L{MEPSession<session.MEPSession>}, the Twisted protocol, and
    L{IMEPHandler<session.IMEPHandler>}, what its owner implements
"""

"""The WebSocket close codes a gateway uses, in one place (docs/protocol.md lists them)."""

from __future__ import annotations

NORMAL = 1000
# A frame over the limit (CHATRELAY_MAX_FRAME_BYTES).
MESSAGE_TOO_BIG = 1009
# The node is restarting; a ``reconnect`` frame came first.
RESTARTING = 1012
# The node is draining or its engine is unreachable: connect again.
OVERLOADED = 1013
BAD_SESSION = 4400
NOT_AUTHENTICATED = 4401
FORBIDDEN = 4403
# The client read too slowly and its send queue filled; the reason names the resume offset.
TOO_SLOW = 4408
TOO_MANY = 4429
# The client kept sending past its frame rate after being told to slow down
# (docs/operations.md, "Socket limits"): do not reconnect at once.
FLOODING = 1008

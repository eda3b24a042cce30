"""How long a test waits for a simulated meter: long for an answer it expects, short for silence.

The simulated meters run in the test's own process and event loop. On a loaded machine that
process stalls now and then; an answer the meter was due to write during a stall is written just
after it, while the reader's timeout, due as well, has already fired: the answer looks late, or
like silence, though nothing was wrong. So a test that expects an answer gives it far longer than
any meter needs. This costs nothing when the answer comes (it ends the wait), only when a test
waits out a damaged answer on purpose. Silence needs no such margin: a stall cannot make a silent
meter speak, so a test that expects silence keeps a short timeout.
"""

from __future__ import annotations

ANSWER_TIMEOUT_S = 2.0  # an answer the test expects, whole or damaged
SILENCE_TIMEOUT_S = 0.3  # how long a test listens to a line it expects to stay silent

# A test talking to a real service process over HTTP waits this long for an answer. httpx's
# default (5 s) is shorter than one request can take on a machine loaded to several times its
# cores (an invoice issued renders its PDF); a request that never answers still fails the test.
HTTP_TIMEOUT_S = 60.0

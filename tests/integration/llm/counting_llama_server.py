"""``python -m llama_cpp.server``, plus a log of every token the server samples.

Test-only. To see whether a cancel reaches the model *server*, a test must know how
many tokens the server produced after the client let go; the server does not say.
This runs the unchanged server module after wrapping ``Llama.sample``: each sampled
token appends its ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for every
process on the machine) to the file named by ``CHATRELAY_TEST_TOKEN_LOG``.

    python counting_llama_server.py --model M.gguf --host 127.0.0.1 --port P
"""

from __future__ import annotations

import os
import runpy
import time
from typing import Any

from llama_cpp import Llama

TOKEN_LOG_ENV = "CHATRELAY_TEST_TOKEN_LOG"


def count_sampled_tokens(path: str) -> None:
    log = open(path, "a", buffering=1)
    original = Llama.sample

    def sample(self: Llama, *args: Any, **kwargs: Any) -> int:
        token = original(self, *args, **kwargs)
        log.write(f"{time.monotonic()}\n")
        return token

    Llama.sample = sample  # type: ignore[method-assign]


if __name__ == "__main__":
    token_log = os.environ.get(TOKEN_LOG_ENV)
    if token_log:
        count_sampled_tokens(token_log)
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)

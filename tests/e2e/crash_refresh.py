"""Refresh the ApprovalMax token exactly as a run does, and SIGKILL this process at one step.

Usage: python -m tests.e2e.crash_refresh STEP   (before-request | after-response | after-save)
"""

from __future__ import annotations

import os
import signal
import sys

from approvalmax_pipeline.sources.approvalmax.config import load_settings
from approvalmax_pipeline.sources.approvalmax.connector import open_tokens


def main(step: str) -> None:
    tokens = open_tokens(load_settings())

    def kill_at(name: str) -> None:
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    tokens.observer = kill_at
    tokens.access_token()
    print("finished without reaching", step)


if __name__ == "__main__":
    main(sys.argv[1])

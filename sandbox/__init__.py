"""A local ApprovalMax-compatible server (identity and API) with synthetic data and fault knobs."""

from .server import Sandbox, SandboxKnobs, start_sandbox

__all__ = ["Sandbox", "SandboxKnobs", "start_sandbox"]

"""Deployment into training frameworks: a Hugging Face ``Trainer`` callback and a Lightning callback.

Import the one you need, ``from lrpilot.integrations.hf import PolicyLRCallback`` or
``from lrpilot.integrations.lightning import PolicyLRCallback``; this package itself
imports neither transformers nor lightning. For a plain PyTorch loop use
:class:`lrpilot.PolicyScheduler`.
"""

__all__: list[str] = []

"""The local web app for prompt debugging and classifier explanations (``agilecls serve``)."""

from .app import create_app, sample_examples

__all__ = ["create_app", "sample_examples"]

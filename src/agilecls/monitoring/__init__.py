"""Watching a served classifier: Prometheus metrics (:mod:`.metrics`) and drift checks against the
reference profile recorded when the classifier was trained (:mod:`.drift`)."""

from .drift import PROFILE_FILE, DriftMonitor, ReferenceProfile, record_profile
from .metrics import ServerMetrics

__all__ = ["PROFILE_FILE", "DriftMonitor", "ReferenceProfile", "ServerMetrics", "record_profile"]

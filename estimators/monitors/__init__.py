"""Monitors: observe and stop Estimator training (the seed's `monitors` module)."""

from estimators.monitors.base import BaseMonitor, EveryN, LossLogger, Monitor, MonitorList

__all__ = ["BaseMonitor", "EveryN", "LossLogger", "Monitor", "MonitorList"]

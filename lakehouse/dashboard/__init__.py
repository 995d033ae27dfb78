"""The monitoring dashboard: a static site built from the lake (``msp dashboard``), served on localhost with
``msp dashboard --serve``.

Its panels are the platform's own (:mod:`lakehouse.dashboard.panels`: system health and model performance)
and every agent's declared :class:`lakehouse.agents.Panel`; see ``docs/dashboard.md``.
"""

from lakehouse.dashboard.build import Dashboard, PanelResult, build, default_output
from lakehouse.dashboard.serve import serve

__all__ = ["Dashboard", "PanelResult", "build", "default_output", "serve"]

"""The synthetic MSP: a generator that behaves like a Managed Service Provider's source systems.

No real MSP lends its books, so the project ships one that is invented but consistent: PSA, CRM, RMM,
licensing, Microsoft 365, spend, cloud cost (FinOps FOCUS 1.0) and vendor contract exports, written in the
landing layout, plus the truth it planted (churners, converting leads, anomalies, licence gaps, contract
fields, dirty rows and monthly profitability) for evaluating the agents. See docs/synthetic-data.md.
"""

from lakehouse.synth.engine import DATASETS, GenerateReport, generate
from lakehouse.synth.scales import SCALES, HorizonError, Scale

__all__ = ["DATASETS", "SCALES", "GenerateReport", "HorizonError", "Scale", "generate"]

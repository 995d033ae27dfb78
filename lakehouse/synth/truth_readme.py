"""The README written beside the planted truth: the template ``TRUTH_README.md`` plus the profitability
definition (kept in one place, ``profitability.DEFINITION``)."""

from pathlib import Path

from lakehouse.synth.profitability import DEFINITION

TRUTH_README = (Path(__file__).with_name("TRUTH_README.md").read_text(encoding="utf-8")
                .replace("{definition}", DEFINITION.strip() + "\n"))

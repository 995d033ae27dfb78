"""The benchmark's memory figure: the process tree's proportional set size, where pages a forked worker
shares with the run count once, beside the plain sum of resident sets."""

from __future__ import annotations

import os
import sys
import time

import pytest

from lakehouse.bench import PeakMemory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PSS is read from Linux's smaps")


def test_pages_a_forked_child_shares_count_once_in_the_peak_but_twice_in_the_resident_sum():
    block = bytearray(os.urandom(1)) * (300 * 2**20)  # 300 MiB, touched, in this process
    child = os.fork()
    if child == 0:  # shares every page of the block, writes none
        time.sleep(3)
        os._exit(0)
    try:
        with PeakMemory(interval=0.1) as mem:
            time.sleep(1.5)
    finally:
        os.waitpid(child, 0)
    assert len(block) == 300 * 2**20
    assert mem.peak_rss_mb >= mem.peak_mb + 250  # the resident sum counts the block twice
    assert mem.peak_mb >= 300  # the proportional sum counts it once

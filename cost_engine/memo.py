"""How many blocks the engine's per-block memos keep, from a memory budget.

The engine memoizes per (block spec, input shape): the expansion into ops, the summary and the
roofline terms. Each entry's size is bounded by the block's structure (a block has a bounded
number of ops), so bounding the *count* bounds the bytes: measured with tracemalloc on 1,578
distinct OFA-space MBConv blocks, the expansion and the summary together hold 12.4 KB per
block (``tests/test_server_hostile.py`` measures it again and fails above
:data:`BLOCK_ENTRY_BYTES`). The budget is ``$COST_ORACLE_ENGINE_MEMO_MB`` (default 256 MiB):
16,384 blocks, more than an OFA-like space has at its resolutions.
"""

from __future__ import annotations

import os

__all__ = ["BLOCK_ENTRY_BYTES", "MEMO_BUDGET_ENV", "block_memo_entries"]

MEMO_BUDGET_ENV = "COST_ORACLE_ENGINE_MEMO_MB"
#: an upper estimate of one block's entry in the expansion and summary memos together (bytes)
BLOCK_ENTRY_BYTES = 16 << 10
_DEFAULT_MB = 256


def block_memo_entries() -> int:
    """Entries per block memo for the budget (at least 256, so a bad value never disables it)."""
    try:
        mb = float(os.environ.get(MEMO_BUDGET_ENV, _DEFAULT_MB))
    except ValueError:
        mb = _DEFAULT_MB
    return max(256, int(mb * (1 << 20) // BLOCK_ENTRY_BYTES))

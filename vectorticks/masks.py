"""Vectorized validation masks and their reason codes.

A rejected tick carries a bitmask of :class:`Reason` codes into the window's quarantine
section; the set of codes is bounded and their values are part of the payload contract.
"""

from __future__ import annotations

import enum


class Reason(enum.IntFlag):
    """Why a tick was quarantined (bit values are stable: consumers decode them)."""

    UNKNOWN_INSTRUMENT = 1 << 0

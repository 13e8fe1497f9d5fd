"""kmod with upstream pull request #270 "Support Extended Modversions" (unreleased).

kmod-project/kmod#270 (Matthew Maurer, head 3eaf725d7af0): 4e79a46 "Centralize
modversions parsing", ffe6c67 "libkmod: Support EXTENDED_MODVERSIONS". It
applies on master, which parses like 34.2 (FORMATS.md §3.1), so every other
knob is kmod 34's. It cannot be run here; its rules are tested on fixtures.
"""

from dataclasses import replace

from .kmod34 import KMOD34

KMOD_PR270 = replace(KMOD34, id="kmod-pr270", version="34.2+PR270", reads_extended=True)

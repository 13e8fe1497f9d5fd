"""Files: everything kmodcompat reads from disk, opened with a bound on time and memory.

The first stage of the pipeline (files → records → tree → graph → views →
report): module files and their compressed streams (:mod:`.opener`).
"""

"""Files: everything kmodcompat reads from disk, opened with a bound on time and memory.

The first stage of the pipeline (files → records → tree → graph → views →
report): module files and their compressed streams (:mod:`.opener`); text
inputs read whole, a ``.gz`` inflated in memory (:mod:`.text`), line by line
as C's ``fgets()`` gives them (:mod:`.stdio`); the one Module.symvers reader
(:mod:`.symvers`); and where a tree's kernel keeps its Module.symvers and
System.map (:mod:`.kernel`).
"""

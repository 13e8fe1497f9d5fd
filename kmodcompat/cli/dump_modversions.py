"""``kmodcompat dump-modversions MODULE``: ``modprobe --dump-modversions``, byte for byte."""

from __future__ import annotations

from ..consumers import KMOD_MODELS
from .output import add_as_option, emit


def add_parser(sub) -> None:
    p = sub.add_parser("dump-modversions", help="print a module's import versions as modprobe --dump-modversions",
                       description=__doc__.splitlines()[0])
    p.add_argument("module", metavar="MODULE", help="module file (.ko, .ko.xz, .ko.zst, .ko.gz)")
    add_as_option(p)
    p.set_defaults(run=run)


def run(args) -> int:
    result = KMOD_MODELS[args.as_].dump_modversions(args.module)
    emit(result)
    return result.status

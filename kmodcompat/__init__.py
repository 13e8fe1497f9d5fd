"""kmodcompat: what kmod, busybox and the kernel see in your kernel modules.

The public API is the library under the CLI::

    from kmodcompat import parse_module
    rec = parse_module("/lib/modules/6.12.0/kernel/fs/ext4/ext4.ko.xz")
    rec.modversions_format, rec.versions, rec.ext_versions, rec.exports

Data flows one way: files (:mod:`.opener`) → parsed module records
(:mod:`.module`, :mod:`.records`) → consumer models (:mod:`.consumers`) → views.
"""

from .errors import ModuleReadError
from .parse.module import parse_module, parse_module_bytes
from .records import ModuleRecord

__version__ = "0.1.0"
__all__ = ["ModuleReadError", "ModuleRecord", "parse_module", "parse_module_bytes", "__version__"]

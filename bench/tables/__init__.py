"""One renderer per measured table: a function from a results file in bench/results to markdown lines.

:data:`TABLES` maps a results block's name (``<!-- results:NAME -->``) to its renderer; each ends
with the command and machine of the run (:func:`bench.tables.common.machine`).
"""

from __future__ import annotations

from . import loop, quality, speed

#: Block name -> renderer.
TABLES = {name: getattr(module, name) for module in (loop, speed, quality) for name in module.__all__}

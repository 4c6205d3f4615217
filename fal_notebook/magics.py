"""IPython magics: parse the line, call the Python API, display the result. Nothing else."""

from __future__ import annotations

from IPython.core.magic import Magics, cell_magic, magics_class

from .capture import capture
from .capture.options import parse_magic_line


@magics_class
class FalMagics(Magics):
    @cell_magic
    def fal_app(self, line: str, cell: str):
        """%%fal_app [NAME] [options] — run the cell, then capture it as a deployable app."""
        parsed = parse_magic_line(line)
        if parsed.run:
            result = self.shell.run_cell(cell)
            if not result.success:
                return None
        return capture(
            cell,
            parsed.name,
            namespace=self.shell.user_ns,
            dir=parsed.dir,
            force=parsed.force,
            **parsed.options,
        )

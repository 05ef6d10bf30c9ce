"""``python -m flexunet``: list the ``flexunet-*`` commands, one line each.

The list comes from the installed console_scripts entry points (setup.cfg), and each line from
the first paragraph of the command module's docstring, so neither can drift from the code.
"""

from __future__ import annotations

import ast
from importlib.metadata import distribution
from importlib.util import find_spec


def summary(module: str) -> str:
    """A module's docstring, first paragraph on one line, minus its ``name``: prefix.

    Read from the source rather than imported, so listing stays fast (no TensorFlow)."""
    source = find_spec(module).loader.get_source(module) or ""
    paragraph = (ast.get_docstring(ast.parse(source)) or "").split("\n\n")[0]
    return " ".join(paragraph.split()).split(": ", 1)[-1].replace("``", "")


def main() -> None:
    scripts = [ep for ep in distribution("flexunet").entry_points if ep.group == "console_scripts"]
    width = max(len(ep.name) for ep in scripts)
    print("FlexUNet commands (each takes --help and Hydra overrides such as key=value):")
    for ep in scripts:
        print(f"  {ep.name:<{width}}  {summary(ep.module)}")


if __name__ == "__main__":
    main()

"""``plugin_distribution``: a throwaway installed plugin for tests of child processes.

A child process (``carrier chat``, ``carrier worker``) loads plugins only through the
``carrier`` entry-point group, so a test cannot register one in-process there. This
writes the plugin's module and a ``.dist-info`` naming its entry point into a folder;
put the folder on the child's ``PYTHONPATH`` and the plugin loads as if pip-installed.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["plugin_distribution"]


def plugin_distribution(folder: Path, name: str, source: str) -> Path:
    """Write module ``{name}_plugin`` holding ``source`` and a distribution
    ``carrier-{name}-plugin`` whose ``carrier`` entry point ``name`` names it.

    Returns:
        ``folder`` (created if needed), for ``PYTHONPATH``.
    """
    module = f"{name}_plugin"
    info = folder / f"carrier_{name}_plugin-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(source)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: carrier-{name}-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(f"[carrier]\n{name} = {module}\n")
    return folder

"""The agile loop: a labelling project (SQLite), query strategies, the fast model, background
training of the full model, evaluation and error review. See :class:`agilecls.loop.project.Project`."""

from .project import Project
from .store import ProjectError

__all__ = ["Project", "ProjectError"]

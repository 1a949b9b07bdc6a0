"""Salience and prompt debugging: which prompt tokens made a model write, or a classifier choose,
its answer. Methods in a registry (``methods``; :func:`method_titles` names them for people), the
objectives they differentiate (``objectives``), token scores summed into spans (``spans``), the
:class:`~agilecls.salience.result.Explanation` result (``result``) and its renderers (``render``);
``explanation`` builds explanations."""

from .methods import METHODS, method_titles

__all__ = ["METHODS", "method_titles"]

"""Salience and prompt debugging: which prompt tokens made a model write, or a classifier choose,
its answer. Methods in a registry (``methods``), the objectives they differentiate
(``objectives``), token scores summed into spans (``spans``), the :class:`Explanation` result
(``explanation``) and its renderers (``render``)."""

"""How good are the models? Each script fits agilecls's estimators and the alternatives a user
would pick instead on the same rows, and scores them once on test rows that chose nothing.

Scripts (``python -m bench.quality.NAME --help``):

- ``peers`` (with its configurations in ``peer_configs``): agilecls against SetFit and TF-IDF;
- ``distill``: the ``best`` recipe distilled into MiniLM, against MiniLM on the labels alone;
- ``zero_few_shot``: zero- and few-shot prompting of each bundled language model;
- ``ethos_learning_curve``: ETHOS quality against training rows and tuning epochs;
- ``multilabel_ethos``: multi-label ETHOS, per label, plain and calibrated;
- ``clinc_oos``: out-of-scope detection on CLINC150 (softmax, SNGP, Mahalanobis heads);
- ``active_learning``: query strategies with a simulated annotator;
- ``loop_decisions``: whether the labelling loop's decisions hold on imbalanced data;
- ``prior_shift``: calibrated probabilities before and after adapting to the pool's class shares;
- ``ece_floor``: how much calibration error a test set of a given size shows by chance.
"""

"""Why each default is what it is. Each script compares candidate settings on validation rows
(training rows held out, or pool texts the simulated annotator has not labelled; never the test
split) and records the evidence for the default the library ships.

Scripts (``python -m bench.defaults.NAME --help``):

- ``ethos_validation``: tuning settings, members and ensembles on ETHOS validation rows;
- ``fewshot_epochs``: epochs and the optimiser-step floor of the fine-tuned encoder member;
- ``threshold_rules``: the decision-threshold rule of a stacked ensemble;
- ``loop_rules``: the loop's decision rule and class-share estimate;
- ``multilabel_lora_steps``: comments per multi-label LoRA step and the learning rate;
- ``label_review_floor``: labels per class before the label-error review lists anything;
- ``zero_shot_scorers``: which zero-shot scorer pre-labels a new project.
"""

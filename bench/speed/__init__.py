"""How fast, and at what cost? Each script times one path of the library on this machine (the
results record which) against the plain way or its alternatives, in one process where it can, so
ratios are measured under the same load.

Scripts (``python -m bench.speed.NAME --help``):

- ``throughput``: the scoring engine against one prompt per call;
- ``inference_options``: larger batches, bf16, int8 and ONNX Runtime per ensemble member;
- ``call_sizes``: texts per call and per forward pass;
- ``batch_predict``: the streaming and Ray engines at scale, memory and resume after a kill;
- ``finetune_batching``: length-grouped against random batches when fine-tuning an encoder;
- ``load_times``: first and cached load of each bundled language model;
- ``salience``: latency of each salience method on a 300-token prompt;
- ``serve_load``: the server under concurrent load, with micro-batching and under attack;
- ``shared_cache``: what sharing the frozen lower layers' cache saves in k-fold calibration;
- ``device_check``: every workflow once on one device (CUDA when present), for agreement.
"""

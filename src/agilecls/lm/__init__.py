"""The language-model family: loading a causal LM (bundled name, Hugging Face id, folder or GGUF),
prompts and their tokens, the one label-scoring engine, LoRA tuning and the AgileClassifier.

Modules, lowest first: ``loading`` → ``prompts`` → ``forward`` → ``scoring`` / ``layer_split`` →
``tuning`` → ``saving`` → ``classifier``. Only ``classifier`` and ``saving`` know the estimator.
"""

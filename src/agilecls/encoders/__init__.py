"""The sentence-encoder family: encoders and their embedding cache, classification heads (softmax,
logistic, SNGP), out-of-scope scorers (label scores, Mahalanobis), training loops and the
EncoderClassifier.

Modules, lowest first: ``sentence`` → ``heads`` / ``ood`` → ``training`` → ``saving`` →
``classifier`` → ``members``. Only ``classifier``, ``saving`` and ``members`` know the estimator.
"""

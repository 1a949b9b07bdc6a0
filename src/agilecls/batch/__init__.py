"""Batch prediction over files of any size: chunked readers and writers (``io``) and the
streaming, resumable local engine (``local``). Above the estimators: it loads any saved
classifier with ``load_classifier`` and uses only its public ``details`` / ``predict_proba``."""

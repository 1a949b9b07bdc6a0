"""The Ray Data engine: the same predictions as the local engine, on a local Ray or a cluster.

``ray.data.read_*`` → ``map_batches`` with :class:`ClassifierPredictor` (a callable class that
loads the saved classifier once per actor) → ``write_parquet``. The saved folder travels through
Ray's object store, so workers need no shared disk; a base language model named by a bundled name
or a hub id is loaded on each worker (a local model folder must exist there too).

Needs the optional extra: ``pip install "agilecls[ray]"``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow.csv as pacsv

from ..persistence import is_saved, load_classifier
from ..ray_cluster import init_ray
from ..readers import check_columns
from ..validation import DatasetError
from .io import output_format
from .local import score_chunk


def pack_folder(folder: str | os.PathLike) -> dict[str, bytes]:
    """Every file of a saved classifier folder, by relative path (what the workers unpack)."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def unpack_folder(files: dict[str, bytes], target: Path) -> Path:
    """Write ``files`` under ``target``; refuses paths that would leave it."""
    root = target.resolve()
    for name, data in files.items():
        path = (root / name).resolve()
        if root not in path.parents:
            raise DatasetError(f"refusing to unpack {name!r} outside {root}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


class ClassifierPredictor:
    """Ray Data callable class: loads the classifier once per actor, labels pandas batches."""

    def __init__(self, files, text_col: str, id_col: str, keep: Sequence[str]):
        import ray  # the optional extra, present on every Ray worker

        if isinstance(files, ray.ObjectRef):
            files = ray.get(files)
        self._folder = tempfile.TemporaryDirectory(prefix="agilecls-model-")
        self.clf = load_classifier(unpack_folder(files, Path(self._folder.name)))
        self.text_col, self.id_col, self.keep = text_col, id_col, list(keep)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return score_chunk(self.clf, batch, 0, self.text_col, self.id_col, self.keep)


def _reader(source: str):
    import ray.data  # the optional extra

    fmt = output_format(source)  # the formats Ray Data reads: those written
    if fmt == "parquet":
        return ray.data.read_parquet(source)
    if fmt == "jsonl":
        return ray.data.read_json(source, lines=True)

    options = {"parse_options": pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
               "convert_options": pacsv.ConvertOptions(strings_can_be_null=False)}
    return ray.data.read_csv(source, **options)


def actor_pool(actors: int, ray_version: str | None = None) -> dict:
    """``map_batches`` keyword for a pool of ``actors``: ``concurrency=`` in Ray 2.9 to 2.50 (where it
    replaced ``compute``), ``compute=ActorPoolStrategy(size=...)`` before 2.9 and again from 2.51
    (where ``concurrency`` is deprecated)."""
    import ray
    import ray.data  # the optional extra

    major, minor = (int(x) for x in (ray_version or ray.__version__).split(".")[:2])
    if (major, minor) >= (2, 9) and (major, minor) < (2, 51):
        return {"concurrency": actors}
    return {"compute": ray.data.ActorPoolStrategy(size=actors)}


def cpus_per_actor(actors: int, cluster_cpus: float) -> float:
    """CPUs reserved per actor: one each when the cluster has room, else a share that leaves one CPU
    for the read and write tasks (which would otherwise wait for the actors forever, e.g. 2 actors on
    a 2-CPU machine)."""
    return max(0.25, min(1.0, (cluster_cpus - 1) / actors))


def predict_dataset(model: str | os.PathLike, source: str | os.PathLike, out: str | os.PathLike | None = None, *,
                    text_col: str = "text", id_col: str = "id", keep: Sequence[str] = (), actors: int = 2,
                    batch_size: int = 256, ray_address: str | None = None):
    """Label ``source`` with the saved classifier ``model`` on Ray Data.

    Parameters
    ----------
    model : path
        A saved classifier folder; shipped to the workers through the object store.
    source : path or URI
        CSV, TSV, JSONL or Parquet (a file or folder Ray can read, e.g. ``s3://...``).
    out : path or None, default=None
        Folder to write Parquet files to; None returns the lazy ``ray.data.Dataset``.
    text_col, id_col : str, default="text", "id"
        Rows are scored out of order across actors, so each must carry its own id.
    keep : sequence of str, default=()
        Input columns copied to the output.
    actors : int, default=2
        Actors in the pool, each holding one copy of the classifier.
    batch_size : int, default=256
        Rows per ``map_batches`` call.
    ray_address : str or None, default=None
        A cluster's address; None joins the cluster ``RAY_ADDRESS`` names, else starts a new local Ray
        (:func:`agilecls.ray_cluster.init_ray`).

    Returns
    -------
    ray.data.Dataset or str
        The dataset (``out=None``) or the output folder.

    Examples
    --------
    >>> predict_dataset("models/ethos", "s3://bucket/comments/", "s3://bucket/labels/",
    ...                 id_col="comment_id", actors=8)  # doctest: +SKIP
    """
    import ray  # the optional extra: pip install "agilecls[ray]"

    if not is_saved(model):
        raise DatasetError(f"{model} is not a saved classifier; create one with `agilecls train`")
    if not id_col:
        raise ValueError("the Ray engine needs an id column (rows are scored out of order across actors)")
    init_ray(ray_address)
    columns = list(dict.fromkeys([text_col, id_col, *keep]))
    if Path(str(source)).is_file():  # a local file gets the local engine's checks and messages first
        check_columns(source, columns)
    files = ray.put(pack_folder(model))
    ds = _reader(str(source))
    missing = [c for c in columns if c not in ds.schema().names]
    if missing:
        raise DatasetError(f"{source}: no column {missing[0]!r}; the columns are {ds.schema().names}")
    ds = ds.select_columns(columns).map_batches(ClassifierPredictor, fn_constructor_args=(files, text_col, id_col,
                                                                                          list(keep)),
                                                batch_size=batch_size, batch_format="pandas",
                                                num_cpus=cpus_per_actor(actors, ray.cluster_resources().get("CPU", 1)),
                                                **actor_pool(actors))
    if out is None:
        return ds
    ds.write_parquet(str(out))
    return str(out)

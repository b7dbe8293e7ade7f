"""Saving and loading agents as .npz files, atomically (write a temp file, then rename).

A checkpoint is a flat dict of named arrays plus one JSON string of metadata (config, task, dataset,
normaliser...). Nothing half-written is ever left under the final name: a crash while writing leaves
only a ``.tmp`` file beside it, which the next save replaces.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

META_KEY = "__meta__"


def _publish(tmp, path):
    """Give the finished temp file the permissions a plain open() would (mkstemp makes it 0600), then
    rename it onto ``path`` in one step."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)


def save_npz(path, arrays, meta):
    """Write ``arrays`` (name -> ndarray) and ``meta`` (JSON-serialisable dict) to ``path`` atomically."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    payload = dict(arrays)
    payload[META_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_npz(path, what="checkpoint"):
    """(arrays dict, meta dict) from ``path``; a clear error for a missing or corrupt file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {what} at {path}: check the path, or create it first "
                                "(e.g. gde-ref pretrain --out DIR writes DIR/offline.npz)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != META_KEY}
            meta = json.loads(bytes(data[META_KEY]).decode()) if META_KEY in data.files else None
    except (zipfile.BadZipFile, ValueError, OSError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{what} {path} is corrupt or not a gde_ref checkpoint ({err}); delete it and "
                         "write it again") from err
    if meta is None:
        raise ValueError(f"{what} {path} has no gde_ref metadata: it was not written by gde_ref")
    return arrays, meta


def write_text(path, text):
    """Write a text file atomically (a temporary file in the same folder, then renamed)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path, obj):
    """Write a JSON file atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")

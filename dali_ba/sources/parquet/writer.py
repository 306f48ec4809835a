"""Writing Parquet files as Hugging Face ``datasets`` writes image sets (the bench's copies, the tests)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..index import SampleIndex


def write_parquet(index: SampleIndex, out: str | os.PathLike, *, rows_per_file: int = 1000, row_group_size: int = 100,
                  prefix: str = "train", shuffle: bool = True, seed: int = 0) -> list[Path]:
    """Writes ``index`` as Parquet files laid out as Hugging Face ``datasets`` writes image sets.

    Columns ``image`` (struct ``{bytes, path}``, the ``Image`` feature) and ``label`` (int64, with
    ``ClassLabel`` names in the schema's metadata), ``row_group_size`` rows per row group. Files are
    written under a temporary name and renamed when complete. Used by ``dali-ba bench`` and the tests.

    Returns:
        The files written, in order.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(index)) if shuffle else np.arange(len(index))
    metadata = {b"huggingface": json.dumps({"info": {"features": {
        "image": {"_type": "Image"}, "label": {"_type": "ClassLabel", "names": list(index.classes)}}}}).encode()}
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])), ("label", pa.int64())],
                       metadata=metadata)
    written = []
    for number, start in enumerate(range(0, len(order), rows_per_file)):
        chunk = order[start : start + rows_per_file]
        images = [{"bytes": index.read(int(i)).tobytes(), "path": os.path.basename(index.name(int(i)))} for i in chunk]
        table = pa.table({"image": images, "label": index.labels[chunk]}, schema=schema)
        path = out / f"{prefix}-{number:05d}.parquet"
        partial = path.with_suffix(".parquet.tmp")
        pq.write_table(table, partial, row_group_size=row_group_size)
        os.replace(partial, path)
        written.append(path)
    return written


"""Detection records: ``{"file": ..., **detection}``, written as JSON lines or CSV.

What ``streamconv match`` prints and archives collect. `streamconv.detect` re-exports every
name.
"""

from __future__ import annotations

import csv
import json
import sys

from streamconv.dsp.matcher import Detection
from streamconv.io.files import AtomicFile

__all__ = ["FIELDS", "RecordWriter", "to_record"]

#: The fields of a detection record, in the order ``match`` writes its CSV columns.
FIELDS = ["file", "template", "sample", "time", "score", "channel", "threshold", "period"]


def to_record(path: str, det: Detection) -> dict:
    """The record of a detection of stream `path`: ``{"file": path, **det.to_dict()}``.

    A `PeriodDetection` has ``period`` as its last field; a template detection has none.
    """
    return {"file": path, **det.to_dict()}


class RecordWriter:
    """Detection records as JSON lines, or CSV with the `FIELDS` columns.

    Parameters
    ----------
    path : str, optional
        Write here (CSV when it ends in ``.csv``), under a temporary name renamed by
        ``close(ok=True)``: a failed run leaves no half file. None: JSON lines to `stream`,
        flushed after each record.
    stream : text file, optional
        Where records go without a path (default ``sys.stdout``).
    """

    def __init__(self, path: str | None = None, stream=None):
        self.atomic = None
        if path is None:
            self.stream = stream if stream is not None else sys.stdout
        else:
            self.atomic = AtomicFile(path)
            self.stream = open(self.atomic.tmp_path, "w", encoding="utf-8", newline="")
        self.csv = None
        if path is not None and path.lower().endswith(".csv"):
            self.csv = csv.DictWriter(self.stream, FIELDS, lineterminator="\n")
            self.csv.writeheader()

    def write(self, record: dict) -> None:
        """Write one record (a missing or None field is an empty CSV cell)."""
        if self.csv is not None:
            self.csv.writerow({k: ("" if v is None else v) for k, v in record.items()})
        else:
            self.stream.write(json.dumps(record) + "\n")
        if self.atomic is None:
            self.stream.flush()

    def close(self, ok: bool) -> None:
        """Finish: the file appears under its name if `ok`, else it is removed."""
        if self.atomic is None:
            return
        self.stream.close()
        if ok:
            self.atomic.commit()
        else:
            self.atomic.discard()

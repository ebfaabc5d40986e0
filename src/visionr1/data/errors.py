"""The one error type of the data layer, and the place a record's location is kept while it is converted.

Why a dedicated error: a 200K-record cold-start file with one broken image path must fail *before* the GPUs
spin up, with a message that says which file, which record and which field, so the user can fix it or turn
on ``skip_bad_records``. The loader catches :class:`DataError` per record to implement that switch; any
other exception is a bug and propagates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DataError(ValueError):
    """Bad input data. ``str(err)`` reads ``FILE: record ID: field FIELD: REASON`` (parts that are unknown
    are left out); the parts are also attributes so callers can report them in their own way.

    ``record_level`` is False for problems of the whole dataset (a missing column, an empty file), which
    ``skip_bad_records`` cannot skip.

    >>> str(DataError("image file not found: a.png", file="d/train.json", record_id="r7", field="images[0]"))
    'd/train.json: record r7: field images[0]: image file not found: a.png'
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | Path | None = None,
        record_id: str | None = None,
        field: str | None = None,
        record_level: bool = True,
    ) -> None:
        self.reason = reason
        self.file = str(file) if file is not None else None
        self.record_id = record_id
        self.field = field
        self.record_level = record_level
        super().__init__(self._message())

    def _message(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.record_id is not None:
            parts.append(f"record {self.record_id}")
        if self.field:
            parts.append(f"field {self.field}")
        parts.append(self.reason)
        return ": ".join(parts)

    @property
    def short(self) -> str:
        """The reason with its field, without file and record (what ``LoadResult.skipped`` holds)."""
        return f"field {self.field}: {self.reason}" if self.field else self.reason


@dataclass(frozen=True)
class Where:
    """Where a record lives: every error raised while converting it goes through :meth:`error`, so no
    message can forget the file or the record id."""

    file: Path
    record_id: str
    base_dir: Path  # relative media paths resolve against this (spec.image_root or the data file's folder)
    allow_outside_root: bool = False

    def error(self, field: str | None, reason: str) -> DataError:
        return DataError(reason, file=self.file, record_id=self.record_id, field=field)

    def resolve(self, path: str, field: str | None = None) -> Path:
        """A media path of the record, resolved under ``base_dir``.

        Why refuse paths outside it (``../``, absolute, ``~``, or a symlink out): a dataset downloaded from
        anywhere could otherwise make the loader read, and the cold start send to a remote API, any file
        the user can read (``/home/me/.ssh/id_rsa.png``). ``allow_outside_root: true`` in the dataset
        section opts out, for data whose images deliberately live elsewhere (or set ``image_root``).
        """
        raw = Path(path)
        p = raw.expanduser()
        p = p if p.is_absolute() else self.base_dir / p
        if self.allow_outside_root:
            return p
        try:
            root = self.base_dir.resolve()
            resolved = p.resolve()
        except (RuntimeError, OSError) as exc:  # a symlink loop (Python 3.11: RuntimeError; 3.13: OSError ELOOP)
            raise self.error(field, f"media path {path!r} cannot be resolved ({exc}). Fix: remove the symlink "
                                    "loop, or point the record at the real file") from None
        try:
            resolved.relative_to(root)
        except ValueError:
            why = "absolute" if raw.is_absolute() else "under ~" if str(raw).startswith("~") else "outside"
            raise self.error(
                field,
                f"media path {path!r} ({why}) resolves outside the dataset root {root}; paths must stay under "
                "it. Fix: move the files under the root, set image_root, or set allow_outside_root: true if you "
                "trust this dataset",
            ) from None
        return p

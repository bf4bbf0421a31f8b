"""Which files of data.root are the dataset: the layouts `<root>/<class>/` and the nsfw_data_scraper's
`<root>/train/<class>/` with an optional `<root>/test/<class>/` (then the test split).

Folder names match data.classes case-insensitively; a class folder's files count at any depth. Every
other folder or file is a stray: listed for the validation summary, never used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from efficientnext.config import UserError


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to data.root, POSIX
    label: str  # the class name as spelled in data.classes
    preset_split: str  # "test" under the scraper's test/ folder, else ""


@dataclass
class Layout:
    kind: str  # "class folders" | "scraper"
    files: list[SourceFile] = field(default_factory=list)
    stray_folders: list[str] = field(default_factory=list)
    stray_files: list[str] = field(default_factory=list)


def _entries(folder: Path) -> tuple[list[str], list[str]]:
    """Sorted (folder names, file names) directly inside `folder`."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    return [e.name for e in entries if e.is_dir()], [e.name for e in entries if not e.is_dir()]


def _files_under(folder: Path) -> list[Path]:
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(Path(parent, name) for name in sorted(files))
    return found


def _collect(root: Path, split_dir: Path, classes: list[str], preset_split: str, layout: Layout) -> None:
    """Add the class folders of `split_dir` to `layout`; a missing or empty class is an error."""
    folders, files = _entries(split_dir)
    wanted = {c.lower(): c for c in classes}
    matched: dict[str, str] = {}
    for name in folders:
        label = wanted.get(name.lower())
        if label is None:
            layout.stray_folders.append((split_dir / name).relative_to(root).as_posix())
        elif label in matched:
            raise UserError(f"data.root = '{root}': class '{label}' matches two folders in {split_dir}: "
                            f"{matched[label]}, {name}")
        else:
            matched[label] = name
    layout.stray_files.extend((split_dir / name).relative_to(root).as_posix() for name in files)
    for label in classes:
        if label not in matched:
            raise UserError(f"data.root = '{root}': no folder for class '{label}' in {split_dir} "
                            "(folder names match data.classes case-insensitively)")
        paths = _files_under(split_dir / matched[label])
        if not paths:
            raise UserError(f"data.root = '{root}': class '{label}' is empty "
                            f"({split_dir / matched[label]} has no files)")
        layout.files.extend(SourceFile(p.relative_to(root).as_posix(), label, preset_split) for p in paths)


def discover(root: str | Path, classes: list[str]) -> Layout:
    """Find the dataset's files under `root`, in sorted order."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data.root = '{root}': folder not found")
    folders, files = _entries(root)
    if not folders and not files:
        raise UserError(f"data.root = '{root}' is empty; expected <root>/<class>/ or <root>/train/<class>/ "
                        f"folders for classes {', '.join(classes)}")
    by_lower = {name.lower(): name for name in folders}
    if "train" in by_lower and "train" not in {c.lower() for c in classes}:
        layout = Layout("scraper")
        _collect(root, root / by_lower["train"], classes, "", layout)
        if "test" in by_lower:
            _collect(root, root / by_lower["test"], classes, "test", layout)
        used = {by_lower["train"], by_lower.get("test")}
        layout.stray_folders[:0] = [name for name in folders if name not in used]
        layout.stray_files[:0] = files
        return layout
    layout = Layout("class folders")
    _collect(root, root, classes, "", layout)
    return layout

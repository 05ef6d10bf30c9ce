"""Check an ``images/`` + ``masks/`` folder and lay it out as ``OUT/{train,valid,test}``.

Everything is validated before anything is written: paths and options, pairing by stem, every
file (:func:`flexunet.data.validate.check_pairs`), the lesion metadata and the split. The
output is then built in a temporary folder next to ``OUT`` and moved into place at the end,
so a failed run leaves no partial output. The source is only read: files are copied or linked,
never moved, and nothing is ever deleted (``overwrite=true`` only adds or replaces the files
this tool writes). TensorFlow is not imported on this path.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from flexunet.data.masks import decode_mask, parse_rgb_map
from flexunet.data.pairing import DEFAULT_MASK_SUFFIXES, Pair, Pairing, pair_files
from flexunet.data.sources import DEFAULT_FRACTIONS, SPLITS
from flexunet.data.split import read_lesion_groups, split_stems
from flexunet.data.validate import Problem, check_pairs, format_problems, raise_if_problems
from flexunet.errors import ConfigError, DataError
from flexunet.progress import progress

__all__ = [
    "LINK_MODES",
    "SplitRow",
    "check_source",
    "pairing_problems",
    "plot_statistics",
    "prepare_dataset",
    "run_from_config",
]

log = logging.getLogger(__name__)

#: How files reach the output: a copy (default), a symbolic link or a hard link.
LINK_MODES = ("copy", "symlink", "hardlink")
SPLIT_CSV = "split.csv"
STATISTICS_PNG = "statistics.png"
_SHOW = 10


@dataclass(frozen=True)
class SplitRow:
    """One pair's place in the prepared dataset (a row of ``split.csv``)."""

    pair: Pair
    split: str
    lesion_id: str
    lesion_fraction: float


# --------------------------------------------------------------------------- checking


def pairing_problems(pairing: Pairing) -> list[Problem]:
    """One :class:`Problem` per image without a mask and per mask without an image."""
    problems = [
        Problem(
            path,
            f"{path.name}: image without a mask (masks pair by stem: {path.stem}.png, "
            f"{path.stem}_segmentation.png, {path.stem}_lesion.bmp, ...); add its mask or "
            f"remove the image",
        )
        for path in pairing.images_without_mask
    ]
    problems += [
        Problem(
            path,
            f"{path.name}: mask without an image (no image named like it in the image "
            f"folder); add the image, rename the mask, or remove it",
        )
        for path in pairing.masks_without_image
    ]
    return problems


def check_source(
    source: Path,
    rgb_map: Mapping[object, int],
    tolerance: int = 0,
    image_dir: str = "images",
    mask_dir: str = "masks",
    mask_suffixes: Sequence[str] = DEFAULT_MASK_SUFFIXES,
    threshold: int | None = None,
) -> tuple[Pairing, list[Problem]]:
    """Pair ``source/image_dir`` with ``source/mask_dir`` and check every file (read only).

    Returns the pairing and all problems: unpaired files first, then those of
    :func:`check_pairs`. Raises :class:`DataError` for a missing folder, duplicate stems or
    a source without a single pair.
    """
    images, masks = source / image_dir, source / mask_dir
    pairing = pair_files(images, masks, mask_suffixes)
    if not pairing.pairs and not pairing.images_without_mask and not pairing.masks_without_image:
        raise DataError(f"{images}: no images found (extensions .jpg .png .bmp .tif)")
    problems = pairing_problems(pairing)
    problems += check_pairs(pairing.pairs, rgb_map, tolerance=tolerance, threshold=threshold)
    return pairing, problems


def _counts(pairing: Pairing) -> str:
    return (
        f"{len(pairing.pairs)} pair(s), {len(pairing.images_without_mask)} image(s) without "
        f"a mask, {len(pairing.masks_without_image)} mask(s) without an image"
    )


# --------------------------------------------------------------------------- options


def _check_options(
    rgb_map: Mapping[object, int],
    num_classes: int,
    fractions: Mapping[str, float],
    seed: int,
    link: str,
) -> dict[tuple[int, int, int], int]:
    """Every option is checked before the (slow) file check; returns the parsed rgb_map."""
    if link not in LINK_MODES:
        raise ConfigError(f"link={link!r}: use one of {', '.join(LINK_MODES)}")
    unknown = [name for name in fractions if name not in SPLITS]
    if unknown:
        raise ConfigError(
            f"fractions: unknown split(s) {', '.join(map(repr, unknown))}; the prepared layout "
            f"has the splits {', '.join(SPLITS)} (set a fraction to 0 to leave one empty)"
        )
    split_stems([], fractions, seed)  # raises ConfigError for bad fractions or seed
    cmap = parse_rgb_map(rgb_map)
    too_big = sorted({c for c in cmap.values() if c >= num_classes})
    if too_big:
        raise ConfigError(
            f"mask.rgb_map maps colours to class(es) {too_big}, but mask.num_classes is "
            f"{num_classes}; raise num_classes or fix rgb_map"
        )
    return cmap


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_output(
    source: Path, output: Path, image_dir: str, mask_dir: str, overwrite: bool
) -> None:
    """Refuse outputs that overlap the source and non-empty outputs without ``overwrite``."""
    src, out = source.resolve(), output.resolve()
    if _inside(out, src / image_dir) or _inside(out, src / mask_dir) or out == src:
        raise ConfigError(
            f"output {output} is the source or inside its {image_dir}/ or {mask_dir}/ folder; "
            f"choose a separate output folder"
        )
    if _inside(src, out):
        raise ConfigError(
            f"source {source} is inside the output {output}; choose a separate output folder"
        )
    if output.exists() and not output.is_dir():
        raise DataError(f"{output}: output exists and is not a folder; choose another path")
    if output.is_dir() and not overwrite:
        entries = sorted(p.name for p in output.iterdir())
        if entries:
            shown = ", ".join(entries[:_SHOW]) + (", ..." if len(entries) > _SHOW else "")
            raise DataError(
                f"{output}: output folder is not empty ({len(entries)} entries: {shown}); "
                f"choose a new folder, or set overwrite=true to add and replace the prepared "
                f"files (nothing is ever deleted)"
            )


# --------------------------------------------------------------------------- writing


def _place(src: Path, dst: Path, link: str) -> None:
    """Copy or link one source file to ``dst`` (a new path in the temporary folder)."""
    try:
        if link == "copy":
            shutil.copy2(src, dst)
        elif link == "symlink":
            dst.symlink_to(src.resolve())
        else:
            os.link(src, dst)
    except OSError as exc:
        hint = (
            "; hard links need the output on the same file system as the source: use "
            "link=copy or link=symlink"
            if link == "hardlink"
            else ""
        )
        raise DataError(f"{src}: cannot {link} it to {dst} ({exc}){hint}") from None


def write_split_csv(rows: Sequence[SplitRow], path: Path) -> None:
    """``file, split, lesion_id, mask, lesion_fraction``: one row per pair."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file", "split", "lesion_id", "mask", "lesion_fraction"])
        for row in rows:
            writer.writerow(
                [row.pair.image.name, row.split, row.lesion_id, row.pair.mask.name,
                 f"{row.lesion_fraction:.6f}"]
            )


def plot_statistics(rows: Sequence[SplitRow], path: Path, title: str = "") -> None:
    """Images per split (bars) and lesion area fraction per split (box plot with points)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [s for s in SPLITS if any(r.split == s for r in rows)]
    values = [[r.lesion_fraction for r in rows if r.split == s] for s in names]
    palette = {"train": "#4c72b0", "valid": "#dd8452", "test": "#55a868"}
    colors = [palette[s] for s in names]
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_count, ax_area = fig.subplots(1, 2)
    bars = ax_count.bar(names, [len(v) for v in values], color=colors)
    ax_count.bar_label(bars)
    ax_count.set(title="images per split", ylabel="images")
    positions = np.arange(1, len(names) + 1)
    ax_area.boxplot(values, positions=positions, widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)  # fixed jitter: the figure is reproducible
    for pos, vals, color in zip(positions, values, colors, strict=True):
        jitter = rng.uniform(-0.15, 0.15, len(vals))
        ax_area.scatter(pos + jitter, vals, s=8, alpha=0.6, color=color)
    ax_area.set_xticks(positions, names)
    ax_area.set(
        title="lesion area fraction per split", ylabel="lesion pixels / all pixels", ylim=(0, 1)
    )
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)


def _build(rows: Sequence[SplitRow], folder: Path, link: str, title: str) -> list[Path]:
    """Write the whole prepared layout into ``folder``; return the files written (relative)."""
    written = [Path(SPLIT_CSV), Path(STATISTICS_PNG)]
    for split in SPLITS:
        for sub in ("images", "masks"):
            (folder / split / sub).mkdir(parents=True)
    for row in progress(rows, link, unit="pair"):
        for sub, src in (("images", row.pair.image), ("masks", row.pair.mask)):
            rel = Path(row.split) / sub / src.name
            _place(src, folder / rel, link)
            written.append(rel)
    write_split_csv(rows, folder / SPLIT_CSV)
    plot_statistics(rows, folder / STATISTICS_PNG, title)
    return written


def _merge(tmp: Path, output: Path, written: Sequence[Path]) -> None:
    """Move the files of ``tmp`` into an existing ``output``, replacing same-named files.

    ``os.replace`` swaps directory entries: an existing link in ``output`` is replaced, never
    written through, so a previous ``link=symlink|hardlink`` output cannot alter the source.
    """
    blocked = [output / rel for rel in written if (output / rel).is_dir()]
    if blocked:
        raise DataError(
            f"{blocked[0]}: a folder is in the way of a file to write "
            f"({len(blocked)} such path(s)); move it away or choose another output"
        )
    for rel in written:
        (output / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, output / rel)


def _stale_files(output: Path, written: Sequence[Path]) -> list[Path]:
    """Image files in the split folders of ``output`` that this run did not write."""
    ours = {output / rel for rel in written}
    return sorted(
        p
        for split in SPLITS
        for sub in ("images", "masks")
        if (output / split / sub).is_dir()
        for p in (output / split / sub).iterdir()
        if p not in ours and not p.name.startswith(".")
    )


def _write(rows: Sequence[SplitRow], output: Path, link: str, title: str) -> None:
    """Build into a temporary folder next to ``output``, then move it into place."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
    try:
        written = _build(rows, tmp, link, title)
        if output.is_dir() and not any(output.iterdir()):
            output.rmdir()
        if output.exists():
            _merge(tmp, output, written)
            stale = _stale_files(output, written)
            if stale:
                log.warning(
                    "%d file(s) in %s were not written by this run and were left in place "
                    "(data=skin_cancer will read them; remove them if they come from an older "
                    "split): %s%s", len(stale), output,
                    ", ".join(str(p.relative_to(output)) for p in stale[:_SHOW]),
                    ", ..." if len(stale) > _SHOW else "",
                )
        else:
            tmp.rename(output)
    except OSError as exc:
        raise DataError(f"{output}: cannot write the prepared dataset ({exc})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)  # our own temporary folder only


# --------------------------------------------------------------------------- prepare


def _lesion_fraction(
    pair: Pair, cmap: Mapping[object, int], tolerance: int, threshold: int | None
) -> float:
    """Fraction of mask pixels of any class other than 0 (the lesion for binary masks)."""
    classes = decode_mask(pair.mask, cmap, tolerance, threshold=threshold)
    return float(np.count_nonzero(classes)) / float(max(1, classes.size))


def _log_counts(rows: Sequence[SplitRow], grouped: bool) -> None:
    lines = [f"{'split':<6} {'images':>6} {'lesions':>7}  lesion area fraction (mean, min-max)"]
    for split in SPLITS:
        part = [r for r in rows if r.split == split]
        lesions = str(len({r.lesion_id for r in part})) if grouped else "-"
        area = [r.lesion_fraction for r in part]
        stats = f"{np.mean(area):.3f} ({min(area):.3f}-{max(area):.3f})" if area else "-"
        lines.append(f"{split:<6} {len(part):>6} {lesions:>7}  {stats}")
    log.info("images per split:\n%s", "\n".join(lines))


def prepare_dataset(
    source: str | Path,
    output: str | Path | None,
    *,
    rgb_map: Mapping[object, int],
    num_classes: int = 2,
    tolerance: int = 0,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 137,
    metadata: str | Path | None = None,
    image_dir: str = "images",
    mask_dir: str = "masks",
    mask_suffixes: Sequence[str] = DEFAULT_MASK_SUFFIXES,
    link: str = "copy",
    overwrite: bool = False,
    check_only: bool = False,
    threshold: int | None = None,
) -> list[SplitRow]:
    """Check ``source`` and, unless ``check_only``, write ``output/{train,valid,test}``.

    Also writes ``output/split.csv`` and ``output/statistics.png``. With ``metadata``
    (HAM10000_metadata.csv) whole lesions go to one split. Returns the rows of split.csv
    (empty with ``check_only``). Raises :class:`ConfigError` for bad options and
    :class:`DataError` for bad input before anything is written; its message is a table
    of the problems (file, problem): all of them with ``check_only``, else the first 20.
    """
    cmap = _check_options(rgb_map, num_classes, fractions, seed, link)
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source}: source folder does not exist; check `source=`")
    if check_only:
        out = None
    elif output is None:
        raise ConfigError("output is not set: use `output=FOLDER`, or `check_only=true`")
    else:
        out = Path(output)
        _check_output(source, out, image_dir, mask_dir, overwrite)

    log.info("checking %s ...", source)
    pairing, problems = check_source(
        source, cmap, tolerance, image_dir, mask_dir, mask_suffixes, threshold
    )
    if problems:
        where = f"{source} ({_counts(pairing)})"
        if not check_only:
            raise_if_problems(problems, f"{where}, nothing was written")
        n_files = len({p.path for p in problems})
        raise DataError(
            f"{where}: {len(problems)} problem(s) in {n_files} file(s):\n"
            f"{format_problems(problems)}"
        )
    pairs = pairing.pairs
    by_stem = {p.stem: p for p in pairs}
    groups = read_lesion_groups(metadata, list(by_stem)) if metadata is not None else None
    parts = split_stems(list(by_stem), fractions, seed, groups)
    if out is None:
        log.info("%s: %d pairs OK", source, len(pairs))
        return []

    rows = [
        SplitRow(
            by_stem[stem], split, groups[stem] if groups is not None else "",
            _lesion_fraction(by_stem[stem], cmap, tolerance, threshold),
        )
        for split in SPLITS
        for stem in parts.get(split, [])
    ]
    _write(rows, out, link, title=f"{source.name}: {len(rows)} pairs, seed {seed}")
    _log_counts(rows, grouped=groups is not None)
    log.info("%d pairs OK; wrote %s (files: %s)", len(rows), out, link)
    return rows


def _resolve(path: str | None, cwd: Path) -> Path | None:
    """``path`` with ``~`` expanded, relative to ``cwd`` (the user's, not Hydra's run dir)."""
    if path is None or str(path) == "":
        return None
    resolved = Path(str(path)).expanduser()
    return resolved if resolved.is_absolute() else cwd / resolved


def run_from_config(cfg: DictConfig, cwd: Path) -> list[SplitRow]:
    """Run :func:`prepare_dataset` with a composed ``conf/prepare.yaml``."""
    source = _resolve(cfg.source, cwd)
    if source is None:
        raise ConfigError("source is not set: `flexunet-prepare source=FOLDER output=FOLDER`")
    return prepare_dataset(
        source,
        _resolve(cfg.output, cwd),
        rgb_map=dict(cfg.mask.rgb_map),
        num_classes=int(cfg.mask.num_classes),
        tolerance=int(cfg.mask.tolerance),
        fractions=dict(cfg.fractions),
        seed=int(cfg.seed),
        metadata=_resolve(cfg.metadata, cwd),
        image_dir=str(cfg.image_dir),
        mask_dir=str(cfg.mask_dir),
        mask_suffixes=list(cfg.mask_suffixes),
        link=str(cfg.link),
        overwrite=bool(cfg.overwrite),
        check_only=bool(cfg.check_only),
        threshold=cfg.mask.threshold,
    )

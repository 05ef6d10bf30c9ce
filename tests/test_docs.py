"""The README's and the docs' shell commands, run as a user runs them.

Every fenced ``bash`` block of README.md, data/README.md and docs/*.md runs as one bash script
(``set -e``, so a variable set on one line serves the next) from a fresh working directory laid
out the way the README tells a user to lay it out: the user's PH2 download in ``data/ph2`` and
the project's sample data in ``../shared/data``. Each block starts from the same state: the
synthetic data already generated and one finished ``flexunet-train debug=fast`` run in
``outputs/train/runs/``. ``data/ph2`` holds the first ``PH2_IMAGES`` PH2 pairs by name (links
to the shared files; every ``IMD00*`` and ``IMD01*`` that the README's patterns name is among
them), not all 150: the commands run the same way, and a dozen evaluations and inferences over
every image would cost minutes of the suite's budget.

The only change made to a line: ``flexunet-train`` gets ``debug=fast`` (an Optuna search also
``hydra.sweeper.n_trials=2``). A line whose comment says ``not run in CI`` (a GPU, a cluster, a
long measurement, a user's own data path) is composed with ``--cfg job`` when it is a
``flexunet-*`` command, so its syntax and keys are still checked, and skipped otherwise. A
block right after an HTML comment that says ``not run in CI`` is skipped whole (the set-up
lines, which ``.ci/run`` itself runs).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO, SHARED_DATA

DOCS = [REPO / "README.md", REPO / "data" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARK = "not run in CI"
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
SHELLS = ("bash", "sh", "shell", "console")
#: Appended to every training command (and to an Optuna search, its trial count).
FAST = "debug=fast"
FAST_OPTUNA = "hydra.sweeper.n_trials=2"
BLOCK_TIMEOUT_S = 600
#: How many PH2 pairs the user's ``data/ph2`` holds (see the module docstring).
PH2_IMAGES = 24


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    text: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def shell_blocks(doc: Path) -> list[Block]:
    """The fenced shell blocks of ``doc``, each with the reason it is skipped (or None)."""
    lines = doc.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, language = opening.groups()
        end = i + 1
        while end < len(lines) and not FENCE.match(lines[end]):
            end += 1
        if language in SHELLS:
            body = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end])
            before = lines[i - 1] if i else ""
            skip = before.strip() if before.lstrip().startswith("<!--") and MARK in before else None
            blocks.append(Block(doc, i + 1, body, skip))
        i = end + 1
    return blocks


def split_comment(line: str) -> tuple[str, str]:
    """``(command, comment)``: the comment starts at the first unquoted ``#`` that begins a
    word, as bash reads it."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i:]
    return line.rstrip(), ""


def logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined."""
    out, pending = [], ""
    for raw in text.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        out.append(pending + raw)
        pending = ""
    if pending:
        out.append(pending)
    return out


def as_run_in_ci(line: str) -> str:
    """The line as the test runs it (see the module docstring)."""
    command, comment = split_comment(line)
    words = command.split()
    program = next((w for w in words if "=" not in w or w.startswith("-")), "")
    if not command.strip():
        return line
    if MARK in comment:
        if program.startswith("flexunet-"):
            return f"{first_job(command)} --cfg job"
        return f": skipped, {MARK}: {command!r}"
    if program == "flexunet-train" and "--cfg" not in words and FAST not in words:
        command += f" {FAST}"
        if "hparams_search=optuna" in words:
            command += f" {FAST_OPTUNA}"
    return command


def first_job(command: str) -> str:
    """A multirun line as its first job: Hydra composes one config with ``--cfg job``, and
    ``-m`` cannot go with ``--cfg``; each sweep (``key=a,b``) keeps its first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    words = command.split()
    if "-m" not in words and "--multirun" not in words:
        return command
    parser = OverridesParser.create()
    out = []
    for word in words:
        if word in ("-m", "--multirun"):
            continue
        if "=" in word and not word.startswith("-"):
            override = parser.parse_override(word.strip("'\""))
            if override.is_sweep_override():
                word = f"{override.get_key_element()}={next(override.sweep_string_iterator())}"
        out.append(word)
    return " ".join(out)


def script_for(block: Block) -> str:
    return "set -euo pipefail\n" + "\n".join(as_run_in_ci(x) for x in logical_lines(block.text))


ALL_BLOCKS = [block for doc in DOCS for block in shell_blocks(doc)]
RUN_BLOCKS = [block for block in ALL_BLOCKS if not block.skip_reason]


# --- the transformation itself ------------------------------------------------------------


def test_training_lines_get_debug_fast_and_marked_lines_are_only_composed() -> None:
    assert as_run_in_ci("flexunet-train model.base_filters=32   # any key") == (
        "flexunet-train model.base_filters=32 debug=fast"
    )
    assert as_run_in_ci("flexunet-train -m hparams_search=optuna hydra.sweeper.n_trials=40") == (
        "flexunet-train -m hparams_search=optuna hydra.sweeper.n_trials=40 debug=fast "
        "hydra.sweeper.n_trials=2"
    )
    assert as_run_in_ci("flexunet-train debug=fast") == "flexunet-train debug=fast"
    assert as_run_in_ci("flexunet-eval ckpt_path=$RUN eval.tta=flips") == (
        "flexunet-eval ckpt_path=$RUN eval.tta=flips"
    )
    assert as_run_in_ci(
        "flexunet-train model=flexunet   # the published model (GPU: not run in CI)"
    ) == "flexunet-train model=flexunet --cfg job"
    assert as_run_in_ci("tensorboard --logdir outputs/   # a server: not run in CI") == (
        ": skipped, not run in CI: 'tensorboard --logdir outputs/'"
    )
    assert as_run_in_ci(
        "flexunet-train -m hydra/launcher=slurm model.base_filters=8,16  # a cluster: not run in CI"
    ) == "flexunet-train hydra/launcher=slurm model.base_filters=8 --cfg job"
    assert as_run_in_ci("flexunet-train 'model.base_kernels=[7,7]'  # quoted #") == (
        "flexunet-train 'model.base_kernels=[7,7]' debug=fast"
    )


def test_every_document_with_commands_is_found_and_only_the_set_up_is_left_out() -> None:
    docs = {block.doc.name for block in RUN_BLOCKS}
    assert {"README.md", "results.md", "performance.md", "deploy.md"} <= docs
    assert len(RUN_BLOCKS) >= 20
    # the README's two set-up lines, which .ci/run runs itself
    assert [block.id for block in ALL_BLOCKS if block.skip_reason] == ["README.md:4"]


# --- running them ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory as the README leaves a user: PH2 in data/ph2, the sample data in
    ../shared/data, synthetic data generated and one finished debug run. Copied per block."""
    root = tmp_path_factory.mktemp("user")
    (root / "shared").symlink_to(SHARED_DATA.parent, target_is_directory=True)
    work = root / "seed"
    link_ph2_subset(SHARED_DATA / "ph2", work / "data" / "ph2", PH2_IMAGES)
    proc = run_shell(f"flexunet-train {FAST}", work)
    if proc.returncode:
        pytest.fail(f"seeding the working directory failed:\n{proc.stdout[-3000:]}")
    return work


def link_ph2_subset(source: Path, target: Path, count: int) -> None:
    """``target/{images,masks}`` with links to the first ``count`` pairs of ``source`` by stem."""
    images = sorted((source / "images").iterdir())[:count]
    masks = {path.stem: path for path in (source / "masks").iterdir()}
    for folder in ("images", "masks"):
        (target / folder).mkdir(parents=True)
    for image in images:
        (target / "images" / image.name).symlink_to(image)
        mask = masks[image.stem]
        (target / "masks" / mask.name).symlink_to(mask)


def run_shell(script: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=BLOCK_TIMEOUT_S,
    )


@pytest.mark.shared_data
@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.id for b in RUN_BLOCKS])
def test_documented_commands_run_as_written(block: Block, user_dir: Path) -> None:
    work = user_dir.parent / f"block_{block.doc.stem}_{block.line}"
    subprocess.run(["cp", "-a", str(user_dir), str(work)], check=True)
    script = script_for(block)
    proc = run_shell(script, work)
    assert proc.returncode == 0, f"{block.id} failed:\n{script}\n--- output:\n{proc.stdout[-4000:]}"
    assert "Traceback" not in proc.stdout, f"{block.id}:\n{proc.stdout[-4000:]}"

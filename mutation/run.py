"""Mutation run (cosmic-ray) over the modules where a silent change costs most: store, signing, crypto,
relay, outbox.

Each target is one module and the fast tests that exercise it. The run works on a copy of the tree
(cosmic-ray edits files in place), one mutant at a time, and prints per module: mutants made, skipped
(inside type annotations, which `from __future__ import annotations` never evaluates), killed, timed out,
survived. Survivors are written to `.mutation/<target>.survivors.txt` with their diffs.

    python mutation/run.py                 # every target
    python mutation/run.py signing crypto  # some of them
"""
from __future__ import annotations

import argparse
import ast
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import MutationSpec, TestOutcome, WorkerOutcome, WorkResult

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
TREE = WORK / "tree"


@dataclass(frozen=True)
class Target:
    module: str
    tests: tuple[str, ...]
    timeout: float  # seconds per mutant; a mutant that hangs the tests counts as killed (reported apart)


STORE_TESTS = ("tests/unit/test_store.py", "tests/unit/test_store_plumbing.py")
TARGETS = {
    "signing": Target("core/signing.py", ("tests/unit/test_signing.py",), 30),
    "crypto": Target("core/wechat/crypto.py", ("tests/unit/test_crypto_vectors.py",), 30),
    "sql": Target("core/store/sql.py", STORE_TESTS, 60),
    "dialects": Target("core/store/dialects.py", STORE_TESTS, 60),
    "outbox": Target("core/outbox.py", ("tests/unit/test_outbox.py",), 60),
    "relay": Target("core/relay.py", ("tests/unit/test_relay.py", "tests/unit/test_reply_grouping.py"), 90),
}


def copy_tree() -> None:
    """The working tree as git sees it (tracked and new files), without the venv or caches."""
    if TREE.exists():
        shutil.rmtree(TREE)
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not name.startswith(".mutation/"):
            (TREE / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, TREE / name)


def annotation_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions, line 1-based and column 0-based as cosmic-ray counts, of every annotation."""
    tree = ast.parse(path.read_text())
    nodes: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign):
            nodes.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            nodes += [arg.annotation for arg in every if arg is not None and arg.annotation is not None]
            if node.returns is not None:
                nodes.append(node.returns)
    return [((n.lineno, n.col_offset), (n.end_lineno or n.lineno, n.end_col_offset or 0)) for n in nodes]


# cosmic-ray swaps each binary operator for every other one (11 mutants per `+`), nearly all killed by a
# TypeError at once; only the natural counterpart is run, as mutmut does.
COUNTERPART = {"Add": "Sub", "Sub": "Add", "Mul": "Div", "Div": "Mul", "FloorDiv": "Div", "Mod": "Div",
               "Pow": "Mul", "LShift": "RShift", "RShift": "LShift", "BitAnd": "BitOr", "BitOr": "BitAnd",
               "BitXor": "BitAnd"}
ANNOTATION, NOT_COUNTERPART = "annotation", "not the counterpart"


def skip_reason(mutation: MutationSpec, spans: list[tuple[tuple[int, int], tuple[int, int]]]) -> str | None:
    if any(start <= mutation.start_pos < end for start, end in spans):
        return ANNOTATION
    operator = mutation.operator_name.removeprefix("core/")
    if operator.startswith("ReplaceBinaryOperator_"):
        _, source, replacement = operator.split("_")
        if COUNTERPART.get(source) != replacement:
            return NOT_COUNTERPART
    return None


def skip(session: Path, module: Path) -> None:
    """Mark mutants not worth a test run as skipped, with the reason as their output."""
    spans = annotation_spans(module)
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.work_items):
            [mutation] = item.mutations
            reason = skip_reason(mutation, spans)
            if reason:
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=reason))


def configure(name: str, target: Target) -> Path:
    command = " ".join([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                        *target.tests])
    config = WORK / f"{name}.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(target.module)}\n"
        f"timeout = {target.timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(command)}\n\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    return config


def summarise(name: str, session: Path) -> dict[str, int]:
    """Counts per outcome; the survivors, with their diffs, go to .mutation/<name>.survivors.txt."""
    counts = {"made": 0, ANNOTATION: 0, NOT_COUNTERPART: 0, "killed": 0, "timeout": 0, "survived": 0, "other": 0}
    survivors = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        counts["made"] = db.num_work_items
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                counts[result.output or ANNOTATION] += 1
            elif result.worker_outcome != WorkerOutcome.NORMAL:
                counts["other"] += 1
            elif result.test_outcome == TestOutcome.KILLED:
                counts["timeout" if result.output == "timeout" else "killed"] += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                counts["survived"] += 1
                [mutation] = item.mutations
                survivors.append((mutation.start_pos, mutation.operator_name.removeprefix("core/"), result.diff))
            else:
                counts["other"] += 1
    survivors.sort()
    brief = [f"line {pos[0]}: {changed(diff)}" for pos, _, diff in survivors]
    full = [f"## line {pos[0]} col {pos[1]}: {operator}\n{diff}" for pos, operator, diff in survivors]
    (WORK / f"{name}.survivors.txt").write_text("\n".join(brief + [""] + full))
    return counts


def changed(diff: str) -> str:
    """The mutated line of a diff, as `old -> new`, trimmed to what differs."""
    old = next(line[1:].strip() for line in diff.splitlines() if line.startswith("-") and not line.startswith("---"))
    new = next(line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++"))
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0
    while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
        end += 1
    start = max(0, old.rfind(" ", 0, max(0, start - 12)) + 1)
    return f"`{old[start:len(old) - end + 8].strip()}` -> `{new[start:len(new) - end + 8].strip()}`"


def cosmic_ray(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "cosmic_ray.cli", *map(str, args)], cwd=TREE, check=True)


def run(name: str, target: Target) -> dict[str, int]:
    session = WORK / f"{name}.sqlite"
    session.unlink(missing_ok=True)
    config = configure(name, target)
    cosmic_ray("init", config, session)
    skip(session, TREE / target.module)
    cosmic_ray("baseline", config)  # the unmutated tests must pass, or every mutant would look killed
    started = time.monotonic()
    cosmic_ray("exec", config, session)
    return {**summarise(name, session), "seconds": round(time.monotonic() - started)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=", ".join(TARGETS) + " (default: all)")
    parser.add_argument("--report", action="store_true", help="print the figures of the last run, run nothing")
    args = parser.parse_args()
    names = args.targets or list(TARGETS)
    if unknown := set(names) - set(TARGETS):
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if args.report:
        names = [name for name in names if (WORK / f"{name}.sqlite").exists()]
    else:
        WORK.mkdir(exist_ok=True)
        copy_tree()
    print(f"{'module':24} {'made':>5} {'annot':>5} {'pairs':>5} {'killed':>6} {'timeout':>7} {'survived':>8} "
          f"{'other':>5} {'survival':>8} {'seconds':>7}")
    for name in names:
        counts = {**summarise(name, WORK / f"{name}.sqlite"), "seconds": 0} if args.report else run(name, TARGETS[name])
        tested = counts["killed"] + counts["timeout"] + counts["survived"]
        rate = f"{100 * counts['survived'] / tested:.1f} %" if tested else "-"
        print(f"{TARGETS[name].module:24} {counts['made']:5} {counts[ANNOTATION]:5} {counts[NOT_COUNTERPART]:5} "
              f"{counts['killed']:6} "
              f"{counts['timeout']:7} {counts['survived']:8} {counts['other']:5} {rate:>8} {counts['seconds']:7}",
              flush=True)
    if not args.report:
        shutil.rmtree(TREE)


if __name__ == "__main__":
    main()

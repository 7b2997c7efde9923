"""Merge the run records of another machine's ablation (the tarball ``scripts/gpu_study.sh`` brings back, or a results
folder) into a results folder of ``scripts/ablate.py``, then rebuild its summary (``ablate.py --summarize-only``).

Copied: ``runs/*.json`` (the run records), ``predictions/*.jsonl``, and ``data/README.md`` and ``summary.json`` where
the folder has none yet. Checked first, so that nothing is copied unless everything can be: a record whose run is
already there with another fingerprint (e.g. the CPU run of the same setting and seed) and a data README that differs
from the folder's (other data) each exit 2 naming the file. A record already there with the same fingerprint is
kept as it is.

    python scripts/merge_runs.py gpu-study.tar.gz --into runs/gpu-study
    python scripts/merge_runs.py /tmp/other-results --into runs/ablation
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from pathlib import Path, PurePosixPath

from ablation_tables import resummarize, text_table

# What is taken from a source, by where it sits in the results folder.
WANTED = {("runs", ".json"), ("predictions", ".jsonl")}
ONCE = {("data", "README.md"), ("", "summary.json")}  # copied only where the folder has none


def source_files(source: Path) -> dict[str, bytes]:
    """Relative path in the results folder -> content, of every wanted file of a tarball or folder. In a tarball the
    results folder is the one holding runs/ (e.g. gpu-study/runs/...); nothing is extracted but these files."""
    found = {}
    if source.is_dir():
        for path in source.rglob("*"):
            if path.is_file() and _wanted(name := path.relative_to(source).as_posix()):
                found[name] = path.read_bytes()
        return found
    with tarfile.open(source) as tar:
        roots = {PurePosixPath(m.name).parent.parent for m in tar.getmembers()
                 if m.isfile() and PurePosixPath(m.name).parent.name == "runs"}
        if len(roots) != 1:
            raise SystemExit(_refuse(f"{source}: expected one folder with a runs/ folder, found {len(roots)}"))
        (root,) = roots
        for member in tar.getmembers():
            path = PurePosixPath(member.name)
            if member.isfile() and root in path.parents and _wanted(name := path.relative_to(root).as_posix()):
                found[name] = tar.extractfile(member).read()
    return found


def _wanted(name: str) -> bool:
    path = PurePosixPath(name)
    folder = path.parent.as_posix() if path.parent.as_posix() != "." else ""
    return (folder, path.suffix) in WANTED or (folder, path.name) in ONCE


def plan_merge(files: dict[str, bytes], into: Path) -> tuple[dict[str, bytes], list[str]]:
    """(files to write, notes); exit 2 on a conflict, before anything is written."""
    write, notes = {}, []
    for name, content in sorted(files.items()):
        target = into / name
        if not target.exists():
            write[name] = content
        elif name.startswith("runs/"):
            theirs, ours = json.loads(content)["fingerprint"], json.loads(target.read_text())["fingerprint"]
            if theirs != ours:
                raise SystemExit(_refuse(f"{target} holds the run with fingerprint {ours}, the source one with "
                                           f"{theirs} (another device or setting): move one away first"))
            notes.append(f"{name}: already there (same fingerprint), kept")
        elif name == "data/README.md" and target.read_bytes() != content:
            raise SystemExit(_refuse(f"{target} differs from the source's: the runs trained on other data"))
    return write, notes


def _refuse(message: str) -> int:
    print(f"merge_runs.py: {message}", file=sys.stderr)
    return 2


def merge(sources: list[Path], into: Path) -> list[str]:
    """Copy the sources' files into `into` after checking all of them; returns what was written."""
    planned, notes = {}, []
    for source in sources:
        write, source_notes = plan_merge(source_files(source), into)
        clash = sorted(name for name in write if name.startswith("runs/") and name in planned)
        if clash:
            raise SystemExit(_refuse(f"{clash[0]} comes from two sources"))
        planned.update({name: content for name, content in write.items() if name not in planned})
        notes += source_notes
    for name, content in planned.items():
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_bytes(content)
    for note in notes:
        print(note)
    return sorted(planned)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", type=Path, help="tar.gz files or results folders")
    parser.add_argument("--into", type=Path, required=True, help="the results folder (created if missing)")
    args = parser.parse_args(argv)
    missing = [str(s) for s in args.sources if not s.exists()]
    if missing:
        return _refuse(f"no such source: {', '.join(missing)}")
    written = merge(args.sources, args.into)
    runs = sum(name.startswith("runs/") for name in written)
    print(f"merged {runs} run record(s) and {len(written) - runs} other file(s) into {args.into}")
    print(text_table(resummarize(args.into.absolute())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

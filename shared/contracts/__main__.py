"""`python -m shared.contracts --out DIR`: the contract as files, for integrators offline.

Writes `asyncapi.json` and `schemas/<ce_type>.json`, after checking the document, so a release
can ship them beside the code and nobody needs a running registry to generate a client.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shared.contracts.asyncapi import asyncapi_document
from shared.contracts.check import check_asyncapi
from shared.contracts.schemas import event_schemas


def write(out: Path, *, prefix: str) -> list[Path]:
    """Write the files under `out`; returns their paths. Refuses a document that fails checks."""
    doc = asyncapi_document(prefix)
    problems = check_asyncapi(doc)
    if problems:
        raise ValueError("AsyncAPI document failed its checks: " + "; ".join(problems))
    (out / "schemas").mkdir(parents=True, exist_ok=True)
    files = {out / "asyncapi.json": doc}
    files |= {out / "schemas" / f"{t}.json": s for t, s in event_schemas().items()}
    for path, content in files.items():
        path.write_text(json.dumps(content, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return list(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.contracts", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--prefix", default="caseshare", help="topic prefix (default caseshare)")
    args = parser.parse_args(argv)
    written = write(args.out, prefix=args.prefix)
    sys.stdout.write(f"wrote {len(written)} files under {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

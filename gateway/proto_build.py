"""Generate the gRPC Python code in gateway/proto/ from protos/ (``--check``: fail when it has drifted)."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PROTO_FILE = Path("colorizer/v1/colorizer.proto")
OUT_DIR = Path(__file__).resolve().parent / "proto"
GENERATED = ("colorizer_pb2.py", "colorizer_pb2.pyi", "colorizer_pb2_grpc.py")

# protoc writes absolute imports after the proto path ("from colorizer.v1 import colorizer_pb2 as ...");
# inside the gateway package they must be relative.
_ABSOLUTE_IMPORT = re.compile(r"^from colorizer\.v1 import (\w+_pb2)", re.MULTILINE)


def generate(out_dir: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Run grpc_tools.protoc on the .proto under ``proto_root``; write the fixed-up modules into ``out_dir``."""
    from grpc_tools import protoc  # grpcio-tools is a development dependency only

    with tempfile.TemporaryDirectory(prefix="proto-build-") as tmp:
        include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto shipped with grpcio-tools
        args = [
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(proto_root / PROTO_FILE),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto_root / PROTO_FILE}")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in GENERATED:
            text = (Path(tmp) / PROTO_FILE.parent / name).read_text()
            target = out_dir / name
            target.write_text(_ABSOLUTE_IMPORT.sub(r"from . import \1", text))
            written.append(target)
        return written


def drift(committed: Path = OUT_DIR, proto_root: Path = PROTO_ROOT) -> list[str]:
    """Unified diffs between modules freshly generated from ``proto_root`` and ``committed`` (empty when equal)."""
    with tempfile.TemporaryDirectory(prefix="proto-check-") as tmp:
        generate(Path(tmp), proto_root)
        diffs = []
        for name in GENERATED:
            fresh = (Path(tmp) / name).read_text().splitlines(keepends=True)
            path = committed / name
            old = path.read_text().splitlines(keepends=True) if path.is_file() else []
            diff = "".join(difflib.unified_diff(old, fresh, f"committed/{name}", f"generated/{name}"))
            if diff:
                diffs.append(diff)
        return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.proto_build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    args = parser.parse_args(argv)
    if args.check:
        diffs = drift(OUT_DIR, PROTO_ROOT)
        if diffs:
            sys.stdout.write("".join(diffs))
            print(f"gateway/proto is out of date with {PROTO_FILE}: run `make proto`", file=sys.stderr)
            return 1
        print("gateway/proto matches the .proto")
        return 0
    for path in generate(OUT_DIR):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

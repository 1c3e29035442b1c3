"""The committed gRPC code in gateway/proto/ is exactly what protos/colorizer/v1/colorizer.proto generates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway import proto_build
from gateway.proto import colorizer_pb2 as pb


def test_committed_stubs_match_the_proto() -> None:
    diffs = proto_build.drift()
    assert not diffs, "gateway/proto is stale: run `make proto` (python -m gateway.proto_build)\n" + "".join(diffs)


def test_check_mode_passes_on_the_committed_stubs(capsys: pytest.CaptureFixture[str]) -> None:
    assert proto_build.main(["--check"]) == 0
    assert "matches" in capsys.readouterr().out


def test_an_edited_proto_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(proto_build.PROTO_ROOT, protos)
    proto = protos / proto_build.PROTO_FILE
    proto.write_text(proto.read_text().replace("message Hint {", "message Hint {\n  float radius = 4;", 1))
    diffs = proto_build.drift(proto_root=protos)
    assert diffs and any("colorizer_pb2.pyi" in d and "radius" in d for d in diffs)
    monkeypatch.setattr(proto_build, "PROTO_ROOT", protos)
    assert proto_build.main(["--check"]) == 1
    assert "make proto" in capsys.readouterr().err


def test_an_edited_stub_is_caught(tmp_path: Path) -> None:
    for name in proto_build.GENERATED:
        shutil.copy(proto_build.OUT_DIR / name, tmp_path / name)
    (tmp_path / "colorizer_pb2_grpc.py").write_text("# edited by hand\n", encoding="utf-8")
    assert [d.splitlines()[0] for d in proto_build.drift(committed=tmp_path)] == ["--- committed/colorizer_pb2_grpc.py"]


def test_generated_imports_are_package_relative() -> None:
    text = (proto_build.OUT_DIR / "colorizer_pb2_grpc.py").read_text()
    assert "from . import colorizer_pb2" in text and "from colorizer.v1" not in text
    assert pb.DESCRIPTOR.package == "colorizer.v1"
    assert pb.DESCRIPTOR.name == "colorizer/v1/colorizer.proto"  # the path reflection clients resolve
    assert [m.name for m in pb.DESCRIPTOR.services_by_name["Colorizer"].methods] == [
        "ListModels",
        "Colorize",
        "ColorizeAll",
    ]

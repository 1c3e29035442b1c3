"""Packages downloaded once into a cache folder: Debian packages unpacked, PyPI distributions as downloaded.

A build asks for each listed package at its pinned version; the cache answers without the network from then on,
so a rebuild is fast and works offline, and falls back to the version a registry still serves when the pin is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

COMMAND_TIMEOUT_S = 1800


class FetchError(Exception):
    """A listed package could not be obtained from its registry."""


@dataclass(frozen=True)
class FetchedPackage:
    """A package ready to read: ``root`` is the unpacked folder (Debian) or the downloaded archive (PyPI)."""

    root: Path
    version: str  # the version actually obtained


# (registry, package, pinned version) -> FetchedPackage, raising FetchError
Fetcher = Callable[[str, str, str], FetchedPackage]


def _last_error(result: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (result.stderr or result.stdout or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("E:", "ERROR:"))]
    return (errors or lines or [f"exit status {result.returncode}"])[-1]


def _dist_version(path: Path) -> str:
    name = path.name
    if name.endswith(".whl"):
        return name.split("-")[1]
    for suffix in (".tar.gz", ".zip", ".tar.bz2"):
        if name.endswith(suffix):
            return name[: -len(suffix)].rsplit("-", 1)[-1]
    return ""


class PackageCache:
    """Downloads pinned packages once into a cache folder; later calls answer from the cache without the network.

    Debian: ``apt-get download NAME=VERSION`` (``apt-get update`` once if that fails; if the archive no longer
    serves the version, the one it serves), unpacked with ``dpkg-deb -x`` into ``debian/NAME/``.
    PyPI: ``pip download --no-deps NAME==VERSION`` (a wheel when there is one) into ``pypi/NAME-VERSION/``.
    """

    def __init__(self, cache_dir: Path, warn: Callable[[str], None] = print) -> None:
        self.cache_dir = Path(cache_dir)
        self.warn = warn
        self.downloads: list[str] = []  # files downloaded by this instance (cache hits are not counted)
        self._apt_updated = False

    def __call__(self, registry: str, package: str, version: str) -> FetchedPackage:
        if registry == "debian":
            return self.debian(package, version)
        if registry == "pypi":
            return self.pypi(package, version)
        raise FetchError(f"unknown registry {registry!r}")

    @staticmethod
    def _run(command: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                list(command), cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
            )
        except FileNotFoundError:
            raise FetchError(f"{command[0]} is not available on this machine") from None
        except subprocess.TimeoutExpired:
            raise FetchError(f"{' '.join(command[:3])} took longer than {COMMAND_TIMEOUT_S} s") from None

    # Debian

    def debian(self, package: str, version: str) -> FetchedPackage:
        base = self.cache_dir / "debian"
        unpacked = base / package
        marker = unpacked / ".fetched.json"
        if marker.is_file():
            return FetchedPackage(unpacked, json.loads(marker.read_text())["version"])
        base.mkdir(parents=True, exist_ok=True)
        pinned = urllib.parse.unquote(version)
        deb = self._cached_deb(base, package, pinned) or self._apt_download(base, package, pinned)
        got = self._run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()
        got = got or urllib.parse.unquote(deb.name.split("_")[1])
        staging = base / f".{package}.unpacking"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        result = self._run(["dpkg-deb", "-x", str(deb), str(staging)])
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise FetchError(f"dpkg-deb could not unpack {deb.name}: {_last_error(result)}")
        (staging / ".fetched.json").write_text(json.dumps({"package": package, "version": got, "deb": deb.name}))
        shutil.rmtree(unpacked, ignore_errors=True)
        staging.rename(unpacked)
        return FetchedPackage(unpacked, got)

    @staticmethod
    def _cached_deb(base: Path, package: str, pinned: str) -> Path | None:
        debs = sorted(base.glob(f"{package}_*.deb"))
        exact = [d for d in debs if urllib.parse.unquote(d.name.split("_")[1]) == pinned]
        return (exact or debs or [None])[0]

    def _apt_download(self, base: Path, package: str, pinned: str) -> Path:
        downloads = base / ".download"
        shutil.rmtree(downloads, ignore_errors=True)
        downloads.mkdir()

        def download(spec: str) -> subprocess.CompletedProcess:
            return self._run(["apt-get", "download", spec], cwd=downloads)

        result = download(f"{package}={pinned}")
        if result.returncode != 0 and not self._apt_updated:
            self._apt_updated = True
            update = self._run(["apt-get", "update"])
            if update.returncode != 0:
                self.warn(f"apt-get update failed: {_last_error(update)}")
            result = download(f"{package}={pinned}")
        if result.returncode != 0:
            served = download(package)
            if served.returncode != 0:
                raise FetchError(f"apt-get could not download {package}: {_last_error(result)}")
            result = served
        debs = sorted(downloads.glob("*.deb"))
        if not debs:
            raise FetchError(f"apt-get download {package} left no .deb file")
        target = base / debs[0].name
        os.replace(debs[0], target)
        self.downloads.append(target.name)
        shutil.rmtree(downloads, ignore_errors=True)
        served_version = urllib.parse.unquote(target.name.split("_")[1])
        if served_version != pinned:
            self.warn(f"{package} {pinned} is no longer served by Debian; using {served_version} (same paths)")
        return target

    # PyPI

    def pypi(self, package: str, version: str) -> FetchedPackage:
        folder = self.cache_dir / "pypi" / f"{package}-{version}"
        cached = self._cached_dist(folder)
        if cached is not None:
            return FetchedPackage(cached, _dist_version(cached))
        staging = folder.parent / f".{folder.name}.download"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--no-input"]
        attempts = (
            [f"{package}=={version}", "--only-binary=:all:"],  # a wheel for this interpreter
            [f"{package}=={version}"],  # a source archive when no wheel fits
            [package, "--only-binary=:all:"],  # the pinned version is gone: the current one
        )
        error = ""
        for extra in attempts:
            result = self._run([*pip, "-d", str(staging), *extra])
            if result.returncode == 0 and self._cached_dist(staging) is not None:
                break
            error = error or _last_error(result)
            for leftover in staging.iterdir():
                leftover.unlink()
        else:
            shutil.rmtree(staging, ignore_errors=True)
            raise FetchError(f"pip could not download {package}=={version}: {error}")
        dist = self._cached_dist(staging)
        assert dist is not None
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / dist.name
        os.replace(dist, target)
        self.downloads.append(target.name)
        shutil.rmtree(staging, ignore_errors=True)
        got = _dist_version(target)
        if got != version:
            self.warn(f"{package} {version} could not be downloaded; using {got}")
        return FetchedPackage(target, got)

    @staticmethod
    def _cached_dist(folder: Path) -> Path | None:
        if not folder.is_dir():
            return None
        dists = sorted(p for p in folder.iterdir() if p.is_file() and _dist_version(p))
        return dists[0] if dists else None

"""Update packages (``NAME.edgecls``): one signed file carrying a model to a device.

A package is a zip with a fixed layout::

    manifest.json   format, version, labels, input spec, creation time, source run, and
                    the sha256 and size of every other member
    manifest.sig    64 bytes: the Ed25519 signature of manifest.json (absent: unsigned)
    model.tflite    the artifact (labels and spec embedded)
    bundle/...      its field bundle (edgecls.bundle), checked on the device before a swap

Host and device both read it, so the reader lives in the core. It treats every package
as hostile (STYLE.md, "trust at the boundary"): the file size, member count, manifest
size and unpacked size are capped; only regular files with plain relative paths; the
signature is checked against the trusted keys before the manifest is parsed; then every
member must be listed, sized and hashed exactly as the signed manifest says, as it is
streamed out. Nothing in a package is executed or unpickled. Ed25519 comes from
``cryptography`` (no hand-written crypto); it is imported only here, inside functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from edgecls.bundle import file_sha256
from edgecls.errors import DataError, MissingDependencyError, OutputError
from edgecls.fsutil import atomic_write_bytes

PACKAGE_FORMAT = "edgecls-package"
PACKAGE_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MODEL = "model.tflite"
BUNDLE = "bundle"
SUFFIX = ".edgecls"
#: Caps on what a package may make the reader do. A package is a model of a few MB and a
#: bundle of a few MB; these leave room for much larger models and refuse a zip bomb.
MAX_PACKAGE_BYTES = 256 << 20
MAX_UNPACKED_BYTES = 512 << 20
MAX_MEMBERS = 4096
MAX_MANIFEST_BYTES = 4 << 20
SIGNATURE_BYTES = 64


@dataclass(frozen=True)
class PackageInfo:
    """A verified package's manifest, as the store and the gate use it."""

    version: str
    labels: tuple[str, ...]
    input_size: int
    created: str
    source_run: str
    model_sha256: str
    key_id: str
    manifest: dict[str, Any]

    @property
    def short(self) -> str:
        return f"{self.version} ({self.model_sha256[:12]})"


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as err:
        raise MissingDependencyError("cryptography", "device", "signing and verifying update packages") from err
    return ed25519


def key_id(public_raw: bytes) -> str:
    """A short name for a public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def keygen(out: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``OUT.key`` (private, PEM, mode 0600) and ``OUT.pub``."""
    ed25519 = _crypto()
    from cryptography.hazmat.primitives import serialization

    private_path, public_path = Path(f"{out}.key"), Path(f"{out}.pub")
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise OutputError(f"{path} exists: choose another name or pass --force (the old key would be lost)")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write_bytes(private_path, private_pem)
    os.chmod(private_path, 0o600)
    atomic_write_bytes(public_path, public_pem)
    return private_path, public_path


def _read_key_file(path: Path, what: str) -> bytes:
    path = Path(path)
    try:
        if path.stat().st_size > 16384:
            raise DataError(f"{what} {path} is not a key ({path.stat().st_size} bytes): give the file 'edgecls keygen' wrote")
        return path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {what} {path}: {err.strerror}; give the file 'edgecls keygen' wrote") from err


def load_private_key(path: Path) -> Any:
    ed25519 = _crypto()
    from cryptography.hazmat.primitives import serialization

    data = _read_key_file(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise DataError(f"signing key {path} is not an unencrypted PEM private key: give the NAME.key 'edgecls keygen' wrote") from err
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise DataError(f"signing key {path} is not an Ed25519 key: make one with 'edgecls keygen'")
    return key


def load_public_keys(paths: Iterable[Path]) -> dict[str, Any]:
    """Trusted keys by :func:`key_id`; a file that is not an Ed25519 public key is refused."""
    ed25519 = _crypto()
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    keys: dict[str, Any] = {}
    for path in paths:
        data = _read_key_file(path, "trust file")
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            hint = " (that is a private key: trust the .pub beside it)" if b"PRIVATE KEY" in data else ""
            raise DataError(f"trust file {path} is not a PEM public key{hint}: give the NAME.pub 'edgecls keygen' wrote") from err
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise DataError(f"trust file {path} is not an Ed25519 public key: give the NAME.pub 'edgecls keygen' wrote")
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keys[key_id(raw)] = key
    return keys


def write_package(out: Path, model: Path, bundle_dir: Path, meta: dict[str, Any], key: Path | None) -> PackageInfo:
    """Assemble and (with ``key``) sign a package at ``out``, atomically."""
    from edgecls.spec import ModelSpec

    members: dict[str, Path] = {MODEL: Path(model)}
    for path in sorted(p for p in Path(bundle_dir).rglob("*") if p.is_file()):
        members[f"{BUNDLE}/{path.relative_to(bundle_dir).as_posix()}"] = path
    spec = ModelSpec.from_dict(meta["spec"], "package spec")
    manifest = {
        "format": PACKAGE_FORMAT, "format_version": PACKAGE_VERSION, **meta,
        "labels": list(spec.labels), "input": {"size": spec.input_size, "colour_order": spec.colour_order,
                                               "resize": spec.resize},
        "model": MODEL, "bundle": BUNDLE, "model_sha256": file_sha256(Path(model)),
        "members": {name: {"sha256": file_sha256(p), "size": p.stat().st_size} for name, p in members.items()},
    }
    signing = load_private_key(key) if key is not None else None
    if signing is not None:
        from cryptography.hazmat.primitives import serialization

        manifest["key_id"] = key_id(signing.public_key().public_bytes(serialization.Encoding.Raw,
                                                                      serialization.PublicFormat.Raw))
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
    except OSError as err:
        raise OutputError(f"cannot write {out}: {err.strerror}; choose a writable path") from err
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST, manifest_bytes)
            if signing is not None:
                zf.writestr(SIGNATURE, signing.sign(manifest_bytes))
            for name, path in members.items():
                zf.write(path, name)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {out}: {err.strerror}; free some space or choose another path") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return _info(manifest, out)


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return (bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name
            and not name.endswith("/") and all(part not in ("", ".") for part in path.parts))


def _is_regular(info: zipfile.ZipInfo) -> bool:
    # zip writers that record no file type (writestr: 0o600) are plain files; links and devices are not
    return not info.is_dir() and stat.S_IFMT(info.external_attr >> 16) in (0, stat.S_IFREG)


def _read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, where: Path) -> bytes:
    if info.file_size > cap:
        raise DataError(f"package {where}: {info.filename} is {info.file_size:,} bytes, over the {cap:,}-byte cap: not an edgecls package")
    with zf.open(info) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise DataError(f"package {where}: {info.filename} is over the {cap:,}-byte cap: not an edgecls package")
    return data


def _info(manifest: dict[str, Any], where: Path) -> PackageInfo:
    try:
        labels = tuple(str(x) for x in manifest["labels"])
        return PackageInfo(str(manifest["version"]), labels, int(manifest["input"]["size"]), str(manifest["created"]),
                           str(manifest.get("source_run", "")), str(manifest["model_sha256"]),
                           str(manifest.get("key_id", "")), manifest)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"package {where}: its manifest lacks {err}: not an edgecls package") from err


def open_package(path: Path, trusted: dict[str, Any], dest: Path) -> PackageInfo:
    """Verify ``path`` against ``trusted`` keys and unpack it into the empty folder ``dest``.

    Raises DataError naming the first thing wrong; ``dest`` may then hold partial files,
    which the caller removes (the store unpacks into a temp folder of its own).
    """
    _crypto()
    from cryptography.exceptions import InvalidSignature

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise DataError(f"cannot read package {path}: {err.strerror}") from err
    if size > MAX_PACKAGE_BYTES:
        raise DataError(f"package {path} is {size:,} bytes, over the {MAX_PACKAGE_BYTES:,}-byte cap: not an edgecls package")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            return _verify_and_unpack(zf, infos, path, trusted, Path(dest), InvalidSignature)
    except zipfile.BadZipFile as err:
        raise DataError(f"package {path} is not a readable zip ({err}): it is truncated or corrupt; copy it again") from err
    except (EOFError, zipfile.LargeZipFile, NotImplementedError) as err:
        raise DataError(f"package {path} cannot be read ({type(err).__name__}: {err}): it is truncated or corrupt; copy it again") from err


def _verify_and_unpack(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], path: Path, trusted: dict[str, Any],
                       dest: Path, invalid: type[Exception]) -> PackageInfo:
    if len(infos) > MAX_MEMBERS:
        raise DataError(f"package {path} has {len(infos)} members, over the cap of {MAX_MEMBERS}: not an edgecls package")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise DataError(f"package {path} lists a member twice: not written by edgecls; refused")
    bad = [i.filename for i in infos if not _safe_name(i.filename) or not _is_regular(i)]
    if bad:
        raise DataError(f"package {path} has a link, folder entry or unsafe path ({bad[0]!r}): refused")
    by_name = {i.filename: i for i in infos}
    if MANIFEST not in by_name:
        raise DataError(f"package {path} has no {MANIFEST}: not an edgecls package (make one with 'edgecls package')")
    manifest_bytes = _read_small(zf, by_name[MANIFEST], MAX_MANIFEST_BYTES, path)
    if SIGNATURE not in by_name:
        raise DataError(f"package {path} is unsigned: sign it on the host with 'edgecls package RUN --key NAME.key'")
    signature = _read_small(zf, by_name[SIGNATURE], SIGNATURE_BYTES, path)
    if not trusted:
        raise DataError(f"package {path}: no trusted keys given: pass --trust NAME.pub")
    if not any(_verifies(key, signature, manifest_bytes, invalid) for key in trusted.values()):
        raise DataError(f"package {path}: its signature matches none of the {len(trusted)} trusted key(s) "
                        f"({', '.join(trusted)}): signed by another key, or its manifest was changed")
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"package {path}: its signed manifest is not JSON ({err}): made by another tool") from err
    if not isinstance(manifest, dict) or manifest.get("format") != PACKAGE_FORMAT:
        raise DataError(f"package {path} is not an edgecls package (manifest format is not {PACKAGE_FORMAT!r})")
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > PACKAGE_VERSION:
        raise DataError(f"package {path} has format version {manifest.get('format_version')!r}; this edgecls reads "
                        f"up to {PACKAGE_VERSION}: upgrade edgecls on the device")
    info = _info(manifest, path)
    members = manifest.get("members")
    if not isinstance(members, dict) or MODEL not in members:
        raise DataError(f"package {path}: its manifest lists no {MODEL}: not an edgecls package")
    present = set(by_name) - {MANIFEST, SIGNATURE}
    unlisted, missing = sorted(present - set(members)), sorted(set(members) - present)
    if unlisted:
        raise DataError(f"package {path} holds {unlisted[0]!r}, which its signed manifest does not list: refused")
    if missing:
        raise DataError(f"package {path} lacks {missing[0]!r}, which its manifest lists: it is incomplete; copy it again")
    total = 0
    for name, entry in members.items():
        if not _safe_name(name) or not isinstance(entry, dict):
            raise DataError(f"package {path}: manifest entry {name!r} is unsafe or malformed: refused")
        want_size, want_sha = entry.get("size"), entry.get("sha256")
        if not isinstance(want_size, int) or not isinstance(want_sha, str) or by_name[name].file_size != want_size:
            raise DataError(f"package {path}: {name} is {by_name[name].file_size:,} bytes, its manifest says {want_size}: "
                            "it was changed after signing; refused")
        total += want_size
        if total > MAX_UNPACKED_BYTES:
            raise DataError(f"package {path} unpacks to over {MAX_UNPACKED_BYTES:,} bytes: refused")
    for name, entry in members.items():
        _unpack_member(zf, by_name[name], dest / name, entry["size"], entry["sha256"], path)
    (dest / MANIFEST).write_bytes(manifest_bytes)
    (dest / SIGNATURE).write_bytes(signature)
    if manifest.get("model_sha256") != members[MODEL]["sha256"]:
        raise DataError(f"package {path}: model_sha256 differs from the {MODEL} member's: refused")
    return info


def _verifies(key: Any, signature: bytes, data: bytes, invalid: type[Exception]) -> bool:
    try:
        key.verify(signature, data)
    except invalid:
        return False
    return True


def _unpack_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, size: int, sha: str, where: Path) -> None:
    """Stream one member out, never past its signed size, and compare its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    try:
        with zf.open(info) as src, open(target, "wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                written += len(block)
                if written > size:
                    raise DataError(f"package {where}: {info.filename} unpacks past its signed size: refused")
                digest.update(block)
                dst.write(block)
    except zipfile.BadZipFile as err:
        raise DataError(f"package {where}: {info.filename} is corrupt ({err}): changed or damaged in transit; copy it again") from err
    except OSError as err:
        if isinstance(err, DataError):
            raise
        raise OutputError(f"cannot unpack {info.filename} into {target.parent}: {err.strerror}; free space on the device") from err
    if written != size or digest.hexdigest() != sha:
        raise DataError(f"package {where}: {info.filename} sha256 {digest.hexdigest()[:16]}... differs from its signed "
                        f"{sha[:16]}...: changed after signing or damaged in transit; refused")


def verify_package(path: Path, trust: Iterable[Path]) -> PackageInfo:
    """``edgecls package verify``: everything the device checks before its field check."""
    keys = load_public_keys(trust)
    tmp = Path(tempfile.mkdtemp(prefix="edgecls-verify-"))
    try:
        return open_package(path, keys, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_unpacked(folder: Path) -> dict[str, Any]:
    """The manifest of a package the store unpacked (and verified) earlier."""
    return dict(json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8")))


def check_unpacked(folder: Path, trusted: dict[str, Any] | None) -> str | None:
    """Re-verify an unpacked package (a restart after kill -9 must run a complete model):
    the signature when keys are given, and every member's size and sha256. Returns the
    reason it fails, or None."""
    folder = Path(folder)
    try:
        manifest_bytes = (folder / MANIFEST).read_bytes()
        signature = (folder / SIGNATURE).read_bytes()
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"its manifest cannot be read ({err})"
    if trusted:
        from cryptography.exceptions import InvalidSignature

        if not any(_verifies(key, signature, manifest_bytes, InvalidSignature) for key in trusted.values()):
            return "its signature matches no trusted key"
    for name, entry in dict(manifest.get("members") or {}).items():
        member = folder / name
        if not _safe_name(name) or not member.is_file() or member.stat().st_size != entry.get("size"):
            return f"{name} is missing or has the wrong size"
        if file_sha256(member) != entry.get("sha256"):
            return f"{name} does not match its sha256"
    return None

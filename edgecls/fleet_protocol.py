"""The MQTT contract between a device (``edgecls run --mqtt``) and the host (``edgecls fleet``).

Both sides read topic names, payload versions and limits from here, so they cannot disagree,
and the README's topic table is written from this module. Nothing here imports paho-mqtt at
module level (``edgecls --help`` must not need it); :func:`paho` imports it on first use and
names the extra when it is missing.

    PREFIX/DEVICE/availability   "online" | "offline"        retained; "offline" is the last will
    PREFIX/DEVICE/claim          {instance, host, pid, ...}  retained; who runs this device id now
    PREFIX/DEVICE/state          {label, score, ts, model}   retained; on change and every N s
    PREFIX/DEVICE/events         {seq, label, score, ...}    QoS 1, spooled on disk, in seq order
    PREFIX/DEVICE/stats          {fps, frames, drops, ...}   retained; every few seconds
    PREFIX/DEVICE/snapshot       JPEG bytes                  the reply to cmd/snapshot
    PREFIX/DEVICE/cmd/NAME       {"id": ...} or empty        host -> device
    PREFIX/DEVICE/cmd/result     {id, command, ok, ...}      device -> host
    PREFIX/DEVICE/cmd/update     JSON header line + package  host -> device (framed: see frame_update)
    PREFIX/DEVICE/update         {event, model, reason, ...} every update history record, as it happens

Everything that arrives from the network is hostile: payloads are size-bounded before they
are parsed, must be JSON objects, and ids must be plain names (no MQTT wildcards or slashes).
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from edgecls.errors import DataError, MissingDependencyError

#: Bumped when a payload changes incompatibly; every JSON payload carries it as "v".
PROTOCOL_VERSION = 1
DEFAULT_PREFIX = "edgecls"
DEFAULT_DISCOVERY_PREFIX = "homeassistant"
#: A command payload is a small JSON object; anything longer is refused unparsed.
MAX_COMMAND_BYTES = 4096
#: State, stats, events, results (a field-check verdict table is a few KB).
MAX_JSON_BYTES = 256 * 1024
#: A snapshot JPEG.
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024
#: A package sent on cmd/update (a demo package is well under 1 MB; a MobileNet one ~10 MB).
MAX_UPDATE_BYTES = 64 * 1024 * 1024
#: Commands whose payload is a JSON header line, a newline, then raw bytes (frame_update).
FRAMED_COMMANDS = frozenset({"update"})
CREDENTIALS_ENV = "EDGECLS_MQTT_CREDENTIALS"
USERNAME_ENV = "EDGECLS_MQTT_USERNAME"
PASSWORD_ENV = "EDGECLS_MQTT_PASSWORD"

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}$")


class PayloadError(ValueError):
    """An incoming payload that is too large, not JSON, or not the expected shape."""


def check_id(value: str, what: str = "--device-id") -> str:
    if not _ID.match(value):
        raise DataError(f"{what} {value!r} must be 1-64 letters, digits, '-' or '_' (no '/', '+', '#', spaces)")
    return value


def check_prefix(value: str, what: str = "--mqtt-prefix") -> str:
    if not _PREFIX.match(value):
        raise DataError(f"{what} {value!r} must be 1-4 '/'-separated names of letters, digits, '-' or '_'")
    return value


def default_device_id() -> str:
    """The hostname, made a valid id (dots and other characters become '-')."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:64].strip("-")
    return name or "edgecls"


@dataclass(frozen=True)
class Topics:
    """Every topic of one device (or, with device '+', of all devices: for subscribing)."""

    prefix: str
    device: str

    def _t(self, name: str) -> str:
        return f"{self.prefix}/{self.device}/{name}"

    @property
    def availability(self) -> str:
        return self._t("availability")

    @property
    def claim(self) -> str:
        return self._t("claim")

    @property
    def state(self) -> str:
        return self._t("state")

    @property
    def events(self) -> str:
        return self._t("events")

    @property
    def stats(self) -> str:
        return self._t("stats")

    @property
    def snapshot(self) -> str:
        return self._t("snapshot")

    @property
    def result(self) -> str:
        return self._t("cmd/result")

    @property
    def update(self) -> str:
        return self._t("update")

    def cmd(self, name: str) -> str:
        return self._t(f"cmd/{name}")

    def split(self, topic: str) -> tuple[str, str] | None:
        """``PREFIX/DEVICE/REST`` -> (device, rest), or None for a foreign or malformed topic."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        device, _, rest = topic[len(head):].partition("/")
        if not rest or not _ID.match(device):
            return None
        return device, rest


def discovery_configs(prefix: str, device: str, discovery: str, version: str) -> dict[str, dict[str, Any]]:
    """Home Assistant MQTT discovery: topic -> retained config, for the label, score and fps
    sensors of one device, grouped under one HA device and wired to its availability topic."""
    topics = Topics(prefix, device)
    ha_device = {"identifiers": [f"edgecls_{device}"], "name": f"edgecls {device}",
                 "manufacturer": "edgecls", "model": "edgecls image classifier", "sw_version": version}
    sensors = {
        "label": (topics.state, "{{ value_json.label }}", {"icon": "mdi:tag"}),
        "score": (topics.state, "{{ value_json.score }}", {"state_class": "measurement"}),
        "fps": (topics.stats, "{{ value_json.fps }}", {"state_class": "measurement", "unit_of_measurement": "fps"}),
    }
    out: dict[str, dict[str, Any]] = {}
    for key, (state_topic, template, extra) in sensors.items():
        out[f"{discovery}/sensor/{device}/edgecls_{key}/config"] = {
            "name": key.capitalize() if key != "fps" else "FPS",
            "unique_id": f"edgecls_{device}_{key}",
            "state_topic": state_topic,
            "value_template": template,
            "availability_topic": topics.availability,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": ha_device,
            **extra,
        }
    return out


# -- payloads


#: One compact encoder for every message (``json.dumps`` with ``separators`` builds a new one a call).
_encode = json.JSONEncoder(separators=(",", ":")).encode


def dumps(obj: dict[str, Any]) -> bytes:
    return _encode({"v": PROTOCOL_VERSION, **obj}).encode()


def loads(payload: bytes, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """A JSON object from the network, or PayloadError naming what is wrong (never a crash)."""
    if len(payload) > limit:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds the limit of {limit}")
    try:
        obj = json.loads(payload.decode("utf-8")) if payload.strip() else {}
    except (UnicodeDecodeError, ValueError) as err:
        raise PayloadError(f"payload is not UTF-8 JSON ({type(err).__name__})") from None
    if not isinstance(obj, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(obj).__name__}")
    return obj


def frame_update(rid: str, data: bytes, name: str | None = None) -> bytes:
    """cmd/update's payload: ``{"v", "id", "bytes", "sha256", "name"}`` on one line, then the package.
    Raw bytes, not base64: a third smaller, and nothing to decode on the device."""
    import hashlib

    header = dumps({"id": rid, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                    **({"name": name[:128]} if name else {})})
    return header + b"\n" + data


def unframe_update(payload: bytes, limit: int = MAX_UPDATE_BYTES) -> tuple[dict[str, Any], bytes]:
    """The header and the package of a cmd/update payload, checked: size, length, sha256."""
    import hashlib

    if len(payload) > limit + MAX_COMMAND_BYTES:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds the limit of {limit} for a package")
    head, sep, data = payload[:MAX_COMMAND_BYTES + 1].partition(b"\n")
    if not sep:
        raise PayloadError("cmd/update payload must be a JSON header line, a newline, then the package (edgecls fleet deploy sends it)")
    header = loads(head, MAX_COMMAND_BYTES)
    data = payload[len(head) + 1:]
    size, digest = header.get("bytes"), header.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size != len(data):
        raise PayloadError(f"the header says {size!r} bytes, {len(data)} arrived: the package is truncated")
    if not isinstance(digest, str) or hashlib.sha256(data).hexdigest() != digest:
        raise PayloadError("the package's sha256 differs from its header's: it was damaged in transit")
    return header, data


def check_event(obj: dict[str, Any]) -> dict[str, Any]:
    """An event must carry a non-negative integer seq and a string label."""
    seq, label = obj.get("seq"), obj.get("label")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise PayloadError(f"event without a valid seq: {seq!r}")
    if not isinstance(label, str):
        raise PayloadError("event without a label")
    return obj


def request_id(obj: dict[str, Any]) -> str | None:
    """A command's "id" (echoed in the reply): a short plain string, or absent."""
    rid = obj.get("id")
    if rid is None:
        return None
    if not isinstance(rid, str) or not _ID.match(rid):
        raise PayloadError("'id' must be 1-64 letters, digits, '-' or '_'")
    return rid


@dataclass
class SeqTracker:
    """The seq numbers one host has seen from one device: gaps (lost) and repeats (duplicates).
    Only the span this host watched counts: events before its first one are not gaps."""

    seen: set[int] = field(default_factory=set)
    duplicates: int = 0

    def add(self, seq: int) -> bool:
        """Record ``seq``; False when it was already seen (QoS 1 delivers at least once)."""
        if seq in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(seq)
        return True

    @property
    def gaps(self) -> int:
        if not self.seen:
            return 0
        return max(self.seen) - min(self.seen) + 1 - len(self.seen)

    def missing(self) -> list[int]:
        if not self.seen:
            return []
        lo, hi = min(self.seen), max(self.seen)
        return [s for s in range(lo, hi + 1) if s not in self.seen]


# -- broker address, credentials, TLS


@dataclass(frozen=True)
class Broker:
    """Where and how to connect. The password never appears in ``repr`` or any message."""

    url: str
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @property
    def where(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def read_credentials(path: Path | None) -> tuple[str | None, str | None]:
    """``user:password`` on the first line of a file (``--mqtt-credentials`` or
    $EDGECLS_MQTT_CREDENTIALS), else $EDGECLS_MQTT_USERNAME / $EDGECLS_MQTT_PASSWORD.
    Never a command-line value: those show in ``ps`` and shell history."""
    if path is None and os.environ.get(CREDENTIALS_ENV):
        path = Path(os.environ[CREDENTIALS_ENV])
    if path is not None:
        try:
            line = Path(path).read_text(encoding="utf-8").splitlines()[0].strip() if Path(path).stat().st_size < 4096 else ""
        except (OSError, UnicodeDecodeError, IndexError) as err:
            why = getattr(err, "strerror", None) or "empty or not text"
            raise DataError(f"cannot read MQTT credentials {path}: {why}; write 'user:password' on its first line") from None
        user, sep, password = line.partition(":")
        if not sep or not user:
            raise DataError(f"MQTT credentials {path} must hold 'user:password' on its first line")
        return user, password
    return os.environ.get(USERNAME_ENV) or None, os.environ.get(PASSWORD_ENV)


def parse_broker(url: str, *, credentials: Path | None = None, ca: Path | None = None,
                 cert: Path | None = None, key: Path | None = None) -> Broker:
    """Check the URL and the TLS files now, before any capture: one line and exit 2 if wrong."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise DataError(f"--mqtt {url!r} is not a broker URL: use mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
    if parts.password:
        raise DataError(f"--mqtt {parts.scheme}://{parts.hostname}: put credentials in --mqtt-credentials FILE "
                        f"or ${USERNAME_ENV}/${PASSWORD_ENV}, never in the URL")
    try:
        port = parts.port
    except ValueError:
        raise DataError(f"--mqtt {url!r}: the port must be a number from 1 to 65535") from None
    tls = scheme in ("mqtts", "ssl") or ca is not None or cert is not None
    for flag, path in (("--mqtt-ca", ca), ("--mqtt-cert", cert), ("--mqtt-key", key)):
        if path is not None and not Path(path).is_file():
            raise DataError(f"{flag} {path} is not a readable file; give the PEM file's path")
    if (cert is None) != (key is None):
        raise DataError("--mqtt-cert and --mqtt-key go together: give both (client certificate and its key)")
    if tls:
        _check_tls(ca, cert, key)
    user, password = read_credentials(credentials)
    if parts.username:
        user = unquote(parts.username)
    return Broker(url, parts.hostname, port or (8883 if tls else 1883), tls, user, password, ca, cert, key)


def _check_tls(ca: Path | None, cert: Path | None, key: Path | None) -> None:
    """Load the PEM files once, so a wrong one fails at start with its name, not at connect."""
    import ssl

    try:
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if cert is not None:
            context.load_cert_chain(str(cert), str(key) if key else None)
    except (OSError, ValueError) as err:
        which = f"--mqtt-ca {ca}" if cert is None else f"--mqtt-ca {ca} / --mqtt-cert {cert} / --mqtt-key {key}"
        raise DataError(f"TLS files unusable ({which}): {getattr(err, 'reason', None) or err}; give PEM files") from None


def paho() -> Any:
    """The paho.mqtt.client module, or the extra to install."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError as err:
        raise MissingDependencyError("paho-mqtt", "fleet", "MQTT (--mqtt, edgecls fleet)") from err
    return mqtt


def make_client(broker: Broker, client_id: str, *, clean_session: bool = True) -> Any:
    """A paho 2.x client (MQTT 3.1.1, callback API 2) with credentials and TLS set, not connected."""
    mqtt = paho()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                         protocol=mqtt.MQTTv311)
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        try:
            client.tls_set(ca_certs=str(broker.ca) if broker.ca else None,
                           certfile=str(broker.cert) if broker.cert else None,
                           keyfile=str(broker.key) if broker.key else None)
        except (OSError, ValueError) as err:
            raise DataError(f"TLS files for {broker.where} are unusable ({err}); check --mqtt-ca/--mqtt-cert/--mqtt-key") from None
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def refusal(broker: Broker, reason: object) -> str:
    """One line for a refused connection: the broker and the user, never the password."""
    who = f"user {broker.username!r}" if broker.username else "no user (anonymous)"
    return f"MQTT broker {broker.where} refused {who}: {reason}"

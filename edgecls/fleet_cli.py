"""``edgecls fleet status|watch|check``: the host's side of ``edgecls run --mqtt``.

No TensorFlow, no device runtime: paho-mqtt only (``pip install "edgecls[fleet]"``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from edgecls.cli import app, err_console, fail, handle_errors, out_console

fleet_app = typer.Typer(name="fleet", help="Watch and command devices that run 'edgecls run --mqtt'.",
                        no_args_is_help=True)
app.add_typer(fleet_app)

Url = Annotated[str, typer.Option("--mqtt", envvar="EDGECLS_MQTT", show_envvar=True, metavar="URL",
                                  help="The broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT].")]
Prefix = Annotated[str, typer.Option(help="First level of every MQTT topic.")]
Creds = Annotated[Path | None, typer.Option(envvar="EDGECLS_MQTT_CREDENTIALS", show_envvar=True,
                                            help="File with 'user:password' (or $EDGECLS_MQTT_USERNAME/$EDGECLS_MQTT_PASSWORD).")]
Ca = Annotated[Path | None, typer.Option(help="CA certificate (PEM) to verify the broker; implies TLS.")]
Cert = Annotated[Path | None, typer.Option(help="Client certificate (PEM), with --mqtt-key.")]
Key = Annotated[Path | None, typer.Option(help="Client key (PEM).")]


def _monitor(url: str, prefix: str, creds: Path | None, ca: Path | None, cert: Path | None, key: Path | None,
             **kwargs: Any) -> Any:
    from edgecls.fleet_host import FleetMonitor
    from edgecls.fleet_protocol import check_prefix, parse_broker

    broker = parse_broker(url, credentials=creds, ca=ca, cert=cert, key=key)
    return FleetMonitor(broker, check_prefix(prefix), **kwargs).start()


def _cell(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


@fleet_app.command("status")
@handle_errors
def status(mqtt: Url, mqtt_prefix: Prefix = "edgecls", mqtt_credentials: Creds = None, mqtt_ca: Ca = None,
           mqtt_cert: Cert = None, mqtt_key: Key = None,
           json_out: Annotated[bool, typer.Option("--json", help="Print the devices as JSON instead of a table.")] = False,
           wait: Annotated[float, typer.Option(help="At most this many seconds to collect the devices' retained messages.")] = 2.0,
           ) -> None:
    """Every device seen: online, model, fps, last label, last event age, field check, seq gaps."""
    monitor = _monitor(mqtt, mqtt_prefix, mqtt_credentials, mqtt_ca, mqtt_cert, mqtt_key, events=False)
    try:
        monitor.settle(max_s=wait)
        rows = monitor.rows()
    finally:
        monitor.close()
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} device(s) under {mqtt_prefix}/ on {monitor.broker.where}")
    for col in ("device", "status", "model", "fps", "label", "last event", "field check", "seq", "gaps/dropped", "spooled"):
        table.add_column(col, justify="right" if col in ("fps", "seq", "spooled") else "left")
    for r in rows:
        sha = (r["model_sha256"] or "")[:8]
        table.add_row(r["device"], "online" if r["online"] else Text("offline", style="red"),
                      f"{r['model'] or '-'} {sha}".strip(), _cell(r["fps"], "{:.1f}"), _cell(r["label"]),
                      _cell(r["last_event_age_s"], "{:.0f} s ago"), _cell(r["field_check"]), _cell(r["seq"]),
                      f"{r['seq_gaps']}/{_cell(r['spool_dropped'])}", _cell(r["spool_pending"]))
    out_console.print(table, width=max(out_console.width, 120))
    if not rows:
        err_console.print(f"no device has published under {mqtt_prefix}/ on this broker", highlight=False)


@fleet_app.command("watch")
@handle_errors
def watch(mqtt: Url, mqtt_prefix: Prefix = "edgecls", mqtt_credentials: Creds = None, mqtt_ca: Ca = None,
          mqtt_cert: Cert = None, mqtt_key: Key = None,
          json_out: Annotated[bool, typer.Option("--json", help="One JSON object per event (with 'device').")] = False,
          session: Annotated[str | None, typer.Option(
              help="Persistent session name: the broker keeps events for it while this command is not running.")] = None,
          duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
          count: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
          ) -> None:
    """Stream events (label changes) from every device as they arrive; warn about seq gaps."""
    from edgecls.fleet_protocol import check_id

    if session is not None:
        check_id(session, "--session")
    seen = [0]
    gaps: dict[str, int] = {}

    def on_event(device: str, event: dict[str, Any], received: float) -> None:
        seen[0] += 1
        if json_out:
            sys.stdout.write(json.dumps({"device": device, **event, "received": round(received, 6)}) + "\n")
        else:
            emitted = event.get("emitted")
            lag = f" ({1e3 * (received - emitted):.0f} ms)" if isinstance(emitted, (int, float)) else ""
            sys.stdout.write(f"{time.strftime('%H:%M:%S', time.localtime(received))} {device} seq {event['seq']} "
                             f"{event['label']} {event.get('score', '')}{lag}\n")
        sys.stdout.flush()

    monitor = _monitor(mqtt, mqtt_prefix, mqtt_credentials, mqtt_ca, mqtt_cert, mqtt_key, session=session,
                       on_event=on_event)
    start = time.monotonic()
    try:
        while (duration is None or time.monotonic() - start < duration) and (count is None or seen[0] < count):
            time.sleep(0.1)
            for view in list(monitor.devices.values()):
                if view.seqs.gaps > gaps.get(view.device, 0):
                    gaps[view.device] = view.seqs.gaps
                    err_console.print(f"warning: {view.device}: {view.seqs.gaps} event(s) missing so far "
                                      f"(seq {view.seqs.missing()[:5]}...)", highlight=False)
    finally:
        monitor.close()


@fleet_app.command("check")
@handle_errors
def check(devices: Annotated[list[str] | None, typer.Argument(help="Device ids (default: every online device).")] = None,
          mqtt: Url = "", mqtt_prefix: Prefix = "edgecls", mqtt_credentials: Creds = None, mqtt_ca: Ca = None,
          mqtt_cert: Cert = None, mqtt_key: Key = None,
          timeout: Annotated[float, typer.Option(help="Seconds to wait for every verdict.")] = 120.0,
          json_out: Annotated[Path | None, typer.Option("--json", help="Also write every reply as JSON here.")] = None,
          ) -> None:
    """Run the field check on devices; exit 1 if any fails, 2 if any does not answer in time."""
    from edgecls.fleet_protocol import check_id

    if not mqtt:
        fail("--mqtt URL (or $EDGECLS_MQTT) is required: the broker the devices publish to")
    for device in devices or []:
        check_id(device, "device id")
    monitor = _monitor(mqtt, mqtt_prefix, mqtt_credentials, mqtt_ca, mqtt_cert, mqtt_key, events=False)
    try:
        monitor.settle()
        targets = list(devices or [r["device"] for r in monitor.rows() if r["online"]])
        if not targets:
            fail(f"no online device under {mqtt_prefix}/ on {monitor.broker.where}; name devices or start them")
        sent = {d: monitor.send(d, "field-check") for d in targets}
        deadline = time.monotonic() + timeout
        replies: dict[str, dict[str, Any] | None] = {}
        while time.monotonic() < deadline and len(replies) < len(sent):
            for d, rid in sent.items():
                if d not in replies and (reply := monitor.result(d, rid)) is not None:
                    replies[d] = reply
            time.sleep(0.1)
    finally:
        monitor.close()
    table = Table(title=f"field check on {len(targets)} device(s)")
    for col in ("device", "verdict", "model", "detail"):
        table.add_column(col, overflow="fold")
    failed = silent = 0
    for d in targets:
        reply = replies.get(d)
        if reply is None:
            silent += 1
            table.add_row(d, Text("no answer", style="yellow"), "-", f"nothing within {timeout:.0f} s")
        elif not reply.get("ok"):
            failed += 1
            table.add_row(d, Text("ERROR", style="red"), "-", str(reply.get("error"))[:300])
        else:
            result = reply.get("result") or {}
            passed = bool(result.get("passed"))
            failed += not passed
            table.add_row(d, "pass" if passed else Text("FAIL", style="red"), Path(str(result.get("model", "-"))).name,
                          "; ".join(map(str, result.get("failures") or [])) or f"{result.get('count')} reference images")
    out_console.print(table, width=max(out_console.width, 120))
    if json_out is not None:
        from edgecls.fsutil import atomic_write_json

        atomic_write_json(json_out, {d: replies.get(d) for d in targets})
    if silent:
        err_console.print(f"error: {silent} device(s) did not answer within {timeout:.0f} s", highlight=False)
        raise typer.Exit(2)
    if failed:
        err_console.print(f"error: the field check failed on {failed} device(s)", highlight=False)
        raise typer.Exit(1)


@fleet_app.command("deploy")
@handle_errors
def deploy_cmd(package: Annotated[Path, typer.Argument(metavar="NAME.edgecls", help="The signed package from 'edgecls package'.")],
               mqtt: Url = "", mqtt_prefix: Prefix = "edgecls", mqtt_credentials: Creds = None, mqtt_ca: Ca = None,
               mqtt_cert: Cert = None, mqtt_key: Key = None,
               devices: Annotated[str | None, typer.Option(help="Comma-separated device ids, in rollout order (default: every online device).")] = None,
               canary: Annotated[int, typer.Option(help="Devices updated first; the rest only if all of them pass probation.")] = 1,
               timeout: Annotated[float, typer.Option(help="Seconds each stage may take: verdict and the end of probation.")] = 300.0,
               trust: Annotated[list[Path] | None, typer.Option(help="Verify the package against this public key here first.")] = None,
               json_out: Annotated[Path | None, typer.Option("--json", help="Also write every device's outcome as JSON here.")] = None,
               ) -> None:
    """Roll a package out: canaries first, the rest only if they pass. Exit 1 if any device
    refuses it or fails probation (the rollout stops), 2 if any does not answer in time."""
    from edgecls.fleet_deploy import CONFIRMED, DeployMonitor, deploy, exit_code, read_package
    from edgecls.fleet_protocol import check_id, check_prefix, parse_broker

    if not mqtt:
        fail("--mqtt URL (or $EDGECLS_MQTT) is required: the broker the devices publish to")
    if canary < 0 or timeout <= 0:
        fail(f"--canary must be 0 or more and --timeout more than 0, got {canary} and {timeout}")
    named = [check_id(d.strip(), "device id") for d in devices.split(",") if d.strip()] if devices else []
    data = read_package(package, trust)
    broker = parse_broker(mqtt, credentials=mqtt_credentials, ca=mqtt_ca, cert=mqtt_cert, key=mqtt_key)
    monitor = DeployMonitor(broker, check_prefix(mqtt_prefix))
    monitor.start()
    try:
        monitor.settle()
        targets = named or [r["device"] for r in monitor.rows() if r["online"]]
        if not targets:
            fail(f"no online device under {mqtt_prefix}/ on {broker.where}; name devices with --devices or start them")
        err_console.print(f"deploying {package.name} ({len(data):,} bytes) to {len(targets)} device(s), "
                          f"{min(canary, len(targets))} canary first", highlight=False)
        outcomes = deploy(monitor, targets, data, canary=canary, timeout=timeout, name=package.name,
                          on_done=lambda o: err_console.print(f"{o.device}: {o.outcome} ({o.reason})", highlight=False))
    finally:
        monitor.close()
    table = Table(title=f"deploy {package.name} to {len(targets)} device(s)")
    for col in ("device", "stage", "outcome", "reason", "model before", "model after", "time"):
        table.add_column(col, overflow="fold")
    for o in outcomes:
        table.add_row(o.device, o.stage, o.outcome, o.reason, _cell(o.before), _cell(o.after), _cell(o.seconds, "{:.1f} s"))
    out_console.print(table, width=max(out_console.width, 160))
    if json_out is not None:
        from edgecls.fsutil import atomic_write_json

        atomic_write_json(json_out, {"package": package.name, "devices": [o.to_dict() for o in outcomes]})
    code = exit_code(outcomes)
    if code:
        bad = [o for o in outcomes if o.outcome != CONFIRMED]
        err_console.print(f"error: {len(bad)} of {len(outcomes)} device(s) not updated "
                          f"({', '.join(f'{o.device}: {o.outcome}' for o in bad)})", highlight=False)
        raise typer.Exit(code)

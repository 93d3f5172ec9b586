"""What the gunicorn master does once for the whole service (gunicorn.conf.py's hooks): the start-up lines, the
check that the port is free, the metrics' directory."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
from typing import Any

from ..copying.sources import Sources
from ..domain.settings import Settings, startup_warnings
from ..observability import logs

BUSY_PORT = (
    "Port {port} déjà utilisé ({address}): un autre serveur tourne-t-il ? "
    "Choisissez-en un autre, par exemple PORT={other} make run"
)
INTERRUPTED = "Démarrage interrompu (Ctrl-C) pendant la mise à jour de la base de données"
# gunicorn's own warning, logged by every worker as it boots with --reload (loggers.py keeps the master's only)
RELOADER = "Reloader is on. Use in development only!"
_metrics: list[str] = []  # the directories metrics_directory() made, removed by remove_metrics_directory()


def announce(settings: Settings, *, reloading: bool = False, log: Any = None) -> None:
    """Log the configuration's warnings and the ℹ️ Prêt line, once for the service (not once per worker);
    `reloading`: gunicorn's --reload, whose warning `log` (gunicorn's logger) repeats here, once too."""
    service = logs.configure(settings.log_level, settings.log_format)
    for warning in startup_warnings(settings):
        service.warning("⚠️ [Image Webhook] %s", warning, extra={"event": "configuration"})
    if reloading and log is not None:
        log.warning(RELOADER)
    service.info(
        "ℹ️ [Image Webhook] Prêt: APP_ENV=%s, WEBHOOK_AUTH=%s, fenêtre d'idempotence %ss, base de données %s",
        settings.app_env,
        authentication(settings),
        settings.idempotence_window,
        settings.dialect or "aucune",
        extra={"event": "ready"},
    )
    if settings.database_url:
        service.info(
            "ℹ️ [Image Webhook] Copie des images: %s; stockage %s; %d copieur(s) par worker",
            Sources.from_settings(settings).describe(),
            settings.image_store.split("?")[0],
            settings.image_copy_concurrency,
            extra={"event": "ready"},
        )
    logs.flush()  # now, among gunicorn's lines, before the workers fork


def authentication(settings: Settings) -> str:
    """WEBHOOK_AUTH as intake/auth.py applies it: production requires the mode's credential; development
    checks one a request presents, and accepts a request that presents none."""
    mode = settings.webhook_auth
    configured = {
        "secret": settings.webhook_secret,
        "signature": settings.webhook_signing_secret,
        "any": settings.webhook_secret + settings.webhook_signing_secret,
    }[mode]
    if settings.production:
        return mode
    if not configured:
        return "aucune (développement: aucun secret configuré, toute requête acceptée)"
    return f"{mode} (développement: vérifié s'il est présent, une requête sans secret est acceptée)"


def busy_port(addresses: list[Any], reuse_port: bool = False) -> str | None:
    """The message for the first TCP address another process listens on, or None: gunicorn would retry it for
    5 s with 10 ERROR lines. It binds as gunicorn does (SO_REUSEADDR, and SO_REUSEPORT when configured)."""
    for address in addresses:
        if not isinstance(address, tuple):  # a unix socket, or a file descriptor
            continue
        host, port = address[0], address[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port and hasattr(socket, "SO_REUSEPORT"):
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    continue  # another problem: gunicorn says it its own way
                shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
                return BUSY_PORT.format(port=port, address=shown, other=port + 1 if port < 65535 else 3001)
    return None


def inherits_sockets() -> bool:
    """Whether this master gets its listening sockets from another process (USR2's new master, systemd), which
    holds them: its port is busy by design."""
    return "GUNICORN_FD" in os.environ or "LISTEN_FDS" in os.environ


def metrics_directory() -> str:
    """A new directory for prometheus-client's files of several processes, removed when the master exits."""
    path = tempfile.mkdtemp(prefix="image-webhook-metrics-")
    _metrics.append(path)
    return path


def remove_metrics_directory() -> None:
    """Remove the directories metrics_directory() made (gunicorn's on_exit, or a start that fails)."""
    while _metrics:
        shutil.rmtree(_metrics.pop(), ignore_errors=True)

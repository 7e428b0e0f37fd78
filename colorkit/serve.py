"""A web page and an HTTP API over one colorizer: ``colorkit serve``.

Built on Starlette (ASGI) and run with Uvicorn: both are installed with fastai already (through
fastprogress and python-fasthtml), as is python-multipart, which streams uploads to disk. The page
(``colorkit/web/``) is plain HTML, CSS and JavaScript served from memory: no CDN, no build step, it
works without any network.

- :func:`create_app` ``(colorizer, ...)`` -> an ASGI app: the page at ``/`` and the API under ``/api``
  (``POST /api/colorize`` photo in, image bytes out; ``/api/jobs`` for queued jobs with progress and
  cancel; ``GET /api/health``). See ``docs/serve.md``.
- :func:`serve` loads a model and runs that app with Uvicorn, on 127.0.0.1 unless told otherwise.

One model runs one photo at a time: every request becomes a job in a :class:`colorkit.jobs.JobQueue`,
whose single worker thread reads, colorizes (:mod:`colorkit.infer`) and keeps the result in memory
until it is downloaded. Uploads stream into a private temporary folder (mode 0700) and are deleted as soon as
they are decoded; encoded results are written there too and deleted once sent. No endpoint takes a
path from the client. Every error is JSON ``{"error": message, "status": code}`` with a 4xx code for
what the client can fix (size, pixels, not an image, truncated, bad option) and never stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import threading
import time
import unicodedata
import urllib.parse
import zipfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from . import __version__
from .io import MAX_PIXELS, save_image
from .jobs import Job, JobQueue
from .jobs import JobError as ApiError

__all__ = [
    "DEFAULT_HOST", "DEFAULT_PORT", "FORMATS", "ApiError", "ServerThread", "bind_warning", "create_app", "serve",
]

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
FORMATS: dict[str, tuple[str, str]] = {"png": (".png", "image/png"), "jpeg": (".jpg", "image/jpeg")}
"""Output formats the API writes: name -> (extension, media type). ``jpg`` is accepted for ``jpeg``."""

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_FORM_OVERHEAD = 64 * 1024  # multipart boundaries, part headers and the small fields around the file
_MAX_FIELD_BYTES = 256
_PREVIEW_SIDE = 1600  # the page shows results at most this many pixels on the longer side
_WEB_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
     b"connect-src 'self'; frame-ancestors 'none'; form-action 'none'"),
]


# ----------------------------------------------------------------------------------------------
# uploads


def _display_name(raw: bytes | None) -> str:
    """A safe display name from a multipart ``filename``: base name, no control characters, <= 120 chars."""
    name = (raw or b"").decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip(" .")
    return name[:120] or "photo"


class _Form:
    """Streams one multipart/form-data body: the ``file`` part into ``folder``, small fields into memory."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder, self.max_bytes = folder, max_bytes
        self.fields: dict[str, str] = {}
        self.path: Path | None = None
        self.name, self.file_bytes = "photo", 0
        self._headers: dict[bytes, bytes] = {}
        self._hname, self._hvalue = b"", b""
        self._part: str | None = None  # "file", a field name, or None (ignored part)
        self._buf = bytearray()
        self._fh: Any = None

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {"on_part_begin": self._begin, "on_header_field": self._hfield, "on_header_value": self._hval,
                "on_header_end": self._hend, "on_headers_finished": self._headers_done,
                "on_part_data": self._data, "on_part_end": self._end}

    def _begin(self) -> None:
        self._headers, self._part, self._buf = {}, None, bytearray()

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def _hval(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def _hend(self) -> None:
        self._headers[self._hname.strip().lower()] = self._hvalue.strip()
        self._hname, self._hvalue = b"", b""

    def _headers_done(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, opts = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        is_file = b"filename" in opts
        if name == "file" and not is_file:
            raise ApiError(400, "the form field 'file' must be a file upload (curl: -F file=@photo.jpg)")
        if is_file and name != "file":
            raise ApiError(400, f"unexpected file field {name!r}: send the photo in the form field 'file'")
        if is_file:
            if self.path is not None:
                raise ApiError(400, "one photo per request: send several requests, or use the page")
            self.name = _display_name(opts.get(b"filename"))
            self.path = self.folder / f"upload-{secrets.token_hex(8)}"
            self._fh = open(self.path, "xb")  # noqa: SIM115 (closed in _end / discard)
            self._part = "file"
        elif name:
            if len(self.fields) >= 16:
                raise ApiError(400, "too many form fields")
            self._part = name

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file":
            self.file_bytes += end - start
            if self.file_bytes > self.max_bytes:
                raise ApiError(413, f"upload {self.name!r} is larger than this server's limit of "
                                    f"{self.max_bytes / 2**20:g} MB (colorkit serve --max-upload-mb)")
            self._fh.write(data[start:end])
        elif self._part is not None:
            self._buf += data[start:end]
            if len(self._buf) > _MAX_FIELD_BYTES:
                raise ApiError(400, f"form field {self._part!r} is too long")

    def _end(self) -> None:
        if self._part == "file":
            self._fh.close()
            self._fh = None
        elif self._part is not None:
            self.fields[self._part] = self._buf.decode("utf-8", "replace").strip()
        self._part = None

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self.path = None


async def _read_form(request: Any, folder: Path, max_bytes: int) -> _Form:
    """Parse the request body as multipart/form-data with a ``file`` part, within ``max_bytes``."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header
    from starlette.requests import ClientDisconnect

    ctype = request.headers.get("content-type", "")
    mime, opts = parse_options_header(ctype)
    if mime != b"multipart/form-data":
        raise ApiError(415, f"send the photo as multipart/form-data in the field 'file' (curl -F file=@photo.jpg); "
                            f"got Content-Type {ctype or 'none'!r}")
    if not opts.get(b"boundary"):
        raise ApiError(400, "multipart/form-data without a boundary")
    limit = max_bytes + _FORM_OVERHEAD
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise ApiError(413, f"upload of {int(length) / 2**20:.1f} MB is larger than this server's limit of "
                            f"{max_bytes / 2**20:g} MB (colorkit serve --max-upload-mb)")
    form = _Form(folder, max_bytes)
    parser = MultipartParser(opts[b"boundary"], form.callbacks())
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise ApiError(413, f"upload is larger than this server's limit of {max_bytes / 2**20:g} MB "
                                    "(colorkit serve --max-upload-mb)")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as e:
        form.discard()
        raise ApiError(400, f"malformed multipart/form-data body ({e})") from None
    except ClientDisconnect:
        form.discard()
        raise ApiError(400, "the upload was interrupted (the client disconnected)") from None
    except BaseException:
        form.discard()
        raise
    if form.path is None:
        raise ApiError(400, "no photo: send it in the form field 'file' (curl -F file=@photo.jpg)")
    if form._fh is not None or form.file_bytes == 0:
        form.discard()
        raise ApiError(400, f"{form.name}: the upload is incomplete or empty (0 bytes)")
    return form


def _probe(path: Path, name: str, max_pixels: int) -> tuple[int, int]:
    """Check the image header only (no pixels decoded): format known, size within ``max_pixels``."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ApiError(413, f"{name}: too many pixels, refused as a decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise ApiError(415, f"{name}: not an image, or a format Pillow cannot read (send JPEG, PNG, TIFF, "
                            "WebP or BMP)") from None
    except Exception as e:
        what = "truncated or corrupt" if "truncated" in str(e).lower() else "corrupt"
        raise ApiError(422, f"{name}: {what} image header ({type(e).__name__}: {e})") from None
    if w * h > max_pixels:
        raise ApiError(413, f"{name}: too many pixels ({w}x{h} = {w * h:,} > {max_pixels:,}, this server's "
                            "limit)")
    return w, h


def _options(fields: dict[str, str], query: Any, default_size: int, max_size: int) -> tuple[int, float, str]:
    """(render_size, strength, format) from form fields, else query parameters, else defaults."""
    def pick(key: str) -> str | None:
        v = fields.get(key) or query.get(key)
        return v.strip() if v else None

    rs, st, fmt = pick("render_size"), pick("strength"), (pick("format") or "png").lower()
    try:
        render_size = int(rs) if rs else default_size
    except ValueError:
        raise ApiError(400, f"render_size must be a whole number of pixels, got {rs!r}") from None
    if not 32 <= render_size <= max_size:
        raise ApiError(400, f"render_size must be between 32 and {max_size}, got {render_size}")
    try:
        strength = float(st) if st else 1.0
    except ValueError:
        raise ApiError(400, f"strength must be a number from 0 to 2, got {st!r}") from None
    if not 0.0 <= strength <= 2.0:  # also refuses nan
        raise ApiError(400, f"strength must be from 0 (gray) to 2 (twice the colour), got {st}")
    return render_size, strength, _format(fmt)


def _format(fmt: str) -> str:
    fmt = "jpeg" if fmt == "jpg" else fmt
    if fmt not in FORMATS:
        raise ApiError(400, f"format must be png or jpeg, got {fmt!r}")
    return fmt


# ----------------------------------------------------------------------------------------------
# results


def _download_name(job: Job, fmt: str) -> str:
    return f"{Path(job.name).stem or 'photo'}_colorized{FORMATS[fmt][0]}"


def _disposition(filename: str, kind: str = "attachment") -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{urllib.parse.quote(filename)}"


def _encode(job: Job, fmt: str, folder: Path, preview: bool = False) -> Path:
    """Write ``job``'s result (full size, or at most ``_PREVIEW_SIDE`` px for the page) into ``folder``."""
    img = job.result
    if img is None:
        status = 409 if job.state in ("queued", "running") else job.status if job.state == "failed" else 410
        raise ApiError(status, _not_ready(job))
    if preview and max(img.size) > _PREVIEW_SIDE:
        img = img.copy()
        img.thumbnail((_PREVIEW_SIDE, _PREVIEW_SIDE), Image.Resampling.LANCZOS)
    path = folder / f"result-{secrets.token_hex(8)}{FORMATS[fmt][0]}"
    return save_image(img, path, meta=None if preview else job.meta, quality=85 if preview else 95)


def _not_ready(job: Job) -> str:
    if job.state in ("queued", "running"):
        return f"{job.name}: not finished yet ({job.state}); poll GET /api/jobs/{job.id}"
    return job.error or f"{job.name}: {job.state}"


def _zip(jobs: list[Job], fmt: str, folder: Path) -> Path:
    """A zip of the jobs' full-size results (stored, not recompressed), unique names inside."""
    path = folder / f"results-{secrets.token_hex(8)}.zip"
    used: set[str] = set()
    try:
        with zipfile.ZipFile(path, "x", zipfile.ZIP_STORED) as zf:
            for job in jobs:
                name, stem, n = _download_name(job, fmt), Path(_download_name(job, fmt)).stem, 1
                while name.lower() in used:
                    n += 1
                    name = f"{stem}-{n}{FORMATS[fmt][0]}"
                used.add(name.lower())
                one = _encode(job, fmt, folder)
                try:
                    zf.write(one, name)
                finally:
                    one.unlink(missing_ok=True)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


# ----------------------------------------------------------------------------------------------
# the app


def _model_name(colorizer: Any) -> str:
    path = getattr(colorizer, "path", None)
    return Path(path).name if path else "in-memory model"


def create_app(colorizer: Any, *, max_upload_mb: float = 50, max_pixels: int = MAX_PIXELS,
               max_render_size: int = 1024, max_waiting: int = 64, keep_seconds: float = 3600.0,
               keep_megapixels: float = 400.0, allowed_hosts: list[str] | None = None,
               name: str | None = None) -> Any:
    """The page and the HTTP API over ``colorizer`` (a :class:`colorkit.learner.Colorizer`), as an ASGI app.

    ``max_upload_mb`` bounds each upload, ``max_pixels`` each decoded photo, ``max_render_size`` the
    ``render_size`` a client may ask for. ``max_waiting`` photos may wait behind the running one;
    results are kept ``keep_seconds`` (and ``keep_megapixels`` in all) for the page to fetch.
    ``allowed_hosts`` (e.g. ``["127.0.0.1", "localhost"]``) refuses other ``Host`` headers (DNS rebinding).
    """
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

    if max_upload_mb <= 0:
        raise ValueError(f"max_upload_mb must be positive, got {max_upload_mb}")
    max_bytes = int(max_upload_mb * 2**20)
    default_size = int(getattr(colorizer, "render_size", 256))
    max_render_size = max(int(max_render_size), default_size)
    queue = JobQueue(colorizer, max_pixels=max_pixels, max_waiting=max_waiting, keep_seconds=keep_seconds,
                     keep_megapixels=keep_megapixels)
    tmp = tempfile.TemporaryDirectory(prefix="colorkit-serve-")  # mode 0700, removed at shutdown / exit
    folder = Path(tmp.name)
    web = resources.files("colorkit") / "web"
    pages = {f: (web / f).read_bytes() for f in _WEB_FILES}  # read once: no endpoint opens a client path
    model_info = {"model": name or _model_name(colorizer), "render_size": default_size,
                  "arch": (getattr(colorizer, "config", None) or {}).get("generator", {}).get("arch"),
                  "version": __version__, "max_upload_mb": max_upload_mb, "max_pixels": max_pixels,
                  "max_render_size": max_render_size, "formats": sorted(FORMATS)}

    def error(status: int, message: str) -> JSONResponse:
        headers = {"Retry-After": "30"} if status == 503 else None
        return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)

    def send_file(path: Path, fmt: str | None, filename: str, inline: bool = False) -> FileResponse:
        media = FORMATS[fmt][1] if fmt else "application/zip"
        headers = {"Content-Disposition": _disposition(filename, "inline" if inline else "attachment"),
                   "Cache-Control": "no-store"}
        return FileResponse(path, media_type=media, headers=headers,
                            background=BackgroundTask(path.unlink, missing_ok=True))

    async def submit(request: Any) -> tuple[Job, str]:
        form = await _read_form(request, folder, max_bytes)
        try:
            rs, strength, fmt = _options(form.fields, request.query_params, default_size, max_render_size)
            await asyncio.to_thread(_probe, form.path, form.name, max_pixels)
            return queue.submit(Job(form.name, form.path, rs, strength)), fmt
        except BaseException:
            form.discard()
            raise

    async def colorize(request: Any) -> Response:
        job, fmt = await submit(request)
        try:
            await queue.wait(job, still_wanted=lambda: _connected(request))
            if job.state != "done":
                return error(job.status, job.error or job.state)
            path = await asyncio.to_thread(_encode, job, fmt, folder)
        finally:
            queue.cancel(job)
            queue.forget(job)
        resp = send_file(path, fmt, _download_name(job, fmt))
        resp.headers.update({"X-Colorkit-Seconds": f"{job.info()['seconds']:.3f}",
                             "X-Colorkit-Render-Size": str(job.render_size)})
        return resp

    async def new_job(request: Any) -> Response:
        job, _ = await submit(request)
        return JSONResponse(job.info(queue.position(job)), status_code=202)

    async def job_info(request: Any) -> Response:
        job = queue.get(request.path_params["job_id"])
        return JSONResponse(job.info(queue.position(job)))

    async def cancel_job(request: Any) -> Response:
        job = queue.cancel(queue.get(request.path_params["job_id"]))
        return JSONResponse(job.info(queue.position(job)))

    async def job_result(request: Any) -> Response:
        job = queue.get(request.path_params["job_id"])
        preview = request.url.path.endswith("/preview")
        fmt = "jpeg" if preview else _format((request.query_params.get("format") or "png").lower())
        path = await asyncio.to_thread(_encode, job, fmt, folder, preview)
        return send_file(path, fmt, _download_name(job, fmt), inline=preview)

    async def zip_results(request: Any) -> Response:
        ids = [i for i in (request.query_params.get("ids") or "").split(",") if i]
        if not ids or len(ids) > 1000:
            raise ApiError(400, "name the jobs to zip: /api/zip?ids=ID1,ID2&format=png")
        jobs = [queue.get(i) for i in dict.fromkeys(ids)]
        fmt = _format((request.query_params.get("format") or "png").lower())
        path = await asyncio.to_thread(_zip, jobs, fmt, folder)
        return send_file(path, None, "colorized.zip")

    async def health(request: Any) -> Response:
        return JSONResponse({"status": "ok", **model_info, "queue": queue.counts()})

    async def page(request: Any) -> Response:
        fname = request.path_params.get("name", "index.html")
        if fname not in pages:
            raise ApiError(404, f"no page {fname!r}")
        return Response(pages[fname], media_type=_WEB_FILES[fname], headers={"Cache-Control": "no-cache"})

    async def on_api_error(request: Any, exc: ApiError) -> Response:
        return error(exc.status, exc.message)

    async def on_http_error(request: Any, exc: HTTPException) -> Response:
        msg = {404: f"nothing at {request.url.path}; the API is under /api (see docs/serve.md)",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return error(exc.status_code, msg)

    async def on_crash(request: Any, exc: Exception) -> Response:
        return error(500, f"internal error ({type(exc).__name__}: {exc}); the server is still running")

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):  # noqa: ANN202
        yield
        await asyncio.to_thread(queue.close)
        tmp.cleanup()

    routes = [
        Route("/", page), Route("/static/{name}", page),
        Route("/api/health", health), Route("/api/colorize", colorize, methods=["POST"]),
        Route("/api/jobs", new_job, methods=["POST"]),
        Route("/api/jobs/{job_id}", job_info, methods=["GET"]),
        Route("/api/jobs/{job_id}", cancel_job, methods=["DELETE"]),
        Route("/api/jobs/{job_id}/result", job_result), Route("/api/jobs/{job_id}/preview", job_result),
        Route("/api/zip", zip_results),
    ]
    middleware = [Middleware(_SecurityHeaders)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={ApiError: on_api_error, HTTPException: on_http_error, Exception: on_crash})
    app.state.queue, app.state.folder, app.state.tmp = queue, folder, tmp
    return app


async def _connected(request: Any) -> bool:
    return not await request.is_disconnected()


class _SecurityHeaders:
    """ASGI middleware: a strict Content-Security-Policy (the page loads nothing from elsewhere) and friends."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ----------------------------------------------------------------------------------------------
# running it


def bind_warning(host: str) -> str | None:
    """A warning to print when ``host`` is not a loopback address (the server has no login)."""
    if host in _LOOPBACK or host.startswith("127."):
        return None
    return (f"listening on {host}: anyone who can reach this machine can use this server and its CPU/GPU "
            "(there is no login). Use --host 127.0.0.1 to keep it to this computer.")


def _bind(host: str, port: int) -> tuple[Any, str]:
    """A listening socket on ``host:port`` (0: a free port) and its URL."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    return sock, f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}/"


class ServerThread:
    """Run an ASGI app with Uvicorn on a background thread: ``with ServerThread(app) as url: ...``.

    For notebooks and tests, where :func:`serve` would block. ``port=0`` picks a free port.
    """

    def __init__(self, app: Any, host: str = DEFAULT_HOST, port: int = 0, log_level: str = "warning") -> None:
        self.app, self.host, self.port, self.log_level = app, host, port, log_level
        self.url: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> str:
        import uvicorn

        sock, self.url = _bind(self.host, self.port)
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level=self.log_level))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="colorkit-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.02)
        return self.url

    def stop(self, timeout: float = 30.0) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def serve(model: Any = None, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, max_upload_mb: float = 50,
          device: str | None = None, precision: str = "auto", log_level: str = "info",
          ready: Callable[[str], None] | None = None, **app_kwargs: Any) -> None:
    """Serve the page and API for ``model`` until stopped (Ctrl+C, SIGTERM).

    ``model``: a model folder, a loaded :class:`~colorkit.learner.Colorizer`, or None for the starter
    model (``device`` and ``precision`` apply to folders). Binds ``host`` (127.0.0.1 unless told otherwise; warns on
    stderr when wider) and ``port`` (0 picks a free one); ``ready(url)`` is called once listening
    (default: print the URL). Raises OSError when the address cannot be bound (e.g. the port is taken).
    """
    import sys

    import uvicorn

    if model is None or isinstance(model, (str, Path)):
        from .learner import load_colorizer

        model = load_colorizer(model, device=device, precision=precision)
    warning = bind_warning(host)
    hosts = None if warning else sorted(_LOOPBACK | {host})
    sock, url = _bind(host, port)
    if warning:
        print(f"colorkit serve: warning: {warning}", file=sys.stderr, flush=True)
    app = create_app(model, max_upload_mb=max_upload_mb, allowed_hosts=hosts, **app_kwargs)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=log_level == "debug",
                                           timeout_graceful_shutdown=10))
    (ready or (lambda u: print(f"colorkit serve: {_model_name(model)} on {u} (Ctrl+C to stop)", flush=True)))(url)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl+C is how a server is stopped: uvicorn has shut down cleanly by now
        pass
    finally:
        sock.close()
        app.state.tmp.cleanup()

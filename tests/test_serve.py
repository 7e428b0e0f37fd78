"""colorkit.serve: the HTTP API and page, through a real Uvicorn server on a free local port."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from colorkit.color import rgb_to_luminance
from colorkit.learner import Colorizer, save_colorizer
from colorkit.models import create_generator
from colorkit.serve import ServerThread, bind_warning, create_app
from tests.conftest import make_photo
from tests.test_jobs import Gated


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return create_generator("resnet18", pretrained=False, img_size=64).eval()


def _clr(model) -> Colorizer:
    return Colorizer(model, {"render_size": 64, "generator": {"arch": "resnet18"}})


@pytest.fixture(scope="module")
def server(net):
    """(base URL, app) of a server over a tiny model, shared by the tests that leave it idle."""
    app = create_app(_clr(net), max_upload_mb=2)
    with ServerThread(app) as url:
        yield url.rstrip("/"), app


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _L(img: Image.Image) -> torch.Tensor:
    t = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).float().div(255)
    return rgb_to_luminance(t)


def _wait_empty(folder: Path, timeout: float = 5) -> list[str]:
    """Files left in the private folder once background deletions have run."""
    end = time.monotonic() + timeout
    while os.listdir(folder) and time.monotonic() < end:
        time.sleep(0.02)
    return os.listdir(folder)


def _bomb_png(w: int, h: int) -> bytes:
    """A PNG header claiming ``w`` x ``h`` pixels with no pixel data: a decompression bomb's first bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit gray
    pixels = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


# ----------------------------------------------------------------------------------------------
# the happy paths


def test_health_names_model_render_size_and_version(server):
    url, _ = server
    r = httpx.get(f"{url}/api/health")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "ok"
    assert body["model"] == "in-memory model" and body["render_size"] == 64 and body["arch"] == "resnet18"
    from colorkit import __version__

    assert body["version"] == __version__ and body["max_upload_mb"] == 2


@pytest.mark.parametrize("fmt,media", [("png", "image/png"), ("jpeg", "image/jpeg"), ("jpg", "image/jpeg")])
def test_colorize_returns_the_photo_at_full_size(server, fmt, media):
    url, app = server
    src = make_photo(45, 70, seed=3).convert("L")
    r = httpx.post(f"{url}/api/colorize", files={"file": ("old photo.png", _png(src), "image/png")},
                   data={"format": fmt, "render_size": "96", "strength": "1.5"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == media and r.headers["x-colorkit-render-size"] == "96"
    assert "old photo_colorized" in r.headers["content-disposition"]
    out = Image.open(io.BytesIO(r.content))
    assert out.size == (70, 45) and out.format == ("PNG" if fmt == "png" else "JPEG")
    if fmt == "png":  # the lightness is the photo's own
        assert (_L(out) - _L(src)).abs().mean() < 0.5
    assert _wait_empty(app.state.folder) == []


def test_strength_zero_gives_gray_and_query_parameters_work(server):
    url, _ = server
    r = httpx.post(f"{url}/api/colorize?strength=0", files={"file": ("a.jpg", _png(make_photo(), "JPEG"))})
    arr = np.asarray(Image.open(io.BytesIO(r.content))).astype(int)
    assert r.status_code == 200 and np.abs(arr - arr.mean(-1, keepdims=True)).max() <= 1


def test_jobs_progress_preview_result_zip_and_delete(server):
    url, app = server
    ids = []
    for i, size in enumerate([(30, 40), (2000, 50)]):
        r = httpx.post(f"{url}/api/jobs", files={"file": ("same.png", _png(make_photo(size[1], size[0], seed=i)))})
        assert r.status_code == 202 and r.json()["state"] in ("queued", "running", "done")
        ids.append(r.json()["id"])
    for jid in ids:
        for _ in range(300):
            info = httpx.get(f"{url}/api/jobs/{jid}").json()
            if info["state"] == "done":
                break
            time.sleep(0.05)
        assert info["state"] == "done" and info["progress"] == 1.0 and info["seconds"] >= 0
    prev = httpx.get(f"{url}/api/jobs/{ids[1]}/preview")
    assert prev.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(prev.content)).size == (1600, 40)
    full = httpx.get(f"{url}/api/jobs/{ids[1]}/result", params={"format": "png"})
    assert Image.open(io.BytesIO(full.content)).size == (2000, 50)
    z = httpx.get(f"{url}/api/zip", params={"ids": ",".join(ids), "format": "jpeg"})
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        assert zf.namelist() == ["same_colorized.jpg", "same_colorized-2.jpg"]
        assert Image.open(zf.open("same_colorized-2.jpg")).size == (2000, 50)
    deleted = httpx.delete(f"{url}/api/jobs/{ids[0]}")
    assert deleted.status_code == 200 and deleted.json()["state"] == "expired"
    gone = httpx.get(f"{url}/api/jobs/{ids[0]}/result")
    assert gone.status_code == 410 and "colorize the photo again" in gone.json()["error"]
    assert _wait_empty(app.state.folder) == []


def test_twenty_concurrent_requests_all_answered(server):
    url, app = server
    photos = [make_photo(20 + i, 30 + 2 * i, seed=i).convert("L") for i in range(20)]

    def post(i: int) -> tuple[int, Image.Image | str]:
        r = httpx.post(f"{url}/api/colorize", files={"file": (f"p{i}.png", _png(photos[i]))}, timeout=120)
        return r.status_code, Image.open(io.BytesIO(r.content)) if r.status_code == 200 else r.text

    with ThreadPoolExecutor(20) as ex:
        results = list(ex.map(post, range(20)))
    for i, (status, out) in enumerate(results):
        assert status == 200, out
        assert out.size == photos[i].size  # each answer is for its own photo
        assert (_L(out) - _L(photos[i])).abs().mean() < 0.5
    health = httpx.get(f"{url}/api/health").json()
    assert health["status"] == "ok" and health["queue"] == {"waiting": 0, "running": 0}
    assert _wait_empty(app.state.folder) == []
    assert httpx.post(f"{url}/api/colorize", files={"file": ("x.png", _png(make_photo()))}).status_code == 200


# ----------------------------------------------------------------------------------------------
# errors: JSON, a message to act on, the right status, and the server goes on


def _truncated_jpeg() -> bytes:
    data = _png(make_photo(64, 64), "JPEG")
    return data[: len(data) // 2]


def _truncated_png() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # does not compress
    data = _png(Image.fromarray(noise))
    return data[: len(data) // 2]


ERROR_CASES = {
    "not an image": (dict(files={"file": ("notes.txt", b"hello, not a photo", "text/plain")}), 415, "not an image"),
    "truncated jpeg": (dict(files={"file": ("cut.jpg", _truncated_jpeg(), "image/jpeg")}), 422, "truncated"),
    "truncated png": (dict(files={"file": ("cut.png", _truncated_png())}), 422, "truncated"),
    "decompression bomb": (dict(files={"file": ("bomb.png", _bomb_png(40000, 40000))}), 413, "decompression bomb"),
    "json body": (dict(content=b'{"file": 1}', headers={"content-type": "application/json"}), 415, "multipart"),
    "raw bytes": (dict(content=b"\xff\xd8\xff", headers={"content-type": "image/jpeg"}), 415, "multipart"),
    "no file field": (dict(files={"photo": ("a.png", b"x")}), 400, "field 'file'"),
    "file as text": (dict(data={"file": "a.png"}, files={"other": ("x", b"")}), 400, "must be a file upload"),
    "empty file": (dict(files={"file": ("a.png", b"")}), 400, "empty"),
    "two files": (dict(files=[("file", ("a.png", b"1")), ("file", ("b.png", b"2"))]), 400, "one photo per request"),
    "no boundary": (dict(content=b"--x--", headers={"content-type": "multipart/form-data"}), 400, "boundary"),
    "broken multipart": (dict(content=b"garbage", headers={"content-type": "multipart/form-data; boundary=zz"}),
                         400, ""),
    "render size text": (dict(files={"file": ("a.png", b"1")}, data={"render_size": "big"}), 400, "whole number"),
    "render size huge": (dict(files={"file": ("a.png", b"1")}, data={"render_size": "5000"}), 400, "between 32"),
    "strength too high": (dict(files={"file": ("a.png", b"1")}, data={"strength": "3"}), 400, "from 0"),
    "strength nan": (dict(files={"file": ("a.png", b"1")}, data={"strength": "nan"}), 400, "from 0"),
    "format gif": (dict(files={"file": ("a.png", b"1")}, data={"format": "gif"}), 400, "png or jpeg"),
    "upload too big": (dict(files={"file": ("big.png", b"\0" * (2 * 2**20 + 10))}), 413, "--max-upload-mb"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_bad_requests_get_a_clear_4xx(server, case):
    url, app = server
    kwargs, status, words = ERROR_CASES[case]
    r = httpx.post(f"{url}/api/colorize", **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["status"] == status and words in body["error"]
    assert str(app.state.folder) not in body["error"]  # never shows where uploads are kept
    assert _wait_empty(app.state.folder) == []
    assert httpx.get(f"{url}/api/health").json()["status"] == "ok"


def test_other_endpoint_errors(server):
    url, _ = server
    assert httpx.get(f"{url}/api/jobs/nope").status_code == 404
    assert httpx.delete(f"{url}/api/jobs/nope").json()["status"] == 404
    assert httpx.get(f"{url}/api/zip").status_code == 400
    assert httpx.get(f"{url}/api/zip", params={"ids": "a,b"}).status_code == 404
    r = httpx.get(f"{url}/api/colorize")
    assert r.status_code == 405 and "GET is not allowed" in r.json()["error"]
    r = httpx.get(f"{url}/elsewhere")
    assert r.status_code == 404 and r.json()["error"].startswith("nothing at /elsewhere")


def test_too_many_pixels_for_this_server(net):
    app = create_app(_clr(net), max_pixels=1000)
    with ServerThread(app) as url:
        r = httpx.post(f"{url}api/colorize", files={"file": ("big.png", _png(make_photo(40, 40)))})
        assert r.status_code == 413 and "too many pixels (40x40 = 1,600 > 1,000" in r.json()["error"]


def test_a_streamed_upload_over_the_limit_is_cut_off(server):
    url, app = server
    boundary = "b0undary"

    def body():  # chunked: no Content-Length for the server to check first
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'.encode()
        for _ in range(40):
            yield b"\0" * 65536  # 2.5 MB in all, over the 2 MB limit
        yield f"\r\n--{boundary}--\r\n".encode()

    r = httpx.post(f"{url}/api/colorize", content=body(),
                   headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and "larger than this server's limit of 2 MB" in r.json()["error"]
    assert _wait_empty(app.state.folder) == []


def test_a_huge_content_length_is_refused_before_the_body(server):
    url, _ = server
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /api/colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                  b"Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 5000000000\r\n\r\n")
        head = s.recv(65536).decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head
    assert "max-upload-mb" in head


def test_an_interrupted_upload_leaves_nothing_behind(server):
    url, app = server
    host, port = url.removeprefix("http://").split(":")
    part = b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n' + b"\0" * 5000
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /api/colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n"
                  b"Content-Type: multipart/form-data; boundary=zz\r\n\r\n" + part)
        end = time.monotonic() + 5
        while not os.listdir(app.state.folder) and time.monotonic() < end:
            time.sleep(0.01)
        assert os.listdir(app.state.folder), "the server never started writing the upload"
    assert _wait_empty(app.state.folder) == []  # the client hung up: the partial upload is gone
    assert httpx.get(f"{url}/api/health").json()["queue"] == {"waiting": 0, "running": 0}


def test_cancel_and_queue_full_over_http(net):
    gated = Gated(net)
    app = create_app(_clr(gated), max_waiting=1)
    with ServerThread(app) as url:
        files = {"file": ("a.png", _png(make_photo()))}
        a = httpx.post(f"{url}api/jobs", files=files).json()
        assert gated.entered.wait(30)
        b = httpx.post(f"{url}api/jobs", files=files).json()
        assert httpx.get(f"{url}api/jobs/{a['id']}").json()["stage"] == "running the network"
        assert httpx.get(f"{url}api/jobs/{b['id']}").json()["position"] == 1
        assert httpx.get(f"{url}api/jobs/{b['id']}/result").status_code == 409
        full = httpx.post(f"{url}api/jobs", files=files)
        assert full.status_code == 503 and full.headers["retry-after"] and "try again" in full.json()["error"]
        assert httpx.delete(f"{url}api/jobs/{b['id']}").json()["state"] == "cancelled"
        gated.gate.set()
        for _ in range(200):
            if httpx.get(f"{url}api/jobs/{a['id']}").json()["state"] == "done":
                break
            time.sleep(0.05)
        assert httpx.get(f"{url}api/jobs/{a['id']}/result").status_code == 200
        assert _wait_empty(app.state.folder) == []


def test_a_broken_model_is_a_500_json_and_the_server_goes_on(net):
    class Boom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise RuntimeError("the network fell over")

    with ServerThread(create_app(_clr(Boom()))) as url:
        r = httpx.post(f"{url}api/colorize", files={"file": ("a.png", _png(make_photo()))})
        assert r.status_code == 500 and "the network fell over" in r.json()["error"]
        assert httpx.get(f"{url}api/health").status_code == 200


# ----------------------------------------------------------------------------------------------
# safe by default


def test_uploads_stay_in_a_private_folder(server, tmp_path):
    url, app = server
    folder = app.state.folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    before = set(os.listdir(folder.parent))
    r = httpx.post(f"{url}/api/colorize", files={"file": ("../../evil.png", _png(make_photo()))})
    assert r.status_code == 200 and 'filename="evil_colorized.png"' in r.headers["content-disposition"]
    assert set(os.listdir(folder.parent)) - before == set() and _wait_empty(folder) == []


@pytest.mark.parametrize("path", ["/static/../serve.py", "/static/%2e%2e%2fserve.py", "/static/__init__.py",
                                  "/static/..%2F..%2Fsetup.cfg", "/static//etc/passwd"])
def test_no_endpoint_reads_other_files(server, path):
    url, _ = server
    r = httpx.get(url + path)
    assert r.status_code == 404 and b"import" not in r.content and b"root:" not in r.content


def test_page_is_self_contained(server):
    url, _ = server
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for asset in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert not re.match(r"(https?:)?//", asset), asset
        if asset.startswith("static/"):
            body = httpx.get(f"{url}/{asset}")
            assert body.status_code == 200
            assert not re.search(r"https?://|//cdn", body.text), f"{asset} loads something from elsewhere"


def test_allowed_hosts_refuse_other_host_headers(net):
    app = create_app(_clr(net), allowed_hosts=["127.0.0.1", "localhost"])
    with ServerThread(app) as url:
        assert httpx.get(f"{url}api/health").status_code == 200
        assert httpx.get(f"{url}api/health", headers={"host": "evil.example"}).status_code == 400


def test_bind_warning_only_when_wider_than_this_computer():
    assert bind_warning("127.0.0.1") is None and bind_warning("localhost") is None and bind_warning("::1") is None
    for host in ("0.0.0.0", "::", "192.168.1.20"):
        assert "anyone who can reach this machine" in bind_warning(host)


def test_create_app_refuses_a_nonpositive_upload_limit(net):
    with pytest.raises(ValueError, match="max_upload_mb"):
        create_app(_clr(net), max_upload_mb=0)


def test_serve_warns_when_bound_wider(net, monkeypatch, capsys):
    import uvicorn

    import colorkit.serve as serve_mod

    seen = {}
    real_bind = serve_mod._bind
    monkeypatch.setattr(serve_mod, "_bind", lambda host, port: real_bind("127.0.0.1", 0))  # never really wide
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: seen.setdefault("app", self.config.app))
    serve_mod.serve(_clr(net), host="0.0.0.0", port=8000, ready=lambda url: seen.setdefault("url", url))
    assert "warning: listening on 0.0.0.0: anyone who can reach this machine" in capsys.readouterr().err
    assert seen["url"].startswith("http://127.0.0.1:") and not seen["app"].state.folder.exists()
    serve_mod.serve(_clr(net), host="127.0.0.1", port=0, ready=lambda url: None)
    assert "warning" not in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_model(net, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny"
    save_colorizer(net, path, render_size=64)
    return path


def test_cli_serve_is_registered_with_help(capsys):
    from colorkit.cli import main

    assert main(["serve", "--help"]) == 0
    text = capsys.readouterr().out
    assert "Example" in text and "colorkit serve --model my_model/" in text and "127.0.0.1" in text
    assert main(["--help"]) == 0 and "serve" in capsys.readouterr().out


def test_cli_serve_refuses_bad_options_and_a_taken_port(tiny_model, capsys):
    from colorkit.cli import main

    assert main(["serve", "--max-upload-mb", "0"]) == 2
    assert main(["serve", "--port", "-1"]) == 2
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(tiny_model), "--port", str(port), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--max-upload-mb must be positive" in err and f"cannot listen on 127.0.0.1:{port}" in err


@pytest.mark.slow
def test_cli_serve_runs_until_interrupted(tiny_model):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "colorkit", "serve", "--model", str(tiny_model), "--port", "0", "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.search(r"tiny on (http://127\.0\.0\.1:\d+/)", line)
        assert m, line + proc.stderr.read()
        health = httpx.get(m.group(1) + "api/health").json()
        assert health["model"] == "tiny" and health["render_size"] == 64
        r = httpx.post(m.group(1) + "api/colorize", files={"file": ("a.png", _png(make_photo()))})
        assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (32, 24)
        r = httpx.get(m.group(1) + "api/health", headers={"host": "evil.example"})
        assert r.status_code == 400  # bound to 127.0.0.1: other Host headers are refused
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "warning" not in err.lower()

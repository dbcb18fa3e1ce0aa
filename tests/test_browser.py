"""End to end in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright)
against JupyterLab and Voilà started on loopback. A slider is dragged with the mouse, and the test
checks that the picture changes and that no error appears; screenshots go to the test's folder.

Skipped, with the reason, only where Chromium is not installed; `bash .ci/run` installs it and sets
JOINTLAB_REQUIRE_BROWSER=1, which turns a missing browser into a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("JOINTLAB_CHROMIUM", "/usr/bin/chromium")
# without the networking flags Chromium keeps calling Google's hosts, which this closed network refuses
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SLIDER_NOTEBOOK = "01_pixel_attacks.ipynb"  # the cheapest slider notebook (a natural model, PGD)


def _missing(reason: str):
    if os.environ.get("JOINTLAB_REQUIRE_BROWSER"):
        pytest.fail(f"{reason} (JOINTLAB_REQUIRE_BROWSER is set, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM}: install the Debian packages chromium and chromium-driver "
                 "(bash .ci/run does, as root), or point JOINTLAB_CHROMIUM at a Chromium binary")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed: pip install -e '.[dev]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)  # a fresh temporary profile
        yield b
        b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(cmd: list[str], cwd: Path, env: dict, port: int, timeout: float = 120):
    """Start a server in its own process group, wait until it listens on `port`, and stop the
    whole group (server and kernels) on the way out, whatever happened in between."""
    log = cwd / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{cmd[2]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{cmd[2]} did not listen on port {port} in {timeout} s:\n"
                                f"{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue


def server_env(runs: Path, home: Path) -> dict:
    """Outputs go to `runs`; Jupyter's config, data and runtime folders are temporary, so the
    user's settings and extensions play no part."""
    env = dict(os.environ, JOINTLAB_RUNS=str(runs), JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
               PYTHONUNBUFFERED="1")
    env.pop("MPLBACKEND", None)
    return env


def drag_slider(page, slider, dx: float) -> None:
    """Press the slider's handle, move the mouse by dx pixels in small steps, release."""
    handle = slider.locator(".noUi-handle")
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=10)
    page.mouse.up()


def wait_for_new_src(image, old: str, timeout: float = 60_000) -> str:
    image.page.wait_for_function("([el, old]) => el.getAttribute('src') !== old",
                                 arg=[image.element_handle(), old], timeout=timeout)
    return image.get_attribute("src")


def visible_errors(page) -> list[str]:
    """Error texts shown on the page: tracebacks in outputs and the panels' error lines."""
    return page.evaluate("""() => [
        ...Array.from(document.querySelectorAll('.jl-error')).map(e => e.innerText),
        ...Array.from(document.querySelectorAll('.jp-OutputArea-output'))
            .map(e => e.innerText).filter(t => t.includes('Traceback') || /\\w+Error: /.test(t)),
    ]""")


# --------------------------------------------------------------------------- JupyterLab


NOTEBOOK_STATE = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content || !panel.content.model) return null;
    const cells = panel.content.model.cells, kernel = panel.sessionContext.session?.kernel;
    const out = {executed: 0, code: 0, errors: [], kernel: kernel ? kernel.status : 'none'};
    for (let i = 0; i < cells.length; i++) {
        const c = cells.get(i);
        if (c.type !== 'code') continue;
        out.code += 1;
        if (c.executionCount) out.executed += 1;
        for (const o of c.outputs.toJSON())
            if (o.output_type === 'error') out.errors.push(o.ename + ': ' + o.evalue);
    }
    return out;
}"""


def lab_settings(folder: Path) -> None:
    """Render every cell (no virtual scrolling) and fetch no news: a closed network, a stable page."""
    settings = {
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "checkForUpdates": False, "fetchNews": "false"},
    }
    for name, value in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def test_slider_notebook_in_jupyterlab(browser, quick_runs, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOKS / SLIDER_NOTEBOOK, root)  # a copy: JupyterLab saves outputs into the file
    lab_settings(tmp_path / "settings")
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
           f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:  # CI runs as root
        cmd.append("--allow-root")
    with serve(cmd, tmp_path, server_env(quick_runs, tmp_path), port) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"http://127.0.0.1:{port}/lab/tree/{SLIDER_NOTEBOOK}?token={token}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext", timeout=90_000)
            page.evaluate("async () => { await window.jupyterapp.shell.currentWidget.sessionContext.ready; }")
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            # done when every code cell has run and the kernel is idle, or as soon as one cell fails
            page.wait_for_function(f"""() => {{ const s = ({NOTEBOOK_STATE})();
                return s && (s.errors.length > 0 || (s.executed === s.code && s.kernel === 'idle')); }}""",
                                   timeout=300_000)
            state = page.evaluate(NOTEBOOK_STATE)
            assert not state["errors"], state["errors"]
            assert state["executed"] == state["code"] > 0

            slider = page.locator(".jp-OutputArea .widget-slider").last
            picture = page.locator(".jp-OutputArea .widget-image").last
            slider.scroll_into_view_if_needed()
            readout_before = slider.locator(".widget-readout").inner_text()
            src_before = picture.get_attribute("src")
            picture.screenshot(path=tmp_path / "jupyterlab-before.png")
            drag_slider(page, slider, 60)
            src_after = wait_for_new_src(picture, src_before)
            readout_after = slider.locator(".widget-readout").inner_text()
            assert float(readout_after) > float(readout_before)
            page.wait_for_timeout(300)  # let the image decode before the screenshot
            picture.screenshot(path=tmp_path / "jupyterlab-after.png")
            shots = [(tmp_path / f"jupyterlab-{t}.png").read_bytes() for t in ("before", "after")]
            assert shots[0] != shots[1]  # the picture on the screen changed, not only its address
            assert src_after != src_before
            assert not visible_errors(page)
            assert not page.evaluate(NOTEBOOK_STATE)["errors"]
            slider.scroll_into_view_if_needed()  # JupyterLab scrolls inside: show the slider and picture
            page.screenshot(path=tmp_path / "jupyterlab.png")
        finally:
            page.close()
    assert server.poll() is not None, "the server was not shut down"
    print(f"screenshots: {tmp_path}")


# --------------------------------------------------------------------------- Voilà


def test_attack_explorer_in_voila(browser, quick_runs, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOKS / "explorer.ipynb", root)
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "voila", "explorer.ipynb", "--no-browser", "--Voila.ip=127.0.0.1",
           f"--port={port}", "--Voila.port_retries=0", f"--token={token}"]
    upload = tmp_path / "my-shirt.png"
    from PIL import Image

    Image.new("L", (40, 40), 30).save(upload)
    with serve(cmd, root, server_env(quick_runs, tmp_path), port) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        try:
            page.goto(f"http://127.0.0.1:{port}/?token={token}")
            page.wait_for_selector(".widget-slider", timeout=180_000)  # Voilà shows the app once it ran
            panels = page.locator(".widget-image")
            page.wait_for_function("() => document.querySelectorAll('.widget-image').length === 5")
            attacked, clean = panels.nth(1), panels.nth(0)
            src = {"attacked": attacked.get_attribute("src"), "clean": clean.get_attribute("src")}
            status = page.locator(".widget-html", has_text="measured").first
            assert "ε_x = 8)" in status.inner_text()

            eps_x = page.locator(".widget-slider", has_text="ε_x")
            drag_slider(page, eps_x, 50)
            wait_for_new_src(attacked, src["attacked"])
            value = float(eps_x.locator(".widget-readout").inner_text())
            assert value > 8
            page.wait_for_function("([el, v]) => el.innerText.includes(`ε_x = ${v})`)",
                                   arg=[status.element_handle(), f"{value:g}"], timeout=60_000)
            assert clean.get_attribute("src") == src["clean"]  # the clean panel did not change

            # "save figure" under the attacked panel writes a PNG on the server
            page.locator(".widget-button", has_text="save figure").nth(1).click()
            saved = page.locator(".widget-html", has_text="saved").first
            saved.wait_for(timeout=30_000)
            path = Path(saved.locator("code").get_attribute("title"))
            assert path.parent == quick_runs / "explorer" and path.name.endswith("_attacked.png")
            with Image.open(path) as img:
                assert img.format == "PNG"

            page.screenshot(path=tmp_path / "voila-joint.png", full_page=True)

            # another attack kind from the drop-down, then an uploaded image
            page.locator("select").nth(1).select_option(label="pixel (PGD)")
            page.wait_for_function("([el]) => el.innerText.startsWith('pixel (PGD)')",
                                   arg=[status.element_handle()], timeout=60_000)
            clean_src = clean.get_attribute("src")
            with page.expect_file_chooser() as chooser:  # the learner's gesture: click, pick a file
                page.locator(".widget-upload").click()
            chooser.value.set_files(str(upload))
            wait_for_new_src(clean, clean_src)
            page.locator(".widget-toggle-button.mod-active", has_text="upload").wait_for(timeout=30_000)

            assert not visible_errors(page)
            page.wait_for_timeout(300)
            page.screenshot(path=tmp_path / "voila-explorer.png", full_page=True)
        finally:
            page.close()
    assert server.poll() is not None, "the server was not shut down"
    print(f"screenshots: {tmp_path}")


def test_serve_stops_the_server_when_the_test_fails(tmp_path):
    """No browser needed: a failure inside `serve` still stops the server and its children."""
    port = free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with pytest.raises(RuntimeError, match="a failing check"):
        with serve(cmd, tmp_path, dict(os.environ), port) as server:
            raise RuntimeError("a failing check")
    assert server.poll() is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

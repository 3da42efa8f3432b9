"""The sweep: checkpoints x probes on a 2-worker Dask LocalCluster on loopback, byte-identical to an
in-process run; the trace store on file:// and memory://; a worker killed mid-task leaves nothing
visible and the retry completes; the CLI as a subprocess writes an offline sweep page and leaves
no process behind."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.nanochat import make_nanochat
from visualizer.errors import VisualizerError
from visualizer.store.traces import scan_store, store_filesystem, verify_files
from visualizer.sweep.driver import Sweep, run_sweep
from visualizer.sweep.fold import Running
from visualizer.sweep.plan import parse_steps, plan_checkpoints
from visualizer.sweep.tasks import KILL_ONCE_VARIABLE

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
PROBES = "the cat sat on the mat\nhello there the the\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("sweep")
    folder = make_nanochat(base / "nanochat", steps=(10, 20, 30))
    (base / "probes.txt").write_text(PROBES, encoding="utf-8")
    return base, folder


@pytest.fixture(scope="module")
def cluster(setup):
    """One 2-worker LocalCluster for the module; the kill hook is read from the workers' environment."""
    distributed = pytest.importorskip("distributed")
    base, _ = setup
    (base / "kill").mkdir()
    os.environ[KILL_ONCE_VARIABLE] = str(base / "kill")
    try:
        with distributed.LocalCluster(host="127.0.0.1", dashboard_address=None, processes=True, threads_per_worker=1,
                                      n_workers=2) as c, distributed.Client(c) as client:
            yield c, client
    finally:
        del os.environ[KILL_ONCE_VARIABLE]


def sweep_of(setup, store: str) -> Sweep:
    base, folder = setup
    return Sweep(checkpoints=tuple(plan_checkpoints([str(folder)], "all")), probes=base / "probes.txt", store=store,
                 batch=1)


def stored_files(fs, root: str) -> dict[str, bytes]:
    """id/name -> bytes of every data file of every listed trace (manifests aside: they hold the time)."""
    files = {}
    for m in scan_store(fs, root).manifests:
        verify_files(f"{root}/{m['id']}", m, fs)
        for name in m["files"]:
            files[f"{m['id']}/{name}"] = fs.cat_file(f"{root}/{m['id']}/{name}")
    return files


def test_two_workers_on_loopback_match_an_in_process_run(setup, cluster, tmp_path):
    c, client = cluster
    info = client.scheduler_info(n_workers=-1)
    assert c.scheduler_address.startswith("tcp://127.0.0.1:")
    assert len(info["workers"]) == 2 and all(a.startswith("tcp://127.0.0.1:") for a in info["workers"])
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    listening = [(proc.pid, conn.laddr) for proc in [me, *me.children(recursive=True)]
                 for conn in proc.net_connections(kind="inet") if conn.status == psutil.CONN_LISTEN]
    assert len(listening) >= 5  # scheduler (+ its http server), 2 nannies, 2 workers
    assert all(addr.ip == "127.0.0.1" for _, addr in listening), listening

    parallel = run_sweep(sweep_of(setup, f"file://{tmp_path / 'dask'}"), client=client)
    serial = run_sweep(sweep_of(setup, str(tmp_path / "serial")), in_process=True)
    fs, _ = store_filesystem(tmp_path)
    a, b = stored_files(fs, str(tmp_path / "dask")), stored_files(fs, str(tmp_path / "serial"))
    assert len(a) >= 6 * 2 and a == b  # same ids, same bytes
    assert parallel["steps"] == serial["steps"]  # the folded statistics too (plan order)
    manifests = scan_store(fs, str(tmp_path / "dask")).manifests
    assert sorted(m["step"] for m in manifests) == [10, 10, 20, 20, 30, 30]
    assert len(parallel["workers"]) == 2  # both workers ran tasks
    for worker in parallel["workers"].values():
        assert worker["loads"] and set(worker["loads"].values()) == {1}  # each checkpoint loaded once per worker
    assert not [p for p in (tmp_path / "dask").iterdir() if p.name.startswith(".")]  # staging removed


def test_memory_store_and_summary_only(setup):
    summary = run_sweep(sweep_of(setup, "memory://sweep-test"), in_process=True)
    fs, root = store_filesystem("memory://sweep-test")
    listed = scan_store(fs, root).manifests
    assert len(listed) == 6 and all(m["tags"] == ["sweep"] for m in listed)
    assert len(stored_files(fs, root)) >= 12
    assert not [p for p in fs.ls(root, detail=False) if p.rsplit("/", 1)[-1].startswith(".")]
    loss = summary["steps"][0]["stats"]["loss"]
    assert loss["n"] == 2 and loss["mean"] > 0
    only = run_sweep(sweep_of(setup, None), in_process=True)
    assert only["steps"] == [dict(s, traces=[dict(t, id=None) for t in s["traces"]]) for s in summary["steps"]]


def test_a_worker_killed_mid_task_leaves_nothing_visible_and_the_retry_completes(setup, cluster, tmp_path):
    base, _ = setup
    _, client = cluster
    (base / "kill" / "armed").write_text("")
    summary = run_sweep(sweep_of(setup, f"file://{tmp_path / 'store'}"), client=client)
    assert (base / "kill" / "fired").exists()  # a worker did die mid-task
    fs, root = store_filesystem(tmp_path / "store")
    assert len(stored_files(fs, root)) >= 12 and len(scan_store(fs, root).manifests) == 6
    assert not scan_store(fs, root).damaged
    assert sorted(os.listdir(tmp_path / "store")) == sorted(m["id"] for m in scan_store(fs, root).manifests)
    assert sum(s["probes"] for s in summary["steps"]) == 6


def test_steps_and_probes_parsing(setup, tmp_path):
    _, folder = setup
    assert [c.step for c in plan_checkpoints([str(folder)], "10:30:20")] == [10, 30]
    assert [c.step for c in plan_checkpoints([str(folder)], "20,10")] == [10, 20]
    for bad in ("x", "30:10", "1:5:0"):
        with pytest.raises(VisualizerError, match="--steps"):
            parse_steps(bad)
    with pytest.raises(VisualizerError, match="no step 15"):
        plan_checkpoints([str(folder)], "15")
    r = Running()
    for v in ([1.0, None], [3.0, 2.0]):
        r.add(v)
    assert r.result() == {"n": [2, 1], "mean": [2.0, 2.0], "std": [1.0, 0.0]}


def test_cli_bad_input_is_one_line_before_any_work(setup, tmp_path):
    from tests.support.cli import run_cli

    base, folder = setup
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text('{"txt": "x"}\n', encoding="utf-8")
    cases = [
        (["--probes", base / "probes.txt", "--steps", "15"], "--steps: "),
        (["--probes", tmp_path / "empty.txt"], "no probe in it"),
        (["--probes", tmp_path / "bad.jsonl"], "line 1"),
        (["--probes", base / "probes.txt", "--workers", "0"], "--workers 0"),
    ]
    for extra, message in cases:
        code, _, err = run_cli("sweep", "--checkpoint", folder, "--store", tmp_path / "store",
                               "--out", tmp_path / "page", *extra)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "page").exists() and not (tmp_path / "store").exists()


def processes_with(token: str) -> list[int]:
    psutil = pytest.importorskip("psutil")
    found = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("SWEEP_TEST_TOKEN") == token:
                found.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return found


def test_cli_sweep_writes_an_offline_page_and_leaves_no_process(setup, tmp_path):
    base, folder = setup
    token = uuid.uuid4().hex
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SWEEP_TEST_TOKEN": token}
    env.pop(KILL_ONCE_VARIABLE, None)
    done = subprocess.run([sys.executable, "-m", "visualizer", "sweep", "--checkpoint", str(folder), "--probes",
                           str(base / "probes.txt"), "--workers", "2", "--store", str(tmp_path / "store"),
                           "--out", str(tmp_path / "page")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "sweep:" in done.stdout and (tmp_path / "page" / "sweep.json").is_file()
    assert processes_with(token) == []
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        errors, requests = [], []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((tmp_path / "page" / "index.html").as_uri(), wait_until="load")
        cells = page.locator("#sweep-grid td").count()
        page.locator("#sweep-step").fill("2")
        label = page.locator("#sweep-step-label").text_content()
        polylines = page.locator("svg polyline").count()
        browser.close()
    assert not errors, errors
    assert all(u.startswith("file://") for u in requests), requests
    assert cells == 3 * 4 and label == "step 30" and polylines >= 5

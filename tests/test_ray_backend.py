"""The Ray backend on real Ray clusters on this machine: a local instance, and two
nodes on loopback (ray.cluster_utils.Cluster). Same results as the local backend;
an actor killed, a node removed, the head killed: nothing lost, nothing duplicated."""

import os
import re
import secrets
import signal
from pathlib import Path

import pytest
from conftest import grokterm, popen_grokterm, without_module, write_preset
from test_faults import SLOW, checkpointed_mid_cohort, curves, read, started, wait_for

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # test clusters: loopback
# Every test cluster with token authentication on, as grokterm's local instance has it,
# and one token for this process and the CLIs it starts. Set before Ray is imported: the
# process reads its authentication mode once, so a later cluster would disagree with it.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
ray = pytest.importorskip("ray", reason='the Ray extra is not installed (pip install -e ".[ray]")')
from ray.cluster_utils import Cluster  # noqa: E402

from grokterm import sweeps  # noqa: E402

# Node death noticed within seconds, not Ray's default half a minute.
FAST_HEALTH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
               "health_check_timeout_ms": 500, "health_check_failure_threshold": 3}  # fmt: skip
# The demo's runs (2 data sizes, d = 64, p = 59) of its first seed, trained 1000 of its
# 4000 steps: both sizes have memorized, and the larger has grokked, by then. Two runs,
# two cohorts: one for each worker, and so for each node.
DEMO = (Path(__file__).resolve().parents[1] / "presets" / "demo.toml").read_text()
DEMO = DEMO.replace("steps = 4000", "steps = 1000", 1).replace("seeds = 2", "seeds = 1", 1)


@pytest.fixture(scope="module")
def two_nodes():
    """A Ray cluster of two nodes of one CPU each, on loopback, shared by this module's
    tests (started once: about 15 s here); the last of them to use it removes a node."""
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "_system_config": FAST_HEALTH})  # fmt: skip
    second = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster, second
    cluster.shutdown()


def actors(log_dir: Path) -> dict[int, tuple[int, str]]:
    """Worker id -> (actor pid, node) from the Ray workers' logs."""
    found = {}
    for log in log_dir.glob("*-ray-*.log"):
        for worker, pid, node in re.findall(
            r"worker (\d+): actor pid (\d+) on (\S+)", log.read_text()
        ):
            found[int(worker)] = (int(pid), node)
    return found


def listening(pids: set[int]) -> list[str]:
    """The local addresses the processes listen on (TCP, from /proc)."""
    inodes = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            target = os.readlink(fd) if fd.exists() else ""
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                found.append(fields[1])
    return found


def ray_processes() -> set[int]:
    pids = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "/ray/" in text or text.startswith("ray::"):  # its servers, agents and workers
            pids.add(int(cmdline.parent.name))
    return pids


def test_the_head_stopped_by_x_then_killed_then_run_again_finishes_the_sweep(
    tmp_path, uninterrupted
):
    """Also: a local instance serves loopback only, and no dashboard."""
    preset = write_preset(tmp_path, SLOW, "slow.toml")
    db = tmp_path / "runs.db"
    before = ray_processes()
    proc = popen_grokterm("run", str(preset), "--workers", "2", "--backend", "ray", cwd=tmp_path)
    wait_for(lambda: started(tmp_path))
    wait_for(lambda: read(db, checkpointed_mid_cohort))
    ours = ray_processes() - before
    addresses = listening(ours)
    assert addresses, "the local instance listens somewhere"
    loopback = (
        "0100007F:",
        "0000000000000000FFFF00000100007F:",
        "00000000000000000000000001000000:",
    )
    assert all(a.startswith(loopback) for a in addresses), addresses
    # no dashboard: at most Ray's head process without its web frontend, serving nothing
    commands = [
        Path(f"/proc/{p}/cmdline").read_bytes() for p in ours if Path(f"/proc/{p}").exists()
    ]
    dashboards = [c for c in commands if b"dashboard.py" in c]
    assert all(b"--disable-frontend" in c for c in dashboards)
    assert not any(a.endswith(":2031") for a in addresses)  # 8265, Ray's dashboard port
    gcs = [p for p in ours if b"gcs_server" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert gcs and b"RAY_AUTH_MODE=token" in Path(f"/proc/{gcs[0]}/environ").read_bytes()
    # the app's x: the workers' rows name the head that drives them, which is signalled
    assert read(db, lambda store: sweeps.stop(store, 1)) == 2
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "asked to stop" in out, out
    cohorts = read(db, lambda store: store.cohorts(1))
    assert {c.status for c in cohorts} <= {"queued", "done"}
    assert any(c.checkpoint and 0 < c.step < 1500 for c in cohorts)

    proc = popen_grokterm("run", str(preset), "--workers", "2", "--backend", "ray", cwd=tmp_path)
    wait_for(lambda: read(db, lambda store: len(store.workers(1)) > 2))
    wait_for(lambda: read(db, checkpointed_mid_cohort))
    proc.send_signal(signal.SIGKILL)  # the head: no checkpoint, no goodbye
    proc.wait()
    result = grokterm("run", str(preset), "--workers", "2", "--backend", "ray", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming sweep 1" in result.stdout
    assert curves(db) == uninterrupted


def test_without_ray_installed_the_backend_says_how_to_get_it(tmp_path, tiny):
    env = without_module(tmp_path, "ray")
    result = grokterm("run", str(tiny), "--backend", "ray", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        'grokterm: --backend: the Ray backend needs Ray: pip install -e ".[ray]"'
    )
    assert not (tmp_path / "runs.db").exists()  # nothing made before the error


def test_an_address_without_the_ray_backend_is_refused(tmp_path, tiny):
    result = grokterm("run", str(tiny), "--address", "auto", cwd=tmp_path)
    assert result.returncode == 2
    assert "--address: a Ray cluster's address needs --backend ray" in result.stderr


async def test_the_app_trains_on_ray_shows_each_workers_node_and_x_stops_them(tmp_path):
    from test_app import settle, shown_text, slow_presets, wait_until

    from grokterm.store import Store
    from grokterm.tui.app import GroktermApp

    app = GroktermApp(tmp_path / "runs.db", slow_presets(tmp_path), device="cpu", workers=2,
                      backend="ray")  # fmt: skip
    store = Store.reader(tmp_path / "runs.db")
    try:
        async with app.run_test(size=(100, 32)) as pilot:
            await settle(pilot)
            await pilot.press("l")  # launch: a local Ray instance starts in a thread
            await wait_until(pilot, lambda: any(w.cohort_id for w in store.workers(1)))
            workers = app.screen.query_one("#workers")
            await wait_until(pilot, lambda: "cohort" in shown_text(workers))
            assert re.search(
                r"worker \d+ cpu on \S+/[0-9a-f]{8}: cohort 1 step", shown_text(workers)
            )
            await pilot.press("w")
            await settle(pilot)
            await pilot.press("x")  # the app stops the workers it drives itself
            app.pools[1].wait(60)
            assert not app.pools[1].alive()
            assert {w.status for w in store.workers(1)} == {"stopped"}
            cohort = store.cohorts(1)[0]
            assert cohort.status == "queued" and cohort.step > 0 and cohort.checkpoint
            await pilot.press("q")  # nothing running: quits without asking
    finally:
        ray.shutdown()


# The two-node cluster is shared by the tests below and shut down after the last:
# they come last, so that no other test runs beside it.


def test_the_demo_on_two_nodes_matches_the_local_backend(tmp_path, two_nodes):
    cluster, _ = two_nodes
    rows = {}
    for backend in ("local", "ray"):
        directory = tmp_path / backend
        directory.mkdir()
        preset = write_preset(directory, DEMO, "demo.toml")
        extra = ["--address", cluster.address] if backend == "ray" else []
        result = grokterm("run", str(preset), "--workers", "2", "--backend", backend, *extra,
                          cwd=directory)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        rows[backend] = curves(directory / "runs.db")
    assert "ray: 2 workers on 2 node(s) of the Ray cluster at" in result.stdout
    assert rows["ray"] == rows["local"]  # the same cohorts: every metric row, every label
    labels = {label for label, _ in rows["ray"]["labels"].values()}
    assert "grokking" in " ".join(labels)
    workers = read(tmp_path / "ray" / "runs.db", lambda store: store.workers(1))
    assert len({w.node for w in workers}) == 2  # one actor on each node
    assert all(w.status == "finished" and w.pid != os.getpid() for w in workers)


def test_an_actor_killed_then_a_node_removed_lose_and_duplicate_nothing(
    tmp_path, two_nodes, uninterrupted
):
    cluster, second = two_nodes
    preset = write_preset(tmp_path, SLOW, "slow.toml")
    db = tmp_path / "runs.db"
    proc = popen_grokterm("run", str(preset), "--backend", "ray", "--address", cluster.address,
                          cwd=tmp_path)  # fmt: skip
    wait_for(lambda: started(tmp_path))

    def training(node_id: str):
        """A worker on the node mid-cohort, past a checkpoint."""

        def look(store):
            cohorts = {c.id for c in checkpointed_mid_cohort(store)}
            return next((w.id for w in store.workers(1) if w.cohort_id in cohorts and
                         w.status == "running" and node_id[:8] in w.node), None)  # fmt: skip

        return read(db, look)

    def lost(worker_id: int) -> bool:
        return read(db, lambda store: store.workers(1)[worker_id - 1].status == "lost")

    victim = wait_for(lambda: training(cluster.head_node.node_id))
    os.kill(actors(tmp_path / "runs.db.logs")[victim][0], signal.SIGKILL)
    wait_for(lambda: lost(victim))
    victim = wait_for(lambda: training(second.node_id))
    cluster.remove_node(second, allow_graceful=False)
    wait_for(lambda: lost(victim))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert curves(db) == uninterrupted
    workers = read(db, lambda store: store.workers(1))
    gone = [w for w in workers if w.status == "lost"]
    assert len(gone) >= 2 and all(w.error for w in gone)  # the killed actor and the node's

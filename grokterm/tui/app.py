"""grokterm's Textual app: presets, sweeps, and a live view of one sweep.

Two modes, one screen instance each: presets and sweeps; a sweep (or a figure drawn
from other sweeps) is pushed on top of the mode it was opened from, and replaces a
sweep already open there, so the stack stays short. Training happens in worker
processes started through the sweep service; they keep going when the app quits or
the SSH connection drops. Every read runs in a thread worker on a connection of its
own, and a failed thread worker becomes a notification. The app never imports torch."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import closing, contextmanager
from functools import partial
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.worker import Worker, WorkerState

from grokterm import processes, sweeps
from grokterm.backends import Backend
from grokterm.store import Store, check_file
from grokterm.tui.screens.dialogs import HelpScreen, QuitScreen
from grokterm.tui.screens.figure import FigureScreen
from grokterm.tui.screens.presets import PresetsScreen
from grokterm.tui.screens.sweep import SweepScreen
from grokterm.tui.screens.sweeps import SweepsScreen


class Actions(Provider):
    """Command palette entries for the main actions."""

    async def search(self, query: str) -> Hits:
        app = self.app
        matcher = self.matcher(query)
        commands = [("Presets: pick and launch", app.action_presets),
                    ("Sweeps: list, open, resume, stop", app.action_sweeps),
                    ("Help: keys", app.action_help)]  # fmt: skip
        with app.reader() as store:
            listed = store.sweeps()[-20:]
        for c in listed:
            s = c.sweep
            commands.append(
                (f"Open sweep {s.id}: {s.name} ({s.scale})", partial(app.open_sweep, s.id))
            )
            commands.append((f"Export sweep {s.id} to CSV", partial(app.export_sweep, s.id)))
        for text, action in commands:
            if (score := matcher.match(text)) > 0:
                yield Hit(score, matcher.highlight(text), action)


class GroktermApp(App):
    CSS_PATH = ["app.tcss", "screens/sweep.tcss", "screens/run.tcss", "screens/dialogs.tcss"]
    TITLE = "grokterm"
    COMMANDS = App.COMMANDS | {Actions}
    MODES = {"presets": PresetsScreen, "sweeps": SweepsScreen}
    BINDINGS = [
        Binding("p", "presets", "presets"),
        Binding("w", "sweeps", "sweeps"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit_app", "quit"),
    ]

    def __init__(self, db: str | Path = "runs.db", presets: str | Path = "presets",
                 device: str = "auto", workers: int | None = None, engine: str = "auto",
                 precision: str = "float32", backend: str = "local",
                 address: str | None = None):  # fmt: skip
        super().__init__()
        self.db = Path(db)
        self.store = Store(self.db)  # the UI thread's own, for launching and stopping
        self.presets_dir = Path(presets)
        self.device, self.n_workers = device, workers
        self.engine, self.precision = engine, precision
        self.backend, self.address = backend, address  # where launched sweeps train
        self.pools: dict[int, Backend] = {}  # workers this app started, by sweep

    def on_mount(self) -> None:
        self.switch_mode("presets")

    @contextmanager
    def reader(self) -> Iterator[Store]:
        """A read-only connection for the calling thread, closed after use."""
        with closing(Store.reader(self.db)) as store:
            yield store

    def slots(self):
        return sweeps.slots(self.device, self.n_workers, engine=self.engine,
                            precision=self.precision, backend=self.backend,
                            address=self.address)  # fmt: skip

    def in_thread(self, work, name: str, group: str) -> Worker:
        """Run a read in a thread worker of the app's (the newest of its group wins), so
        that one handler below sees every failure."""
        return self.run_worker(work, name=name, group=group, thread=True, exclusive=True,
                               exit_on_error=False)  # fmt: skip

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A thread worker that raised: say so, and keep the app running."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{event.worker.name or 'a read'} failed: {type(error).__name__}: {error}",
                        severity="error", timeout=10)  # fmt: skip

    # -- actions used by the screens and the command palette --------------------------

    def launch(self, preset, scale: str) -> None:
        if preset.at_scale(scale).is_view:
            self._open(FigureScreen(preset.at_scale(scale)))
            return
        try:
            plan = sweeps.plan_sweep(preset, scale, self.device, self.n_workers,
                                     engine=self.engine, precision=self.precision,
                                     backend=self.backend, address=self.address)  # fmt: skip
        except sweeps.SweepError as err:
            self.notify(str(err), severity="error")
            return
        for line in plan.warnings[:1]:
            self.notify(line, severity="warning")
        sweep, created = sweeps.open_sweep(self.store, plan)
        self.notify(
            f"{'started' if created else 'resuming'} sweep {sweep.id}: {preset.name} ({scale})"
        )
        self.resume_sweep(sweep.id)

    def resume_sweep(self, sweep_id: int) -> None:
        pool = self.pools.get(sweep_id)
        if self.store.sweep_finished(sweep_id):
            self.notify(f"sweep {sweep_id} is finished")
        elif pool is None or not pool.alive():
            try:
                pool = sweeps.open_workers(self.db, sweep_id, self.slots(), self.backend,
                                           self.address)  # fmt: skip
            except sweeps.SweepError as err:
                self.notify(str(err), severity="error")
            else:
                self.pools[sweep_id] = pool
                self._start(pool, sweep_id)
        self.open_sweep(sweep_id)

    def _start(self, pool: Backend, sweep_id: int) -> None:
        """Local workers start at once; a Ray cluster is joined (a local instance takes
        seconds to start) in a thread, whose failure the handler above shows."""
        if pool.outlives_head:
            pool.start()
        else:
            self.in_thread(pool.start, f"starting sweep {sweep_id}'s Ray workers", "start")

    def stop_sweep(self, sweep_id: int) -> None:
        asked = sweeps.stop(self.store, sweep_id, self.pools.get(sweep_id))
        self.notify(f"asked {asked} worker(s) of sweep {sweep_id} to checkpoint and stop")

    def open_sweep(self, sweep_id: int) -> None:
        self._open(SweepScreen(sweep_id))

    def _open(self, screen) -> None:
        """Push a sweep or figure screen, replacing one already open in this mode."""
        if isinstance(self.screen, (SweepScreen, FigureScreen)):
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def export_sweep(self, sweep_id: int) -> list[Path]:
        """The sweep's runs and its metrics as CSV files in the working folder, named
        after the sweep (made safe as a file name), said in one notification."""
        from grokterm.export import ExportError, export_to, safe_name

        sweep = self.store.sweep(sweep_id)
        stem = Path.cwd() / f"{safe_name(sweep.name)}-sweep{sweep_id}"
        paths = [stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + "-metrics.csv")]
        try:
            for path, metrics in zip(paths, (False, True)):
                export_to(self.store, sweep, path, metrics)
        except ExportError as err:
            self.notify(f"export failed: {err}", severity="error", timeout=10)
            return []
        self.notify(f"exported sweep {sweep_id}: runs to {paths[0]}, metrics to {paths[1]}")
        return paths

    def _show_mode(self, mode: str) -> None:
        """A mode's own screen: the list, not a sweep left open on top of it."""
        self.switch_mode(mode)
        if isinstance(self.screen, (SweepScreen, FigureScreen)):
            self.pop_screen()

    def action_presets(self) -> None:
        self._show_mode("presets")

    def action_sweeps(self) -> None:
        self._show_mode("sweeps")

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_quit_app(self) -> None:
        """Quit; first ask what to do with the workers of this database running on this
        host, whoever started them (this app, an earlier one, `grokterm run`)."""
        running = self._running_sweeps()
        if not running:
            self.exit()
            return

        def chosen(choice: str | None) -> None:
            if choice == "stop":
                for sweep_id in running:
                    sweeps.stop(self.store, sweep_id, self.pools.get(sweep_id))
            if choice in ("stop", "leave"):
                self._stop_own()
                self.exit()

        self.push_screen(QuitScreen(sum(running.values())), chosen)

    async def action_quit(self) -> None:  # ctrl+q and the palette's Quit ask too
        self.action_quit_app()

    def _stop_own(self) -> None:
        """Workers that end with the app (Ray's, which it drives) checkpoint first."""
        own = [pool for pool in self.pools.values() if not pool.outlives_head and pool.alive()]
        for pool in own:
            pool.stop()
        for pool in own:
            pool.wait(60)

    def _running_sweeps(self) -> dict[int, int]:
        """Sweep id -> its workers running on this host, proven alive by their token."""
        host, running = socket.gethostname(), {}
        for counts in self.store.sweeps():
            live = [w for w in self.store.workers(counts.sweep.id) if w.status == "running"
                    and w.host == host and w.token and processes.token(w.pid) == w.token]  # fmt: skip
            if live:
                running[counts.sweep.id] = len(live)
        return running


def run_app(db: str, presets: str, device: str, workers: int | None, engine: str = "auto",
            precision: str = "float32", backend: str = "local",
            address: str | None = None) -> int:  # fmt: skip
    check_file(db, create=True)  # a bad store is one line, before the app opens it
    GroktermApp(db, presets, device, workers, engine, precision, backend, address).run()
    return 0

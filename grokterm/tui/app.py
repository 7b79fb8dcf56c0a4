"""grokterm's Textual app: presets, sweeps, and a live view of one sweep.

Training happens in worker processes the app starts (grokterm.runner); they keep
going when the app quits or the SSH connection drops. The app itself never imports
torch, so it opens in well under a second."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.command import Hit, Hits, Provider

from grokterm.runner import Pool, plan_on, prepare_sweep, stop_sweep, worker_slots
from grokterm.store import Store
from grokterm.tui.screens.dialogs import HelpScreen, QuitScreen
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
        for sweep in app.store.sweeps()[-20:]:
            commands.append((f"Open sweep {sweep['id']}: {sweep['name']} ({sweep['scale']})",
                             partial(app.open_sweep, sweep["id"])))  # fmt: skip
            commands.append(
                (f"Export sweep {sweep['id']} to CSV", partial(app.export_sweep, sweep["id"]))
            )
        for text, action in commands:
            if (score := matcher.match(text)) > 0:
                yield Hit(score, matcher.highlight(text), action)


class GroktermApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "grokterm"
    COMMANDS = App.COMMANDS | {Actions}
    BINDINGS = [
        Binding("p", "presets", "presets"),
        Binding("w", "sweeps", "sweeps"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit_app", "quit"),
    ]

    def __init__(self, db: str | Path = "runs.db", presets: str | Path = "presets",
                 device: str = "auto", workers: int | None = None):  # fmt: skip
        super().__init__()
        self.store = Store(db)
        self.presets_dir = Path(presets)
        self.device, self.n_workers = device, workers
        self.pools: dict[int, Pool] = {}  # workers this app started, by sweep

    def on_mount(self) -> None:
        self.push_screen(SweepsScreen())
        self.push_screen(PresetsScreen(self.presets_dir, len(self._slots())))

    def _slots(self):
        return worker_slots(self.device, self.n_workers)

    # -- actions used by the screens and the command palette --------------------------

    def launch(self, preset, scale: str) -> None:
        at = preset.at_scale(scale)
        if at.plot["kind"] == "zones":
            self.notify(
                f"{preset.name} is drawn from the {' and '.join(at.plot['sources'])} sweeps; launch those"
            )
            return
        slots = self._slots()
        cohorts, warnings = plan_on(at.expand(), slots)
        for line in warnings[:1]:
            self.notify(line, severity="warning")
        sweep, created = prepare_sweep(self.store, at, scale, cohorts)
        self.notify(
            f"{'started' if created else 'resuming'} sweep {sweep['id']}: {preset.name} ({scale})"
        )
        self.resume_sweep(sweep["id"])

    def resume_sweep(self, sweep_id: int) -> None:
        if self.store.sweep_finished(sweep_id):
            self.notify(f"sweep {sweep_id} is finished")
        elif sweep_id not in self.pools or not self.pools[sweep_id].alive():
            pool = Pool(self.store, sweep_id, self._slots())
            pool.start()
            self.pools[sweep_id] = pool
        self.open_sweep(sweep_id)

    def stop_sweep(self, sweep_id: int) -> None:
        asked = stop_sweep(self.store, sweep_id)
        self.notify(f"asked {asked} worker(s) of sweep {sweep_id} to checkpoint and stop")

    def open_sweep(self, sweep_id: int) -> None:
        self.push_screen(SweepScreen(sweep_id))

    def export_sweep(self, sweep_id: int) -> Path:
        from grokterm.export import export_runs

        sweep = self.store.sweep(sweep_id)
        path = Path(f"{sweep['name']}-sweep{sweep_id}.csv").resolve()
        with open(path, "w", newline="") as out:
            export_runs(self.store, sweep, out)
        self.notify(f"exported sweep {sweep_id} to {path}")
        return path

    def action_presets(self) -> None:
        self.push_screen(PresetsScreen(self.presets_dir, len(self._slots())))

    def action_sweeps(self) -> None:
        self.push_screen(SweepsScreen())

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_quit_app(self) -> None:
        running = sum(p.alive() for p in self.pools.values())
        if not running:
            self.exit()
            return

        def chosen(choice: str | None) -> None:
            if choice == "stop":
                for pool in self.pools.values():
                    pool.stop()
            if choice in ("stop", "leave"):
                self.exit()

        self.push_screen(QuitScreen(running), chosen)


def run_app(db: str, presets: str, device: str, workers: int | None) -> int:
    GroktermApp(db, presets, device, workers).run()
    return 0

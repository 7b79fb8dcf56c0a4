-- runs.db's tables, created (if absent) by Store before any worker starts.
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL, title TEXT, figure TEXT, scale TEXT NOT NULL,
    preset_path TEXT, digest TEXT NOT NULL, toml TEXT NOT NULL, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cohorts (
    id INTEGER PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
    status TEXT NOT NULL DEFAULT 'queued',          -- queued | running | done | failed
    worker_id INTEGER, heartbeat REAL,
    step INTEGER NOT NULL DEFAULT 0, steps INTEGER NOT NULL,
    checkpoint TEXT                                  -- file of the last saved state
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
    cohort_id INTEGER NOT NULL REFERENCES cohorts(id),
    position INTEGER NOT NULL,                       -- index inside its cohort
    key TEXT NOT NULL, grid TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',   -- queued | running | done | diverged | failed
    device TEXT, step INTEGER NOT NULL DEFAULT 0,
    train_loss REAL, train_acc REAL, val_loss REAL, val_acc REAL, norm REAL,
    label TEXT, label_info TEXT,
    UNIQUE (sweep_id, key)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL,
    train_loss REAL, train_acc REAL, val_loss REAL, val_acc REAL, norm REAL,
    extras TEXT,                                     -- JSON of further named series
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS workers (
    id INTEGER PRIMARY KEY,
    pid INTEGER, host TEXT, device TEXT, sweep_id INTEGER, cohort_id INTEGER,
    status TEXT, started REAL, heartbeat REAL, step INTEGER, steps_per_sec REAL
);
CREATE INDEX IF NOT EXISTS runs_by_sweep ON runs (sweep_id, cohort_id);
CREATE INDEX IF NOT EXISTS cohorts_by_sweep ON cohorts (sweep_id, status);

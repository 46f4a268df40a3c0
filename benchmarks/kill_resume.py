"""Crash-safety of `oreo-agents train`: SIGKILL a tiny OREO run at several points, resume it, compare with a clean run.

    python benchmarks/kill_resume.py                     # 6 kills between/inside updates + 2 inside a checkpoint save
    python benchmarks/kill_resume.py --timed 3 --in-save 1 --updates 8

A trial *survives* when the resumed run ends with bit-identical policy and value weights and the same metrics lines
as the uninterrupted run; *updates redone* = killed step - resumed step. Timed kills fire a varying delay (0-0.4 s)
after update k's metrics line, for k spread over the run (so: mid-update, or mid-save when k is a save step); kills
"in save" fire as soon as a checkpoint's ``.step-N.partial`` folder appears, i.e. while it is being written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "learning"))


def cli(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, "-m", "oreo_agents.cli.train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return {part: load_file(str(out / part / "model.safetensors")) for part in ("policy", "value")}


def identical(a: dict, b: dict) -> bool:
    import torch

    return all(a[p].keys() == b[p].keys() and all(torch.equal(a[p][k], b[p][k]) for k in a[p]) for p in a)


def steps_done(out: Path) -> int:
    f = out / "metrics.jsonl"
    return len(f.read_text().splitlines()) if f.is_file() else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timed", type=int, default=6, help="kills after updates spread evenly over the run")
    ap.add_argument("--in-save", type=int, default=2, help="kills fired while a checkpoint is being written")
    ap.add_argument("--updates", type=int, default=12)
    args = ap.parse_args()
    from fake_episodes import episode, write_dataset

    work = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    data = write_dataset(work / "data.parquet", [episode(t, ok, sample=int(not ok), policy="model") for t in range(4) for ok in (True, False)])
    common = ["--algo", "oreo", "--data", str(data), "--model", "tiny", "--model-cache", str(work / "cache"), "--epochs", "100",
              "--max-steps", str(args.updates), "--batch-size", "4", "--micro-batch-size", "2", "--save-steps", "2", "--no-plot"]  # fmt: skip
    t0 = time.perf_counter()
    clean = cli([*common, "--out", str(work / "clean")])
    assert clean.wait() == 0, clean.stdout.read()
    duration = time.perf_counter() - t0
    ref_w, ref_m = weights(work / "clean"), [json.loads(x)["loss_v"] for x in (work / "clean" / "metrics.jsonl").read_text().splitlines()]
    print(f"clean run: {args.updates} updates in {duration:.1f} s")
    plan = [("timed", (1 + i * (args.updates - 1) // args.timed, 0.4 * i / max(args.timed - 1, 1))) for i in range(args.timed)]
    plan += [("in-save", None)] * args.in_save
    rows = []
    for n, (kind, at) in enumerate(plan):
        out = work / f"trial-{n}"
        proc = cli([*common, "--out", str(out)])
        want, seen, inside = 1 + n % 2, 0, False  # in-save kills: during the 1st or the 2nd checkpoint's save
        while proc.poll() is None:
            if kind == "timed" and steps_done(out) >= at[0]:
                time.sleep(at[1])
                break
            if kind == "in-save":
                now = (out / "checkpoints").is_dir() and any((out / "checkpoints").glob(".step-*.partial"))
                seen += now and not inside
                inside = now
                if now and seen == want:
                    break
            time.sleep(0.002)
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = steps_done(out)
        again = cli([*common, "--out", str(out)])
        log = again.communicate()[0]
        ok = again.returncode == 0
        m = re.search(r"resuming .* from update\s+(\d+)", log.replace("\n", " "))
        resumed = int(m.group(1)) if m else 0
        same = ok and identical(ref_w, weights(out)) and ref_m == [json.loads(x)["loss_v"] for x in (out / "metrics.jsonl").read_text().splitlines()]
        rows.append((n, kind, "finished before kill" if finished else f"after {killed_at} updates", resumed, killed_at - resumed, same))
        print(f"trial {n} ({kind}): killed {rows[-1][2]}, resumed from {resumed}, updates lost {killed_at - resumed}, "
              f"{'bit-identical' if same else 'DIFFERENT' if ok else 'resume FAILED: ' + log[-400:]}")  # fmt: skip
    survived = sum(r[-1] for r in rows)
    print(f"tried {len(rows)} / survived {survived} / lost {len(rows) - survived} (runs whose resume did not end bit-identical); "
          f"updates redone: {sum(r[4] for r in rows)} in all")  # fmt: skip


if __name__ == "__main__":
    main()

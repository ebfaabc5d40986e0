"""Nothing computed is lost, nothing half-written is left: score-rewards streaming, resume after SIGKILL,
unencodable text and NaN, and full / read-only filesystems (a real tmpfs where the machine allows it, an
injected ENOSPC everywhere)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from visionr1.cli import app
from visionr1.training.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
CLI = [sys.executable, "-m", "visionr1"]

# a reward plugin that logs how many completions it scored (and can be slowed down to be killed mid-run)
COUNTING_PLUGIN = '''
import os, time
from pathlib import Path

def counted(completions, **kwargs):
    with Path(os.environ["REL_COUNT_FILE"]).open("a") as f:
        f.write(f"{len(completions)}\\n")
    time.sleep(float(os.environ.get("REL_DELAY", "0")))
    return [float(len(str(c)) % 7) for c in completions]
'''


def strict_json(line: str):
    def no_constants(name):
        raise ValueError(f"bare {name} is not JSON")

    return json.loads(line, parse_constant=no_constants)


def rows(n: int) -> list[dict]:
    """Completions of ~20 to ~1,500 characters, several tasks, option lists, conversational turns."""
    out = []
    for i in range(n):
        think = "Let me count the objects one by one. " * (i * 7 % 40)
        comp = f"<think>{think}</think><answer>{i % 5}</answer>"
        row = {"id": f"r{i}", "completion": comp, "solution": str(i % 5), "task": "count"}
        if i % 4 == 1:
            row.update(task="choice", choices=["red", "blue", "green"], solution="B",
                       completion=[{"role": "assistant", "content": f"<think>{think}</think><answer>(B)</answer>"}])
        out.append(row)
    return out


def write_jsonl(path: Path, items: list, raw: list[bytes] = ()) -> Path:
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in items) + b"".join(raw))
    return path


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    p = tmp_path / "counting.py"
    p.write_text(COUNTING_PLUGIN)
    count = tmp_path / "count.txt"
    monkeypatch.setenv("REL_COUNT_FILE", str(count))
    return f"{p}:counted", count


def scored(count: Path) -> int:
    return sum(int(x) for x in count.read_text().split()) if count.exists() else 0


def test_surrogates_nan_and_bad_utf8_give_valid_json(tmp_path):
    """Before: a lone surrogate raised UnicodeEncodeError at the very end (all work lost), NaN was written as
    bare NaN, and an invalid UTF-8 line was a traceback even with --skip-bad."""
    src = write_jsonl(tmp_path / "in.jsonl", rows(3), raw=[
        b'{"completion": "<answer>\\ud800 4</answer>", "solution": "4", "note": "\\udfff"}\n',
        b'{"completion": "<answer>4</answer>", "solution": "4", "score": NaN, "hi": Infinity}\n',
        b'{"completion": "<answer>\xff\xfe4</answer>", "solution": "4"}\n',
    ])
    dst = tmp_path / "out.jsonl"
    res = CliRunner().invoke(app, ["score-rewards", "-i", str(src), "-o", str(dst)])
    assert res.exit_code == 2 and "in.jsonl:6: not valid UTF-8" in res.output and not dst.exists()
    res = CliRunner().invoke(app, ["score-rewards", "-i", str(src), "-o", str(dst), "--skip-bad"])
    assert res.exit_code == 0, res.output
    out = [strict_json(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    assert len(out) == 6 and out[3]["note"] == "\udfff" and out[3]["rewards"]["accuracy"] in (0.0, 1.0)
    assert out[4]["score"] is None and out[4]["hi"] is None and out[4]["rewards"]["accuracy"] == 1.0
    assert out[5]["rewards"] is None and "not valid UTF-8" in out[5]["error"]
    assert not list(tmp_path.glob("out.jsonl.tmp*"))


def test_kill_mid_run_keeps_old_output_and_resumes(tmp_path, plugin):
    """Before: results were written only at the end, straight over the old output: a kill lost everything."""
    spec, count = plugin
    src = write_jsonl(tmp_path / "in.jsonl", rows(60))
    dst = tmp_path / "out.jsonl"
    dst.write_text("previous results\n")
    tmp = tmp_path / "out.jsonl.tmp"
    cmd = [*CLI, "score-rewards", "-i", str(src), "-o", str(dst), "-r", spec, "-r", "accuracy", "--batch-size", "10"]
    proc = subprocess.Popen(cmd, env={**ENV, "REL_COUNT_FILE": str(count), "REL_DELAY": "0.4"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (tmp.exists() and tmp.read_bytes().count(b"\n") >= 20):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert dst.read_text() == "previous results\n"  # the old output is untouched
    saved = tmp.read_bytes().count(b"\n")
    assert 20 <= saved < 60 and saved % 10 == 0
    before = scored(count)

    res = CliRunner().invoke(app, ["score-rewards", "-i", str(src), "-o", str(dst), "-r", spec, "-r", "accuracy",
                                   "--batch-size", "10"])
    assert res.exit_code == 0, res.output
    assert f"resuming: {saved} of 60" in " ".join(res.output.split())
    assert scored(count) - before == 60 - saved  # only the missing lines were scored again
    out = [strict_json(line) for line in dst.read_text().splitlines()]
    assert [o["id"] for o in out] == [f"r{i}" for i in range(60)]
    assert all(set(o["rewards"]) == {"counted", "accuracy"} for o in out)
    assert not tmp.exists() and not (tmp_path / "out.jsonl.tmp.json").exists()


def test_partial_output_of_another_input_is_not_reused(tmp_path, plugin):
    spec, count = plugin
    src, dst = write_jsonl(tmp_path / "in.jsonl", rows(12)), tmp_path / "out.jsonl"
    args = ["score-rewards", "-i", str(src), "-o", str(dst), "-r", spec, "--batch-size", "4"]
    assert CliRunner().invoke(app, args).exit_code == 0
    first = dst.read_text()
    (tmp_path / "out.jsonl.tmp").write_text(first.splitlines()[0] + "\n")  # a "partial run" ...
    (tmp_path / "out.jsonl.tmp.json").write_text('{"input_sha256": "of another file"}')  # ... of other input
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "starting over" in res.output
    assert dst.read_text() == first and scored(count) == 24


# ----------------------------------------------------------------------------- full and read-only disks


def test_injected_disk_full_is_one_line_and_leaves_no_temp_files(tmp_path, monkeypatch):
    """Every atomic write goes through one helper; a full disk mid-write removes its temp file and says where,
    what and how much space. The manifest still records the failure (in place) instead of staying running."""
    from visionr1.utils import io as vio

    target = tmp_path / "summary.json"
    target.write_text('{"old": true}\n')
    real_write = os.write

    def full(fd, data):
        real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vio.os, "write", full)
    with pytest.raises(vio.OutputError) as err:
        vio.atomic_write_json(target, {"new": 1}, "the summary")
    msg = str(err.value)
    assert "\n" not in msg and "cannot write the summary to" in msg and "No space left" in msg and "free there" in msg
    assert target.read_text() == '{"old": true}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]

    monkeypatch.setattr(vio.os, "write", real_write)
    m = Manifest(tmp_path, {"stages": [{"name": "sft", "status": "running", "error": None}]})
    m.save()
    monkeypatch.setattr(vio.os, "write", full)
    m.update_stage("sft", status="failed", error="OSError: [Errno 28] No space left on device")
    assert json.loads((tmp_path / "manifest.json").read_text())["stages"][0]["status"] == "failed"
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_stray_temp_files_of_dead_writers_are_removed(tmp_path):
    """Before: a killed manifest write left manifest.json.tmp.PID behind for good."""
    from visionr1.utils import io as vio

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stray = tmp_path / f"manifest.json.tmp.{dead.stdout.strip()}"
    stray.write_text("{half")
    vio.atomic_write_json(tmp_path / "manifest.json", {"ok": 1})
    assert not stray.exists() and json.loads((tmp_path / "manifest.json").read_text()) == {"ok": 1}


def test_score_rewards_on_a_real_full_disk(tmp_path, small_fs, plugin):
    spec, count = plugin
    src = write_jsonl(tmp_path / "in.jsonl", rows(200))
    disk = tmp_path / "disk"
    script = (f'{" ".join(CLI)} score-rewards -i {src} -o {disk}/out.jsonl -r {spec} --batch-size 20; '
              f'echo "RC=$?"; ls -a {disk}; cat {disk}/out.jsonl')
    res = small_fs(disk, ["sh", "-c", script], size_kb=48, prepare=f'echo previous > "{disk}/out.jsonl"')
    err = " ".join(res.stderr.split())
    assert "RC=2" in res.stdout, res.stdout + res.stderr
    assert "cannot write scored lines to" in err and "No space left on device" in err and "free there" in err
    assert "Traceback" not in res.stderr
    listing = set(res.stdout.split())
    assert "out.jsonl.tmp" in listing and not [n for n in listing if ".tmp." in n and n[-1].isdigit()]
    assert res.stdout.rstrip().endswith("previous")  # the old output untouched
    assert scored(count) > 0  # it did score; what it wrote stays in out.jsonl.tmp for a resume


def test_score_rewards_refuses_a_read_only_output_before_scoring(tmp_path, small_fs, plugin):
    """Before: every line was scored, then the write failed with a traceback and all the work was lost."""
    spec, count = plugin
    src = write_jsonl(tmp_path / "in.jsonl", rows(5))
    disk = tmp_path / "ro"
    res = small_fs(disk, [*CLI, "score-rewards", "-i", str(src), "-o", f"{disk}/out.jsonl", "-r", spec], readonly=True)
    err = " ".join(res.stderr.split())
    assert res.returncode == 2 and "Read-only file system" in err and "not writable" in err, res.stderr
    assert scored(count) == 0  # checked before any scoring


def test_manifest_on_a_real_full_disk_records_failed(tmp_path, small_fs):
    disk = tmp_path / "run"
    code = f'''
import json, os
from pathlib import Path
from visionr1.training.manifest import Manifest
from visionr1.utils.io import OutputError, atomic_write_text
d = Path("{disk}")
m = Manifest(d, {{"stages": [{{"name": "grpo", "status": "pending", "error": None}}], "recipe": {{}}}})
m.update_stage("grpo", status="running")
fd = os.open(d / "filler", os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"x" * 512)
except OSError:
    os.close(fd)
m.update_stage("grpo", status="failed", error="OSError: [Errno 28] No space left on device")
try:
    atomic_write_text(d / "new.json", "x" * 100000, "the new file")
except OutputError as e:
    print("ERROR:", e)
print("STATUS:", json.loads((d / "manifest.json").read_text())["stages"][0]["status"])
print("FILES:", sorted(os.listdir(d)))
'''
    res = small_fs(disk, [sys.executable, "-c", code], size_kb=64)
    out = res.stdout
    assert "STATUS: failed" in out, out + res.stderr
    assert "ERROR: cannot write the new file to" in out and "No space left on device" in out
    assert "FILES: ['filler', 'manifest.json']" in out


def test_coldstart_on_a_real_full_disk_is_one_line(tmp_path, small_fs):
    disk = tmp_path / "cs"
    recipe = REPO / "recipes" / "coldstart" / "synthetic_oracle.yaml"
    script = f'{" ".join(CLI)} coldstart {recipe} input.n=40 --output-dir {disk}/out; echo "RC=$?"; find {disk}'
    res = small_fs(disk, ["sh", "-c", script], size_kb=160)
    err = " ".join(res.stderr.split())
    assert "RC=2" in res.stdout and "cannot write" in err and "No space left on device" in err, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and ".tmp" not in res.stdout

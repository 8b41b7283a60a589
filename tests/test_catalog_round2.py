"""The second hostile-input sweep (issue "trust, round 2"): lost data, internal errors on bad result files,
tracebacks through the Python API, silent acceptance. Each case: a command line, its exit code, a fragment of its
one-line message, the files that must stay unchanged. Cases of the first sweep are in test_catalog.py.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from importlib import resources
from pathlib import Path

import pytest

import rnopt
from rnopt.errors import RnoptError
from rnopt.fileio import atomic_path, replacing

QUICK = ["--batch-size", "1", "--iterations", "5", "--warmup", "1", "--min-time", "0", "--no-memory", "--quiet"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edited(payload: dict, edit) -> dict:
    copied = copy.deepcopy(payload)
    edit(copied)
    return copied


@pytest.fixture(scope="module")
def hostile2(tmp_path_factory, fp32_onnx, int8_onnx):
    from rnopt.cli import main

    t = tmp_path_factory.mktemp("hostile2")
    (t / "m.onnx").write_bytes(fp32_onnx.read_bytes())
    (t / "q.onnx").write_bytes(int8_onnx.read_bytes())
    with resources.as_file(resources.files("rnopt.data") / "assets" / "cifar10-test.zip") as archive:
        with zipfile.ZipFile(archive) as zf:
            for cls in ("airplane", "cat", "ship"):
                (t / "imgs" / cls).mkdir(parents=True)
                for name in [n for n in zf.namelist() if n.startswith(cls + "/")][:4]:
                    (t / "imgs" / name).write_bytes(zf.read(name))
    assert main(["bench", str(t / "m.onnx"), *QUICK, "--json", str(t / "base.json")]) == 0
    assert main(["eval", str(t / "m.onnx"), "--limit", "20", "--json", str(t / "ev.json"), "--quiet"]) == 0
    (t / "ov").mkdir()
    assert main(["quantize", str(t / "m.onnx"), "-o", str(t / "ov" / "m.xml"), "--backend", "openvino",
                 "--calib-size", "20", "--quiet"]) == 0
    base, ev = json.loads((t / "base.json").read_text()), json.loads((t / "ev.json").read_text())
    bench0 = lambda p: p["bench"][0]  # noqa: E731
    files = {
        "null-latency": _edited(base, lambda p: bench0(p).update(latency_ms=None)),
        "null-environment": _edited(base, lambda p: p.update(environment=None)),
        "null-result": _edited(base, lambda p: p["bench"].__setitem__(0, None)),
        "zero-latency": _edited(base, lambda p: bench0(p)["latency_ms"].update(
            {k: 0 for k in bench0(p)["latency_ms"]})),
        "one-element-interval": _edited(base, lambda p: bench0(p).update(p50_ci_ms=[1.0])),
        "huge-integer": _edited(base, lambda p: bench0(p).update(batch_size=10 ** 400)),
        "negative-batch": _edited(base, lambda p: bench0(p).update(batch_size=-3)),
        "zero-throughput": _edited(base, lambda p: bench0(p).update(throughput_ips=0)),
        "versions-not-text": _edited(base, lambda p: p["environment"].update(versions={"torch": [1, 2]})),
        "null-eval-results": _edited(ev, lambda p: p["evals"][0].update(results=None)),
        "top1-in-points": _edited(ev, lambda p: p["evals"][0]["results"][0].update(top1=81.0)),
        "zero-images": _edited(ev, lambda p: p["evals"][0]["results"][0].update(n=0)),
    }
    for name, payload in files.items():
        (t / f"{name}.json").write_text(json.dumps(payload))
    payload = json.loads((t / "base.json").read_text())
    twin = copy.deepcopy(payload["bench"][0])
    twin["spec_id"] = "another-file-of-that-name"
    payload["bench"].append(twin)
    (t / "same-label.json").write_text(json.dumps(payload))
    (t / "same-label-v2.json").write_text(json.dumps({**payload, "schema_version": 2}))  # ids hashed paths then
    (t / "base-v2.json").write_text(json.dumps({**base, "schema_version": 2}))
    assert main(["export", "resnet20_cifar10", "-o", str(t / "e.onnx"), "--json", str(t / "export.json"),
                 "--quiet"]) == 0
    assert main(["export", "resnet20_cifar10", "--head", "features", "-o", str(t / "f.onnx"), "--quiet"]) == 0
    assert main(["eval", str(t / "f.onnx"), "--limit", "30", "--json", str(t / "emb.json"), "--quiet"]) == 0
    emb = json.loads((t / "emb.json").read_text())
    emb["embeddings"][0]["results"][0]["map"] -= 0.5  # 50 points of mAP lost
    (t / "emb-drop.json").write_text(json.dumps(emb))
    evil = json.loads((t / "base.json").read_text())
    evil["bench"][0]["model"] = "[click me](javascript:alert(1))"
    evil["warnings"] = ["fine\n# Owned heading\n> quoted", "**loud** `code`"]
    (t / "evil.json").write_text(json.dumps(evil))
    (t / "loose").mkdir()
    for cls in ("airplane", "cat"):
        shutil.copytree(t / "imgs" / cls, t / "loose" / cls)
    (t / "loose" / "stray.jpg").write_bytes(sorted((t / "imgs" / "ship").iterdir())[0].read_bytes())
    from PIL import Image

    for name in ("strip", "sparse", "nested"):
        for cls in ("a", "b"):
            (t / name / cls).mkdir(parents=True)
        (t / name / "b" / "ok.png").write_bytes(sorted((t / "imgs" / "cat").iterdir())[0].read_bytes())
    Image.new("RGB", (200_000, 1), "red").save(t / "strip" / "a" / "strip.png")  # 204 M pixels at 32 px high
    with open(t / "sparse" / "a" / "huge.jpg", "wb") as f:  # 8 GiB, nearly nothing on disk
        f.write(b"\xff\xd8\xff")
        f.seek(8 * 2**30)
        f.write(b"\0")
    deep = t / "nested" / "a"
    for _ in range(1100):
        deep = deep / "d"
        deep.mkdir()
    (deep / "deep.png").write_bytes((t / "nested" / "b" / "ok.png").read_bytes())
    assert main(["export", "resnet56_cifar10", "-o", str(t / "r56.onnx"), "--quiet"]) == 0
    assert main(["quantize", str(t / "r56.onnx"), "-o", str(t / "r56.int8.onnx"), "--calib-size", "20", "--quiet"]) == 0
    (t / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    text = json.dumps(base)
    (t / "deep-inside.json").write_text(text[:-1] + ', "extra": ' + "[" * 5000 + "]" * 5000 + "}")
    os.mkfifo(t / "fifo")
    yield t
    _remove_deep(t / "nested")  # shutil.rmtree (pytest's clean-up) recurses once per level: 1,100 is too deep


def _remove_deep(root: Path) -> None:
    """Delete a folder tree bottom-up with a stack (no recursion)."""
    folders, stack = [], [root]
    while stack:
        folder = stack.pop()
        folders.append(folder)
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                stack.append(entry)
            else:
                entry.unlink()
    for folder in reversed(folders):
        folder.rmdir()


# (id, argv, exit code, message fragment, files that must stay unchanged)
CASES = [
    # lost data: an output is never an input, whatever its position; never a file inside a folder read
    ("sensitivity-json-over-int8", ["sensitivity", "{t}/m.onnx", "{t}/q.onnx", "--json", "{t}/q.onnx", "--force"],
     1, "is the same file as the input", ["q.onnx"]),
    ("eval-json-over-an-image", ["eval", "{t}/m.onnx", "--data", "{t}/imgs", "--json", "{img}", "--force"], 1,
     "which this command reads", ["{img}"]),
    ("quantize-over-a-calibration-image", ["quantize", "{t}/m.onnx", "-o", "{img}", "--calib-data", "{t}/imgs",
                                           "--force"], 1, "which this command reads", ["{img}"]),
    ("embed-over-an-image", ["embed", "{t}/m.onnx", "{t}/imgs", "-o", "{img}", "--force"], 1,
     "which this command reads", ["{img}"]),
    ("json-over-the-ir-weights", ["bench", "{t}/ov/m.xml", "--backend", "openvino", "--json", "{t}/ov/m.bin",
                                  "--force"], 1, "is the same file as the input", ["ov/m.bin"]),
    # refused before any work (the move into place would refuse it too, after the whole bench)
    ("json-over-a-fifo", ["bench", "{t}/m.onnx", *QUICK, "--json", "{t}/fifo", "--force"], 1,
     "is not a regular file (a FIFO, a device or a socket): choose a file path", []),
    # result files: one typed schema before anything reads them
    *[(f"report-{name}", ["report", f"{{t}}/{name}.json", "-o", "{t}/out.html"], 1, fragment, [])
      for name, fragment in [
          ("null-latency", "BenchResult.latency_ms: expected an object (LatencyStats), got null"),
          ("null-environment", "Record.environment: expected an object (Environment), got null"),
          ("null-result", "Record.bench: expected an object (BenchResult), got null"),
          ("zero-latency", "LatencyStats.mean: expected positive, got 0"),
          ("one-element-interval", "BenchResult.p50_ci_ms: expected an interval"),
          ("huge-integer", "BenchResult.batch_size: expected a finite number"),
          ("negative-batch", "BenchResult.batch_size: expected positive, got -3"),
          ("zero-throughput", "BenchResult.throughput_ips: expected positive"),
          ("versions-not-text", "Environment.versions: expected text"),
          ("null-eval-results", "EvalSection.results: expected a value, got null"),
          ("top1-in-points", "EvalResult.top1: expected a fraction (0 to 1), got 81.0"),
          ("zero-images", "EvalResult.n: expected positive, got 0"),
          ("deep", "nested too deeply"),
          ("deep-inside", "nested too deeply"),
      ]],
    # silent acceptance
    ("gate-nan-tolerance", ["compare-runs", "{t}/base.json", "{t}/base.json", "--latency-tolerance", "nan"], 1,
     "--latency-tolerance must be a finite number", []),
    ("gate-negative-tolerance", ["compare-runs", "{t}/base.json", "{t}/base.json", "--accuracy-tolerance", "-1"], 1,
     "--accuracy-tolerance must be a finite number of zero or more", []),
    ("gate-two-results-one-label", ["compare-runs", "{t}/base-v2.json", "{t}/same-label-v2.json"], 1,
     "the current holds two results for", []),
    ("gate-export-only", ["compare-runs", "{t}/export.json", "{t}/export.json"], 1,
     "the baseline holds no timing or accuracy results", []),
    ("gate-embedding-map-drop", ["compare-runs", "{t}/emb.json", "{t}/emb-drop.json"], 1, "points of mAP", []),
    ("data-images-beside-class-folders", ["eval", "{t}/m.onnx", "--data", "{t}/loose", "--json", "{t}/o.json"], 1,
     "holds 1 image(s) beside its class sub-folders", []),
    ("tune-on-test-images-by-path", ["quantize", "{t}/m.onnx", "-o", "{t}/o.onnx", "--max-drop", "1", "--data",
                                     "{t}/imgs"], 1, "images of the CIFAR-10 test set", []),
    ("final-figures-on-validation-images", ["quantize", "{t}/m.onnx", "-o", "{t}/o.onnx", "--max-drop", "1",
                                            "--limit", "50", "--test-data", "cifar10-val"], 1,
     "images of cifar10-val, which tuning uses", []),
    ("exclude-everything", ["quantize", "{t}/m.onnx", "-o", "{t}/o.onnx", "--exclude", "*", "--calib-size", "20"], 1,
     "nothing would be quantized", []),
    # images and folders that are small on disk and large to read, or deep
    ("image-too-wide-to-resize", ["eval", "{t}/m.onnx", "--data", "{t}/strip", "--json", "{t}/o.json"], 1,
     "resizing its shorter side to 32 would make it", []),
    ("sparse-8-gib-image", ["eval", "{t}/m.onnx", "--data", "{t}/sparse", "--json", "{t}/o.json"], 1,
     "8.0 GiB on disk", []),
    ("sensitivity-of-another-models-int8", ["sensitivity", "{t}/m.onnx", "{t}/r56.int8.onnx", "--limit", "20"], 1,
     "was not quantized from this float model (its layers differ", []),
    ("gate-zero-latency-baseline", ["compare-runs", "{t}/zero-latency.json", "{t}/base.json"], 1,
     "LatencyStats.mean: expected positive", []),
    ("gate-one-element-interval", ["compare-runs", "{t}/base.json", "{t}/one-element-interval.json"], 1,
     "expected an interval", []),
    ("gate-huge-integer", ["compare-runs", "{t}/huge-integer.json", "{t}/base.json"], 1, "expected a finite number",
     []),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_catalog_round2(cli, hostile2, case):
    _, argv, code, message, unchanged = case
    img = sorted((hostile2 / "imgs" / "cat").iterdir())[0]
    resolve = lambda a: a.format(t=hostile2, img=img)  # noqa: E731
    before = {name: _digest(Path(resolve(name)) if "{" in name else hostile2 / name) for name in unchanged}
    r = cli(*[resolve(a) for a in argv])
    assert r.code == code, r.err
    if message is not None:
        lines = [line for line in r.err.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), r.err
        assert message in r.err, r.err
    assert "Traceback" not in r.err + r.out and "internal error" not in r.err
    assert {name: _digest(Path(resolve(name)) if "{" in name else hostile2 / name) for name in unchanged} == before
    assert stat.S_ISFIFO(os.stat(hostile2 / "fifo").st_mode)  # the FIFO is still a FIFO
    assert not (hostile2 / "out.html").exists() and not (hostile2 / "o.json").exists()
    assert not (hostile2 / "o.onnx").exists()


def test_a_device_node_is_never_replaced(cli, hostile2):
    if not os.access("/dev/null", os.W_OK):
        pytest.skip("/dev/null is not writable here")
    r = cli("bench", hostile2 / "m.onnx", *QUICK, "--json", "/dev/null", "--force")
    assert r.code == 1 and "not a regular file" in r.err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_file_that_appears_while_a_command_runs_is_kept(tmp_path):
    dest = tmp_path / "out.json"
    with pytest.raises(RnoptError, match="appeared while this command ran"):
        with atomic_path(dest) as tmp:
            tmp.write_text("rnopt's output")
            dest.write_text("the user's file")  # appears during the long step
    assert dest.read_text() == "the user's file" and list(tmp_path.iterdir()) == [dest]
    with replacing(), atomic_path(dest) as tmp:  # --force: replaced
        tmp.write_text("rnopt's output")
    assert dest.read_text() == "rnopt's output" and list(tmp_path.iterdir()) == [dest]


def test_the_api_refuses_to_overwrite_unless_forced(tmp_path, fp32_onnx):
    out = tmp_path / "m.onnx"
    out.write_text("the user's file")
    with pytest.raises(RnoptError, match="already exists"):
        rnopt.export("resnet20_cifar10", out)
    with pytest.raises(RnoptError, match="already exists"):
        rnopt.optimize(fp32_onnx, out)
    with pytest.raises(RnoptError, match="already exists"):
        rnopt.quantize(fp32_onnx, out, rnopt.QuantizeConfig(calib_size=10))
    assert out.read_text() == "the user's file"
    rnopt.export("resnet20_cifar10", out, force=True)
    assert out.read_bytes()[:2] != b"th"
    with pytest.raises(RnoptError, match="same file as the input"):
        rnopt.optimize(out, out, force=True)


def test_the_api_embed_refuses_to_overwrite_unless_forced(tmp_path, image_folder):
    spec = rnopt.plan([rnopt.artifact("resnet20_cifar10", rnopt.ModelOptions(head="features"))], ["onnxruntime"])[0]
    out = tmp_path / "v.npz"
    out.write_text("the user's file")
    with pytest.raises(RnoptError, match="already exists"):
        rnopt.embed(spec, str(image_folder), out)
    assert out.read_text() == "the user's file"
    rnopt.embed(spec, str(image_folder), out, force=True)
    assert out.read_bytes()[:2] == b"PK"  # an .npz


@pytest.mark.parametrize("make, message", [
    (lambda: rnopt.VariantSpec.from_dict({"artifact": {"source": 5}, "runtime": "onnxruntime"}),
     "ArtifactSpec.source: expected text"),
    (lambda: rnopt.VariantSpec.from_dict({"artifact": {"source": "resnet20_cifar10"}, "runtime": 5}),
     "unknown backend 5"),
    (lambda: rnopt.BenchConfig(batch_sizes=[1.5]), "BenchConfig.batch_sizes: expected a whole number"),
    (lambda: rnopt.BenchConfig(batch_sizes="8"), "BenchConfig.batch_sizes: expected a list"),
    (lambda: rnopt.BenchConfig(iterations="x"), "BenchConfig.iterations: expected a finite number"),
    (lambda: rnopt.BenchConfig(min_time=float("nan")), "--min-time, --max-time and --target-ci must be finite"),
    (lambda: rnopt.AccuracyControl(max_drop="x"), "AccuracyControl.max_drop: expected a finite number"),
    (lambda: rnopt.TuneOptions(threads="2"), "TuneOptions.threads: expected a finite number"),
    (lambda: rnopt.RunOptions(backends="onnxruntime"), "RunOptions.backends: expected a list"),
    (lambda: rnopt.artifact(5), "artifact() takes a built-in model name"),
    (lambda: rnopt.plan([5]), "plan() takes ArtifactSpecs"),
])
def test_public_constructors_refuse_bad_values_with_rnopt_error(make, message):
    with pytest.raises(RnoptError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_paths_given_as_text_are_paths():
    assert rnopt.TuneOptions(output="somewhere").output == Path("somewhere")
    assert rnopt.RunOptions(output="elsewhere").output == Path("elsewhere")


def test_catalog_round2_is_large_enough():
    assert len(CASES) >= 20


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_while_export_unwinds_changes_nothing(tmp_path, signum):
    """The first signal unwinds (temporary file removed); a second one right behind it must not interrupt that."""
    cache = tmp_path / "cache"  # empty: the export is built (through the artifact store), not taken from a cache
    proc = subprocess.Popen([sys.executable, "-m", "rnopt", "export", "resnet20_cifar10", "-o", str(tmp_path / "m.onnx"),
                             "--quiet"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RNOPT_CACHE_DIR": str(cache)})
    deadline = time.monotonic() + 240
    while not any((cache / "artifacts").glob(".*")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    for _ in range(3):
        proc.send_signal(signum)
        time.sleep(0.01)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["cache"] and not any((cache / "artifacts").iterdir())


def test_markdown_from_a_result_file_stays_text(cli, hostile2, tmp_path):
    assert cli("report", hostile2 / "evil.json", "-o", tmp_path / "r.md").code == 0
    md = (tmp_path / "r.md").read_text()
    assert not re.search(r"(?<!\\)\]\(", md) and "\\[click me\\](javascript:alert(1))" in md
    assert not any(line.startswith(("# Owned", "> quoted")) for line in md.splitlines())
    assert "**loud**" not in md and "\\*\\*loud\\*\\*" in md


def test_a_16_bit_image_reads_as_its_8_bit_self(tmp_path):
    """Pillow's own conversion clips 16-bit values above 255: the picture turned almost white."""
    import numpy as np
    from PIL import Image

    from rnopt.data.preprocess import preprocess
    from rnopt.preprocessing import Preprocessing

    rng = np.random.default_rng(0)
    eight = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    Image.fromarray(eight).save(tmp_path / "8.png")
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "16.png")
    assert Image.open(tmp_path / "16.png").mode.startswith("I;16")
    spec = Preprocessing(32, 32)
    a, b = (preprocess(Image.open(tmp_path / name), spec) for name in ("8.png", "16.png"))
    assert np.abs(a - b).max() < 1e-5


def test_hidden_folders_are_not_data(tmp_path):
    from rnopt.data import load_dataset

    source = sorted((Path(resources.files("rnopt.data")) / "assets").glob("*.zip"))[0]
    with zipfile.ZipFile(source) as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")][:3]
        for i, name in enumerate(names):
            (tmp_path / f"{i}.jpg").write_bytes(zf.read(name))
        (tmp_path / ".thumbnails").mkdir()
        (tmp_path / ".thumbnails" / "t.jpg").write_bytes(zf.read(names[0]))
    flat = load_dataset(str(tmp_path), unlabelled_ok=True)
    assert len(flat) == 3 and flat.class_names == ["unlabelled"]


def test_a_limit_holds_every_class(cli):
    from collections import Counter

    from rnopt.data import load_dataset

    for limit in (10, 25, 1000):
        counts = Counter(label for label, _, _ in load_dataset("cifar10").subset(limit).samples)
        assert len(counts) == 10 and max(counts.values()) - min(counts.values()) <= 1


def test_retrieval_with_nothing_to_find_is_undefined_not_zero():
    import numpy as np

    from rnopt.accuracy import RetrievalMAP
    from rnopt.retrieval import search

    vectors, labels = np.eye(4, dtype=np.float32), np.arange(4)  # one image per class
    found = search(vectors, labels)
    assert found.average_precision is None and found.precision_at == {}
    with pytest.raises(RnoptError, match="mAP is undefined"):
        RetrievalMAP().score(vectors, labels, vectors)
    # a query alone in its class is left out; the others are scored as usual
    found = search(np.array([[1, 0], [1, 0.1], [0, 1]], np.float32), np.array([0, 0, 1]))
    assert found.average_precision == pytest.approx(1.0) and found.precision_at[1] == pytest.approx(1.0)


@pytest.mark.parametrize("argv, message", [
    (["sensitivity", "{t}/m.onnx", "--measure", "mAP", "--limit", "20"], "mAP applies to embedding models"),
    (["sensitivity", "{t}/f.onnx", "--measure", "top-1", "--limit", "20"], "top-1 applies to classifiers"),
    (["quantize", "{t}/f.onnx", "-o", "{t}/o.onnx", "--max-drop", "1", "--measure", "top-1"],
     "top-1 applies to classifiers"),
    (["quantize", "{t}/m.onnx", "-o", "{t}/o.onnx", "--min-cosine", "0.99", "--measure", "top-1"],
     "--measure top-1 does not go with it"),
])
def test_a_measure_means_the_same_in_every_command(cli, hostile2, argv, message):
    r = cli(*[a.format(t=hostile2) for a in argv])
    assert r.code == 1 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (hostile2 / "o.onnx").exists()


def test_a_failed_run_leaves_no_folder_it_made(tmp_path):
    from rnopt.pipeline import run_folder

    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        with run_folder(tmp_path / "kept" / "a" / "b", "m") as out:
            (out / "model.onnx").write_text("half")
            raise RuntimeError("a step failed")
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"] and list((tmp_path / "kept").iterdir()) == []


def test_library_warnings_show_control_characters(cli, monkeypatch):
    import warnings

    import rnopt.cli.models

    monkeypatch.setattr(rnopt.cli.models, "run", lambda args: warnings.warn("font \x1b[31mred\x1b[0m missing"))
    r = cli("models")
    assert r.code == 0 and "\x1b" not in r.err and "warning: font \\x1b[31mred" in r.err


def test_two_files_of_one_name_join_by_their_ids(cli, hostile2, tmp_path):
    """Schema 3: two variants with the same label are told apart by their ids; neither is dropped."""
    out = tmp_path / "gate.json"
    r = cli("compare-runs", hostile2 / "base.json", hostile2 / "same-label.json", "--json", out)
    assert r.code == 0, r.err
    rows = [row for row in json.loads(out.read_text())["comparison"]["rows"] if row["metric"] == "p50 latency ms"]
    assert sorted(row["verdict"] for row in rows) in (["new", "same"], ["new", "within noise"])


def test_a_folder_nested_1100_levels_deep_is_read(cli, hostile2, tmp_path):
    out = tmp_path / "e.json"
    r = cli("eval", hostile2 / "m.onnx", "--data", hostile2 / "nested", "--json", out, "--quiet")
    assert r.code == 0, r.err
    assert json.loads(out.read_text())["evals"][0]["results"][0]["n"] == 2  # the deep image and the shallow one


@pytest.mark.parametrize("argv, message", [
    (["bench", "{t}/m.onnx", "--hint", "throughput"], "--hint applies to openvino, which this command does not run"),
    (["bench", "resnet20_cifar10", "--backend", "torch", "--ort-spin", "off"], "--ort-spin applies to onnxruntime"),
    (["eval", "{t}/m.onnx", "--channels-last", "--limit", "10"], "--channels-last applies to torch"),
])
def test_a_runtime_flag_for_a_runtime_not_run_is_refused_not_ignored(cli, hostile2, argv, message):
    r = cli(*[a.format(t=hostile2) for a in argv], "--quiet")
    assert r.code == 1 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_tune_stopped_by_repeated_sigterm_leaves_nothing_not_even_its_parents(tmp_path):
    """The search folder and the folders `--output a/b/c` made go, even with signals arriving during the clean-up."""
    out = tmp_path / "a" / "b" / "c"
    proc = subprocess.Popen([sys.executable, "-m", "rnopt", "tune", "--backend", "onnxruntime", "--recipe", "minmax",
                             "--limit", "100", "--iterations", "5", "--min-time", "0", "--output", str(out), "--quiet"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out.exists() and any(out.iterdir()) and any(next(out.iterdir()).glob("*.onnx"))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    for _ in range(3):
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.02)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == [], "the search folder or a parent it made was left"

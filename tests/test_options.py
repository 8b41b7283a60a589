"""The command line's options are generated from the API's typed configs: one declaration per option, so a flag
sets exactly the config field the API takes, and a command's defaults are the API's."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rnopt.artifacts import ModelOptions
from rnopt.bench import RUN_BENCH, TUNE_BENCH, BenchConfig
from rnopt.cli import build_parser
from rnopt.cli.common import _accuracy_control, _bench_config, _model_options, _quantize_options, _recipe, config_values
from rnopt.errors import RnoptError
from rnopt.options import flag_fields
from rnopt.quantization import AccuracyControl, QuantRecipe
from rnopt.configs import (CompareConfig, EmbedConfig, EvalConfig, ExportConfig, OptimizeConfig, PlanConfig, QuantizeConfig, RunOptions,
                           SensitivityConfig, TuneOptions)


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("command, classes", [
    ("export", (ModelOptions, ExportConfig)),
    ("optimize", (OptimizeConfig,)),
    ("quantize", (QuantizeConfig, QuantRecipe, AccuracyControl)),
    ("sensitivity", (SensitivityConfig, QuantRecipe)),
    ("bench", (ModelOptions, PlanConfig, BenchConfig)),
    ("eval", (ModelOptions, PlanConfig, EvalConfig)),
    ("embed", (ModelOptions, PlanConfig, EmbedConfig)),
    ("run", (RunOptions, BenchConfig)),
    ("tune", (TuneOptions, BenchConfig, AccuracyControl)),
])
def test_every_option_a_config_declares_is_a_flag_of_the_commands_that_take_it(command, classes, capsys):
    with pytest.raises(SystemExit):
        parse(command, "--help")
    shown = capsys.readouterr().out
    flags = [f.metadata["flag"] for cls in classes for f in flag_fields(cls) if f.name != "sweep_limit"]
    assert flags and [flag for flag in flags if flag not in shown] == []


def test_a_quantize_command_line_gives_the_config_the_api_takes():
    args = parse("quantize", "m.onnx", "-o", "q.onnx", "--backend", "openvino", "--calib-size", "64",
                 "--per-tensor", "--method", "percentile", "--percentile", "99.9", "--no-reduce-range",
                 "--exclude", "/conv1/*,*Gemm*", "--exclude", "/layer3/*", "--range", "relu_3=0,6",
                 "--max-drop", "0.5", "--drop-type", "relative", "--limit", "100")
    config = QuantizeConfig(**_quantize_options(args), recipe=_recipe(args), control=_accuracy_control(args))
    assert config == QuantizeConfig(
        toolkit="openvino", calib_size=64,
        recipe=QuantRecipe("percentile", 99.9, per_channel=False, reduce_range=False,
                           exclude=("/conv1/*", "*Gemm*", "/layer3/*"), ranges=(("relu_3", 0.0, 6.0),)),
        control=AccuracyControl(max_drop=0.5, drop_type="relative", limit=100))


def test_no_flag_given_means_the_apis_defaults():
    args = parse("quantize", "m.onnx", "-o", "q.onnx")
    assert QuantizeConfig(**_quantize_options(args), recipe=_recipe(args), control=_accuracy_control(args)) \
        == QuantizeConfig()
    assert ExportConfig(**config_values(parse("export", "resnet20_cifar10", "-o", "m.onnx"), ExportConfig,
                                        "export.")) == ExportConfig()
    assert OptimizeConfig(**config_values(parse("optimize", "m.onnx", "-o", "f.onnx"), OptimizeConfig)) \
        == OptimizeConfig()
    assert _model_options(parse("bench", "resnet20_cifar10")) == ModelOptions()
    # each command's timing defaults are the API's (`rnopt.run` and `rnopt.tune` time as the commands do)
    assert _bench_config(parse("run")) == RUN_BENCH
    assert _bench_config(parse("tune")) == TUNE_BENCH
    assert _bench_config(parse("bench", "m.onnx")) == BenchConfig(memory=True)


def test_the_timing_flags_set_the_fields_with_their_units():
    config = _bench_config(parse("run", "--batch-size", "1,4", "--warmup", "0", "--target-ci", "5", "--max-time",
                                 "12", "--no-memory"))
    assert config == dataclasses.replace(RUN_BENCH, batch_sizes=[1, 4], warmup=0, target_ci=0.05, max_time=12.0,
                                         memory=False)
    # a fixed length asked for turns the default adaptive length off, as does --target-ci 0
    assert _bench_config(parse("run", "--iterations", "20")).target_ci is None
    assert _bench_config(parse("run", "--target-ci", "0")).target_ci is None


def test_a_bound_flag_without_a_bound_is_refused_by_name():
    with pytest.raises(RnoptError, match="--limit applies to accuracy-aware int8"):
        _accuracy_control(parse("quantize", "m.onnx", "-o", "q.onnx", "--limit", "10"))
    # tune always has a bound: 1 point unless one is given
    assert _accuracy_control(parse("tune"), default_max_drop=1.0) == AccuracyControl(max_drop=1.0)


def test_run_and_tune_command_lines_give_the_options_the_api_takes():
    from rnopt.cli.run import run_options
    from rnopt.cli.tune import tune_options

    assert run_options(parse("run")) == RunOptions()
    assert tune_options(parse("tune")) == TuneOptions()
    options = run_options(parse("run", "--model", "resnet56_cifar10", "--limit", "500", "--backend", "onnxruntime,torch",
                                "--max-drop", "0.5", "--val-data", "val/", "--head", "features", "--output", "out"))
    assert options == RunOptions("resnet56_cifar10", output=Path("out"), eval_limit=500,
                                 backends=["onnxruntime", "torch"], head="features",
                                 accuracy=AccuracyControl(max_drop=0.5, data="val/"))
    options = tune_options(parse("tune", "--objective", "throughput", "--recipe", "minmax,entropy",
                                 "--no-accuracy-aware", "--speed-tolerance", "3", "--min-cosine", "0.98"))
    assert options == TuneOptions(objective="throughput", recipes=["minmax", "entropy"], accuracy_aware=False,
                                  speed_tolerance=3.0, control=AccuracyControl(min_cosine=0.98))
    assert options.bench.batch_sizes == [32]  # the objective's batch
    with pytest.raises(RnoptError, match="--val-data applies to accuracy-aware int8"):
        run_options(parse("run", "--val-data", "val/"))


def test_which_variants_and_how_they_are_evaluated_come_from_the_configs():
    args = parse("eval", "m.onnx", "--backend", "onnxruntime,torch", "--precision", "fp32,bf16", "--threads", "2",
                 "--limit", "300", "--batch-size", "50")
    assert PlanConfig(**config_values(args, PlanConfig)) == PlanConfig(["onnxruntime", "torch"], ["fp32", "bf16"],
                                                                       threads=2)
    assert EvalConfig(**config_values(args, EvalConfig)) == EvalConfig(limit=300, batch_size=50)
    assert EvalConfig(**config_values(parse("eval", "m.onnx"), EvalConfig)) == EvalConfig()
    assert PlanConfig(**config_values(parse("bench", "m.onnx"), PlanConfig)) == PlanConfig()


def test_compare_runs_tolerances_are_given_in_percent_and_points_and_kept_as_fractions():
    args = parse("compare-runs", "a.json", "b.json", "--latency-tolerance", "25", "--accuracy-tolerance", "1")
    assert CompareConfig(**config_values(args, CompareConfig)) == CompareConfig(latency_tolerance=0.25,
                                                                              accuracy_tolerance=0.01)
    assert CompareConfig(**config_values(parse("compare-runs", "a.json", "b.json"), CompareConfig)) == CompareConfig()


def test_a_generated_output_option_is_not_read_as_an_input(tmp_path):
    """run's --output (dest run.output) is where it writes: a --json inside it is no file of a folder it reads."""
    from rnopt.cli.common import _inputs

    files, folders = _inputs(parse("run", "--output", str(tmp_path), "--val-data", str(tmp_path / "val")))
    assert tmp_path not in folders and files == []

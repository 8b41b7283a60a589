"""Break each decision function on purpose, one plausible bug at a time, and check that its test fails.

    .venv/bin/python scripts/mutations.py            # every mutation (a few minutes)
    .venv/bin/python scripts/mutations.py drift eval # those whose name contains a word

Each mutation replaces one exact piece of source text, runs the tests named for it, and restores the file
(also on Ctrl-C). "caught" means the tests failed with the mutation in place; the script exits 1 if any
mutation survives or no longer applies (the source changed: update the mutation). README "Development" lists them.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


D = "tests/test_decisions.py::"
C = "tests/test_catalog_round2.py::"
MUTATIONS = [
    # evaluation
    Mutation("eval: every model scored on the reference's logits", "rnopt/evaluation.py",
             "            _score(tally, _scores(row.label, out, len(labels)), labels)",
             "            _score(tally, _scores(row.label, logits[0], len(labels)), labels)",
             (D + "test_each_model_is_scored_on_its_own_outputs",)),
    Mutation("eval: top-5 counted as top-1", "rnopt/evaluation.py",
             "tally.top5 += int((top == labels[:, None]).any(1).sum())",
             "tally.top5 += int((logits.argmax(1) == labels).sum())",
             (D + "test_each_model_is_scored_on_its_own_outputs",)),
    Mutation("embeddings: every model's retrieval from the reference's vectors", "rnopt/evaluation.py",
             "found = [search(e, labels) for e in embeddings]", "found = [search(embeddings[0], labels) for e in embeddings]",
             (D + "test_each_embedding_model_is_scored_on_its_own_vectors",)),
    Mutation("retrieval: an image is its own nearest neighbour", "rnopt/retrieval.py",
             "        similarity[np.arange(len(rows)), rows] = -np.inf  # not its own neighbour\n", "",
             (D + "test_retrieval_measures_on_hand_made_vectors",)),
    # accuracy-aware int8
    Mutation("accuracy-aware: the least sensitive group reverted first", "rnopt/quantization/accuracy_aware.py",
             "return sorted(layers, key=QuantizerSensitivity.cheap_rank)",
             "return sorted(layers, key=QuantizerSensitivity.cheap_rank, reverse=True)",
             (D + "test_the_most_sensitive_group_goes_back_to_float_first",)),
    Mutation("accuracy-aware: stops after one step whatever the accuracy", "rnopt/quantization/accuracy_aware.py",
             "        if kept:\n            state = _State([*state.float_nodes, *added], score, trial)\n",
             "        if kept:\n            state = _State([*state.float_nodes, *added], score, trial)\n        break\n",
             (D + "test_the_revert_loop_keeps_only_improving_steps_until_the_bound_holds",)),
    Mutation("accuracy-aware: a step kept that does not improve", "rnopt/quantization/accuracy_aware.py",
             "kept = score > state.score", "kept = score >= state.score",
             (D + "test_the_revert_loop_keeps_only_improving_steps_until_the_bound_holds",)),
    Mutation("accuracy-aware: the test-set score of the result copied from float", "rnopt/quantization/base.py",
             "        report.test_score = (measure.score(self.outputs(final, test.images), test.labels, reference)",
             "        report.test_score = (report.test_float_score",
             (D + "test_test_figures_score_each_model_on_the_test_data",)),
    Mutation("accuracy-aware: the revert decided on the test set", "rnopt/api.py",
             "    validation = validation_set(meta, config.control.data, config.control.limit)",
             "    validation = validation_set(meta, config.control.test_set(meta), config.control.limit, allow_test=True)",
             ("tests/test_int8_trust.py::test_accuracy_aware_onnxruntime_reverts_exactly_the_damaged_layer",)),
    Mutation("accuracy-aware: max_steps ignored", "rnopt/quantization/accuracy_aware.py",
             " or (max_steps is not None and len(steps) >= max_steps):", ":",
             (D + "test_the_revert_loop_stops_at_max_steps_and_skips_excluded_nodes",)),
    # bounds
    Mutation("bound: relative drop not divided by the reference", "rnopt/accuracy.py",
             "return (reference - candidate) / reference if reference else 0.0",
             "return reference - candidate", (D + "test_bounds_in_both_units_and_their_inverse",)),
    Mutation("bound: the other operand (candidate - reference)", "rnopt/accuracy.py",
             "        return reference - candidate\n", "        return candidate - reference\n",
             (D + "test_bounds_in_both_units_and_their_inverse",)),
    Mutation("NNCF: the bound given in points", "rnopt/quantization/openvino.py",
             "max_drop=bound.limit,", "max_drop=bound.max_drop,",
             (D + "test_nncf_is_given_the_bound_in_its_own_units",)),
    Mutation("bound: a points bound not made a fraction", "rnopt/accuracy.py",
             'in_points = self.drop_type == "relative" or MEASURES[self.measure].in_points',
             'in_points = self.drop_type == "relative"', (D + "test_bounds_in_both_units_and_their_inverse",)),
    Mutation("NNCF: a logged drop scaled to points", "rnopt/quantization/openvino.py",
             "steps[-1].drop = drop  # a fraction, as rnopt's", "steps[-1].drop = drop * 100",
             (D + "test_nncf_logged_drops_come_back_in_rnopt_units",)),
    # the explicit verbs through the store
    Mutation("store: optimize fused beside the store, as before recipes", "rnopt/api.py",
             "    artifact = artifact_for(str(source)).then(optimize_step(config.level))\n",
             "    from rnopt.fusion import optimize_model\n    with replacing(force):\n        return Record("
             "\"optimize\", optimizations=[optimize_model(source, output, config.level)])\n",
             ("tests/test_recipes.py::test_the_explicit_verbs_build_their_files_through_the_store",)),
    Mutation("calibration: histogram methods fed a short last batch", "rnopt/quantization/onnxruntime.py",
             "    return next(size for size in range(min(CALIB_BATCH, images), 0, -1) if images % size == 0)",
             "    return CALIB_BATCH",
             ("tests/test_recipes.py::test_the_explicit_verbs_build_their_files_through_the_store",)),
    # one typed record (issue "recipe artifacts" item 5)
    Mutation("record: schema-4 scores left in points", "rnopt/results.py",
             "    return _scores_as_fractions(payload)", "    return payload",
             ("tests/test_record.py::test_older_records_are_read_with_every_accuracy_figure_a_fraction",)),
    Mutation("record: a relative drop of schema 4 left in %", "rnopt/results.py",
             '            aware = scaled(aware, ("final_drop", "max_drop"), m, relative)',
             '            aware = scaled(aware, ("final_drop", "max_drop"), m)',
             ("tests/test_record.py::test_older_records_are_read_with_every_accuracy_figure_a_fraction",)),
    Mutation("record: a score shown as the fraction it is stored as", "rnopt/report/tables.py",
             'return f"{value:.4f}" if measure == "cosine" else f"{value * 100:.2f}"',
             'return f"{value:.4f}"', ("tests/test_record.py::test_a_record_saves_and_renders_itself",)),
    Mutation("record: a spec entry's stored id trusted", "rnopt/results.py",
             '    if "id" in entry and entry["id"] != spec.id:', '    if False:',
             ("tests/test_recipes.py::test_build_writes_a_specs_file_into_a_folder_and_refuses_to_replace_it",)),
    # sensitivity
    Mutation("sensitivity: only the first 10 activations analysed", "rnopt/quantization/sensitivity.py",
             "activations = [t for t in quantized_activations(int8_model) if t in norms]",
             "activations = [t for t in quantized_activations(int8_model) if t in norms][:10]",
             ("tests/test_int8_trust.py::test_sensitivity_finds_damage_in_two_stages",)),
    Mutation("sensitivity: ground truth for the best-ranked instead of the worst", "rnopt/quantization/sensitivity.py",
             "    worst = sorted(layers, key=QuantizerSensitivity.cheap_rank)[:top_k]",
             "    worst = sorted(layers, key=QuantizerSensitivity.cheap_rank)[-top_k:]",
             ("tests/test_int8_trust.py::test_sensitivity_finds_damage_in_two_stages",)),
    # statistics
    Mutation("drift: flagged only when things get slower", "rnopt/bench.py",
             "return bool(step and step.significant and abs(step.change) > NOISY_CI)",
             "return bool(step and step.significant and step.change > NOISY_CI)",
             (D + "test_drift_is_flagged_in_both_directions_and_only_beyond_two_percent",)),
    Mutation("drift: the noise threshold ignored", "rnopt/bench.py",
             "return bool(step and step.significant and abs(step.change) > NOISY_CI)",
             "return bool(step and abs(step.change) > 0)",
             (D + "test_drift_is_flagged_in_both_directions_and_only_beyond_two_percent",)),
    Mutation("noise warning: inverted", "rnopt/bench.py",
             "    if result.p50_ci is not None and result.p50_ci > NOISY_CI:\n        warnings.append(f\"noisy",
             "    if result.p50_ci is not None and result.p50_ci < NOISY_CI:\n        warnings.append(f\"noisy",
             (D + "test_the_noise_warning_names_the_wide_intervals_only",)),
    Mutation("noise summary: the narrow ones named", "rnopt/bench.py",
             "imprecise = [r for r in results if r.p50_ci is not None and r.p50_ci > NOISY_CI]",
             "imprecise = [r for r in results if r.p50_ci is not None]",
             (D + "test_the_noise_warning_names_the_wide_intervals_only",)),
    # tune
    Mutation("tune: throughput intervals reversed", "rnopt/search.py",
             "low_a, high_a = (a.throughput_ips * a.latency_ms.p50 / t for t in reversed(a.p50_ci_ms))",
             "low_a, high_a = (a.throughput_ips * a.latency_ms.p50 / t for t in a.p50_ci_ms)",
             (D + "test_throughput_ties_are_found_from_the_latency_intervals",)),
    Mutation("tune: the slowest wins", "rnopt/search.py",
             "    return max(results, key=lambda r: speed(r, objective))",
             "    return min(results, key=lambda r: speed(r, objective))",
             (D + "test_throughput_ties_are_found_from_the_latency_intervals",
              "tests/test_tune.py::test_the_fastest_wins_when_the_timing_tells_it_apart")),
    # the evaluation reference
    Mutation("run: the reference ignores the precision the runtime reported", "rnopt/plan.py",
             "return (ran or {}).get(s.id) or s.precision", "return s.precision",
             ("tests/test_cuda_logic.py::test_the_reference_follows_the_precision_the_runtime_reported",)),
    # outputs and inputs (catalog, round 2)
    Mutation("outputs: inputs read from named options only (positional models missed)", "rnopt/cli/common.py",
             "        if key in _OUTPUT_OPTIONS or key.startswith(\"_\"):",
             "        if key in _OUTPUT_OPTIONS or key.startswith(\"_\") or key not in (\"input\", \"weights\"):",
             (C + "test_catalog_round2[sensitivity-json-over-int8]",)),
    Mutation("outputs: a file inside a folder read may be replaced", "rnopt/cli/common.py",
             "        if inside is not None:", "        if inside is None and False:",
             (C + "test_catalog_round2[eval-json-over-an-image]",)),
    Mutation("outputs: the move replaces whatever appeared meanwhile", "rnopt/fileio.py",
             "    if _replacing.get():\n        if dest.exists()", "    if True:\n        if dest.exists()",
             (C + "test_a_file_that_appears_while_a_command_runs_is_kept",)),
    Mutation("outputs: a FIFO replaced by a regular file", "rnopt/fileio.py",
             "        if not dest.is_file():\n            raise", "        if False:\n            raise",
             (C + "test_catalog_round2[json-over-a-fifo]",)),
    Mutation("API: export overwrites without force", "rnopt/api.py",
             "    check_writable_output(output, force)\n    if config.is_recipe",
             "    force = True\n    check_writable_output(output, force)\n    if config.is_recipe",
             (C + "test_the_api_refuses_to_overwrite_unless_forced",)),
    Mutation("result files: ranges not checked", "rnopt/schema.py",
             "                _check_range(ranges.get(f.name), kwargs[f.name])\n", "",
             (C + "test_catalog_round2[report-zero-latency]", C + "test_catalog_round2[report-top1-in-points]")),
    Mutation("result files: null accepted for a required object", "rnopt/schema.py",
             "    if value is None:\n        raise TypeError(f\"expected {_type_name(hint)}, got null\")",
             "    if value is None:\n        return None",
             (C + "test_catalog_round2[report-null-latency]",)),
    Mutation("API constructors: field types unchecked", "rnopt/schema.py",
             "        try:\n            _convert(hint, value)\n        except (TypeError, ValueError) as exc:\n            raise RnoptError",
             "        try:\n            pass\n        except (TypeError, ValueError) as exc:\n            raise RnoptError",
             (C + "test_public_constructors_refuse_bad_values_with_rnopt_error",)),
    # stable ids and the runtime registry (issue "recipe artifacts")
    Mutation("ids: a file's path hashed into its id", "rnopt/spec.py",
             '            return {"file": self.sha256, **steps}',
             '            return {"file": self.sha256, "path": self.source, **steps}',
             ("tests/test_spec.py::test_the_same_bytes_in_two_folders_or_under_another_name_have_one_id",
              "tests/test_spec.py::test_two_runs_of_the_same_plan_join_every_variant_by_id")),
    Mutation("ids: every option hashed with its default", "rnopt/spec.py",
             '"config": self.config.changed() or None}', '"config": self.config.to_dict()}',
             ("tests/test_spec.py::test_ids_leave_defaults_out_and_normalise_equivalent_spellings",)),
    Mutation("ids: precision None and fp32 two ids", "rnopt/spec.py",
             "precision = None if self.config.runs_model_precision and self.precision == native else self.precision",
             "precision = self.precision",
             ("tests/test_spec.py::test_ids_leave_defaults_out_and_normalise_equivalent_spellings",)),
    Mutation("ids: the class names left out", "rnopt/spec.py",
             '"labels": self.labels_sha256 or _path_digest(self.labels),', '"labels": None,',
             ("tests/test_spec.py::test_built_in_ids_follow_weights_and_class_names_not_their_paths",)),
    Mutation("planner: runtime names hard-coded", "rnopt/plan.py",
             'check_names(runtimes, runtime_names(), "backend")',
             'check_names(runtimes, ("onnxruntime", "openvino", "torch"), "backend")',
             ("tests/test_spec.py::test_a_runtime_added_from_outside_runs_through_the_planner",)),
    Mutation("compare-runs: labels joined even with stable ids", "rnopt/report/compare.py",
             "    by_id = baseline.stable_ids and baseline.id_scheme == current.id_scheme and",
             "    by_id = False and",
             (C + "test_two_files_of_one_name_join_by_their_ids",)),
    Mutation("recipes: where the calibration images were read enters the id", "rnopt/spec.py",
             'settings[key] = settings[key].get("sha256")', "settings[key] = settings[key]",
             ("tests/test_recipes.py::test_recipe_ids_name_content_and_steps_not_places_or_defaults",)),
    Mutation("recipes: the machine's reduce-range left unresolved", "rnopt/quantization/onnxruntime.py",
             "return replace(recipe, reduce_range=reduce_range_here(recipe))", "return recipe",
             ("tests/test_recipes.py::test_recipe_ids_name_content_and_steps_not_places_or_defaults",)),
    Mutation("recipes: other calibration images accepted on a rebuild", "rnopt/recipes.py",
             'if found.sha256 != reference.get("sha256"):', "if False:",
             ("tests/test_recipes.py::test_a_rebuild_that_cannot_give_the_same_bytes_says_why",)),
    Mutation("recipes: OpenVINO's process-wide node counter left in the IR", "rnopt/quantization/openvino.py",
             "    _stable_names(model)\n", "",
             ("tests/test_recipes.py::test_a_tunes_choice_rebuilds_in_a_fresh_process_with_an_empty_cache",)),
    Mutation("store: a half-built entry kept", "rnopt/artifacts.py",
             "        finally:\n            shutil.rmtree(scratch, ignore_errors=True)\n        return outcome",
             "        finally:\n            pass\n        return outcome",
             ("tests/test_recipes.py::test_an_interrupted_build_leaves_no_cache_entry",)),
    Mutation("tune: the speed tolerance ignored", "rnopt/search.py",
             "overlaps(r, best, objective) or within(r, best, objective, tolerance)]",
             "overlaps(r, best, objective)]",
             ("tests/test_tune.py::test_the_speed_tolerance_lets_accuracy_decide_among_near_ties",)),
    Mutation("tune: the tolerance measured from the slowest", "rnopt/search.py",
             "return result.latency_ms.p50 <= best.latency_ms.p50 * (1 + tolerance / 100.0)",
             "return result.latency_ms.p50 >= best.latency_ms.p50 * (1 - tolerance / 100.0)",
             ("tests/test_tune.py::test_the_speed_tolerance_lets_accuracy_decide_among_near_ties",)),
    Mutation("tune across models: pruned by medians alone, not by clearly apart intervals", "rnopt/search.py",
             "    return interval(a)[0] > interval(b)[1]",
             "    return sum(interval(a)) > sum(interval(b))",
             ("tests/test_tune.py::test_pruning_to_each_models_front_never_drops_the_best",)),
    Mutation("tune across models: each judged by its own float reference", "rnopt/search.py",
             "    return [replace(c, drop=bound.drop(best, c.score), met=bound.met(best, c.score))",
             "    return [replace(c)",
             ("tests/test_tune.py::test_across_models_the_recommendation_keeps_the_bound_of_the_best_float_model",)),
    Mutation("tune budget: every screened candidate validated, whatever its speed", "rnopt/search.py",
             "    return speed(screened, objective) >= speed(best, objective) or screened in tied_with_fastest(",
             "    return True or screened in tied_with_fastest(",
             ("tests/test_tune.py::test_a_candidate_is_validated_only_while_it_could_still_win",)),
    Mutation("tune budget: the deadline never checked", "rnopt/search.py",
             "        if self.left() > 0:\n            return False",
             "        if True:\n            return False",
             ("tests/test_tune.py::test_a_spent_budget_stops_the_search_with_the_best_found_so_far_and_says_so",)),
    Mutation("tune knobs: a setting taken on a faster median alone", "rnopt/search.py",
             "    if not _clearly_faster(_as_candidate(result), _as_candidate(reference), objective):\n        return None",
             "    if _gain(result, reference, objective) <= 1:\n        return None",
             ("tests/test_tune.py::test_another_setting_replaces_the_chosen_only_when_clearly_faster",)),
    Mutation("deploy: nearest-neighbour resize instead of bilinear", "rnopt/report/deploy.py",
             "image = image.resize(size, Image.BILINEAR)", "image = image.resize(size, Image.NEAREST)",
             ("tests/test_deploy.py::test_each_runtimes_deploy_script_gives_rnopts_outputs",)),
    Mutation("deploy: the measured spinning setting left out of deploy.py", "rnopt/backends/onnxruntime/config.py",
             "        if not self.spinning:\n            lines +=", "        if False:\n            lines +=",
             ("tests/test_deploy.py::test_deploy_scripts_set_what_was_measured",)),
    Mutation("deploy: OpenVINO's threads left out", "rnopt/backends/openvino/config.py",
             "            properties[\"INFERENCE_NUM_THREADS\"] = str(threads)", "            pass",
             ("tests/test_deploy.py::test_deploy_scripts_set_what_was_measured",)),
    Mutation("data: an unlabelled image in a flat ImageNet folder scored as class 0", "rnopt/data/datasets.py",
             "        if wnid not in index:\n            raise",
             "        if wnid not in index:\n            wnid = classes[0][0]\n        if False:\n            raise",
             ("tests/test_eval.py::test_a_flat_folder_labelled_as_imagenet_ships_it_is_a_labelled_dataset",)),
    Mutation("planner: a default runtime by name, not by what it loads", "rnopt/plan.py",
             "            if fmt in config_class(runtime).loads:\n                return runtime",
             "            return \"onnxruntime\"",
             ("tests/test_spec.py::test_the_default_runtime_follows_what_runtimes_load",)),
    Mutation("planner: OpenVINO given ONNX Runtime's fused file", "rnopt/backends/openvino/config.py",
             'loads: ClassVar[tuple[str, ...]] = ("onnx", "openvino-ir")',
             'loads: ClassVar[tuple[str, ...]] = ("onnx", "onnx-ort", "openvino-ir")',
             ("tests/test_tune.py::test_search_space_runs_each_file_where_it_can_run",)),
    Mutation("progress: the end of a step never told", "rnopt/progress.py",
             "        listener(replace(state, finished=True))", "        pass",
             ("tests/test_api.py::test_progress_reaches_an_api_callback_and_the_module_draws_nothing",)),
    Mutation("tune: random weights tuned on top-1", "rnopt/search.py",
             "    if not model.is_file and not model.sha256:\n        return", "    if False:\n        return",
             ("tests/test_tune.py::test_a_model_without_trained_weights_is_tuned_for_speed_only",)),
    Mutation("tune: speed only compared on labels instead of the float outputs", "rnopt/search.py",
             "bound = AccuracyBound.min_cosine(opts.control.min_cosine or DEFAULT_MIN_COSINE) if why_speed_only else",
             "bound = AccuracyBound() if why_speed_only else",
             ("tests/test_tune.py::test_speed_only_bounds_agreement_with_float_and_says_accuracy_was_not_measured",)),
    Mutation("API: the library's notices left out of the record", "rnopt/api.py",
             "        record.warnings = list(dict.fromkeys(record.warnings + heard))\n        return record\n    return wrapper",
             "        return record\n    return wrapper",
             ("tests/test_api.py::test_the_librarys_notices_come_back_in_the_record",)),
    Mutation("signals: a second signal interrupts the cleanup", "rnopt/cli/__init__.py",
             "    for other in (*_TERMINATING, signal.SIGINT):\n        signal.signal(other, signal.SIG_IGN)\n", "",
             (C + "test_a_second_signal_while_export_unwinds_changes_nothing",)),
    Mutation("tasks: an evaluation task ignores its data's limit", "rnopt/execute/handlers.py",
             "evaluate_variants(variants, task.data.dataset(), task.data.limit,",
             "evaluate_variants(variants, task.data.dataset(), None,",
             ("tests/test_tasks.py::test_an_evaluation_task_gives_the_same_figures_in_a_fresh_process",)),
    Mutation("tasks: a validation task runs the first spec for every spec", "rnopt/execute/handlers.py",
             "np.concatenate([_predict(variant, batch, step) for batch in batches])",
             "np.concatenate([_predict(variants[0], batch, step) for batch in batches])",
             ("tests/test_tasks.py::test_a_validation_task_gives_each_specs_outputs_on_the_images_named_by_content",)),
    Mutation("store: a rebuild's other bytes said without what made each", "rnopt/artifacts.py",
             'return f"recorded with {artifact.built_with}; built here with {here}"',
             'return f"the library versions differ (this machine: {here})"',
             ("tests/test_recipes.py::test_a_rebuild_that_cannot_give_the_same_bytes_says_why",)),
    Mutation("cluster: memory measured in a Ray worker's own process", "rnopt/execute/cluster.py",
             "self._connect().remote(_handle_in_fresh_process if fresh else _handle)", "self._connect().remote(_handle)",
             ("tests/test_cluster.py::test_timing_on_the_cluster_gets_a_node_to_itself_and_memory_a_fresh_process",)),
    Mutation("cluster: a timing task shares its node", "rnopt/execute/cluster.py",
             'return {"num_cpus": node["Resources"]["CPU"], "resources": {TIMING_RESOURCE: 1},',
             'return {"num_cpus": 1, "resources": {},',
             ("tests/test_cluster.py::test_timing_on_the_cluster_gets_a_node_to_itself_and_memory_a_fresh_process",)),
    Mutation("cluster: an evaluation's shard outputs merged out of image order", "rnopt/execute/handlers.py",
             "    outputs = [np.concatenate([p.outputs[i] for p in used]) for i in ids]",
             "    outputs = [np.concatenate([p.outputs[i] for p in used[::-1]]) for i in ids]",
             ("tests/test_tasks.py::test_an_evaluation_put_back_together_from_shards_equals_the_whole",)),
    Mutation("cluster: sensitivity's probe outcomes matched to the wrong tensors", "rnopt/quantization/sensitivity.py",
             "        for row, outputs in zip(worst, probe([row.nodes for row in worst])):",
             "        for row, outputs in zip(worst, probe([row.nodes for row in worst])[::-1]):",
             ("tests/test_cluster.py::test_sensitivity_probes_run_as_cluster_tasks_and_agree_with_a_local_analysis",)),
    Mutation("accuracy-aware: the full int8 test score taken from the model written", "rnopt/quantization/base.py",
             "        full_score = measure.score(self.outputs(full, test.images), test.labels, reference)",
             "        full_score = measure.score(self.outputs(final, test.images), test.labels, reference)",
             (D + "test_test_figures_score_each_model_on_the_test_data",)),
    Mutation("store: a cached export imports PyTorch again", "rnopt/artifacts.py",
             "        def export(path: Path) -> ExportResult:\n",
             "        import torch  # noqa: F401\n\n        def export(path: Path) -> ExportResult:\n",
             ("tests/test_spec.py::test_a_built_in_models_cached_export_loads_on_onnx_runtime_without_torch",)),
    # options generated from the configs
    Mutation("options: a percentage flag not scaled to its fraction field", "rnopt/cli/common.py",
             '            value = value * f.metadata["scale"]', "            pass",
             ("tests/test_options.py::test_the_timing_flags_set_the_fields_with_their_units",)),
    Mutation("options: a repeated flag keeps only its last value", "rnopt/cli/common.py",
             "            items = [x for v in value for x in (v if isinstance(v, list) else [v])]",
             "            items = value[-1] if isinstance(value[-1], list) else value[-1:]",
             ("tests/test_options.py::test_a_quantize_command_line_gives_the_config_the_api_takes",)),
    Mutation("options: a negating flag sets its field to the default", "rnopt/cli/common.py",
             '            p.add_argument(meta["flag"], action="store_const", const=not default, **common)',
             '            p.add_argument(meta["flag"], action="store_const", const=default, **common)',
             ("tests/test_options.py::test_a_quantize_command_line_gives_the_config_the_api_takes",)),
    Mutation("options: tune times at the default objective's batch whatever --objective says", "rnopt/cli/tune.py",
             'batch_sizes=[OBJECTIVES[given.get("objective", TuneOptions.objective)]]',
             "batch_sizes=[OBJECTIVES[TuneOptions.objective]]",
             ("tests/test_options.py::test_run_and_tune_command_lines_give_the_options_the_api_takes",)),
    Mutation("options: rnopt run's timing defaults drift from the API's", "rnopt/cli/run.py",
             "    _add_bench_options(p, RUN_BENCH)", "    _add_bench_options(p, TUNE_BENCH)",
             ("tests/test_options.py::test_no_flag_given_means_the_apis_defaults",)),
]


def run(mutation: Mutation) -> str:
    path = ROOT / mutation.file
    original = path.read_text()
    if original.count(mutation.old) != 1:
        return "NOT APPLIED (the source changed: update the mutation)"
    path.write_text(original.replace(mutation.old, mutation.new))
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                               *mutation.tests], cwd=ROOT, capture_output=True, text=True)
    finally:
        path.write_text(original)
    return "caught" if proc.returncode == 1 else f"SURVIVED (pytest exit {proc.returncode})"


def main(words: list[str]) -> int:
    chosen = [m for m in MUTATIONS if not words or any(w in m.name for w in words)]
    bad = 0
    for mutation in chosen:
        outcome = run(mutation)
        bad += outcome != "caught"
        print(f"{outcome:8}  {mutation.name}  <- {', '.join(t.split('::')[-1] for t in mutation.tests)}", flush=True)
    print(f"{len(chosen) - bad} of {len(chosen)} caught")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

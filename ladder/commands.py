"""The body of each CLI command: read the composed config, call the stage, print a table or JSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omegaconf import OmegaConf

from ladder.report import print_json
from ladder.errors import LadderError, require
from ladder.io import atomic_write_text
from ladder.report import format_table, human
from ladder.rundir import ladder_dir
from ladder.report.tables import format_fit


def _format(cfg) -> str:
    fmt = cfg.get("format", "table")
    require(fmt in ("table", "json"), f"format={fmt!r}: use table or json")
    return fmt


def _plain(node):
    return OmegaConf.to_container(node, resolve=True)


def demo(cfg, overrides) -> int:
    """Runs the whole chain offline on the CPU: tokenizes the embedded corpus (this Python's standard library),
    trains the tiny ladder (four sizes, three budgets each from one WSD-S run per size), fits the Chinchilla law,
    forecasts a held-out model 3.3x larger than the largest rung with a predictive interval, trains that model, and
    prints the forecast against the actual. It writes the ladder's report page, runs/tiny/report/index.html.
    Re-running reuses every finished rung.

    Example: ladder demo
    """
    from ladder.demo import run_demo

    return run_demo(cfg)


def plan(cfg, overrides) -> int:
    """Resolves a ladder into its rungs without training anything: each rung's shape, parameter counts, budgets,
    tokens, FLOPs, batch, learning rate, steps, GPU-hours and evaluation cost, then the target run and what the
    ladder costs against it. Warnings (a rung that would repeat its data, a shape that misses its size) come before
    any job. format=json gives the same as JSON, warnings included.

    Example: ladder plan ladder=olmo target.params=13e9 target.tokens=5e12 hardware.gpu=a100
    """
    from ladder.plan import format_plan, make_plan, plan_to_dict, with_corpus

    fmt = _format(cfg)
    resolved = with_corpus(make_plan(cfg), _plain(cfg.data))
    if fmt == "json":
        print_json(plan_to_dict(resolved))
    else:
        print(format_plan(resolved))
    return 0


def prepare(cfg, overrides) -> int:
    """Tokenizes the corpus `data` names into cached shards with a manifest (token counts, tokenizer, sha256 of
    every shard, a fingerprint), in parallel pieces that resume when interrupted. A hub corpus is read as far as the
    ladder's longest rung needs. With hydra/launcher=slurm it is submitted as a job instead, which the sweep's
    rungs then wait for.

    Example: ladder prepare data=fineweb_edu data.tokenizer.kind=hf data.tokenizer.name=gpt2
    """
    import time

    from ladder.data import load_manifest
    from ladder.data import prepare as prepare_data
    from ladder.plan import make_plan
    from ladder.sweep.run import launcher_of, submit_prepare

    plan = make_plan(cfg)  # a hub corpus is read as far as the ladder's longest rung needs (data.max_tokens=auto)
    if launcher_of(overrides) in ("slurm", "submitit_slurm"):
        job = submit_prepare(cfg, overrides, plan)
        print(f"data: prepare job {job}; `ladder sweep ... hydra/launcher=slurm` starts the rungs after it"
              if job else "data: already prepared")
        return 0
    started = time.time()
    directory = prepare_data(_plain(cfg.data), needed_tokens=plan.data_tokens)
    manifest = load_manifest(directory)
    if _format(cfg) == "json":
        print_json({"directory": str(directory), **manifest})
        return 0
    tokens, docs = manifest["tokens"], manifest["documents"]
    tokenizer = manifest["tokenizer"]
    print(f"data {manifest['source']['name']}: {human(tokens['train'])} train + {human(tokens['val'])} validation "
          f"tokens from {docs['train'] + docs['val']} documents ({human(manifest['text_bytes'])}B of text)")
    print(f"tokenizer {tokenizer['kind']}{' ' + tokenizer['name'] if tokenizer.get('name') else ''}, vocabulary "
          f"{tokenizer['vocab_size']}, {manifest['dtype']} shards; fingerprint {manifest['fingerprint'][:16]}")
    print(f"{directory} ({time.time() - started:.1f} s)")
    return 0


def train(cfg, overrides) -> int:
    """Trains one rung of the ladder into runs_dir/<ladder>/<rung>/: config.yaml, version.json, metrics.jsonl,
    summary.json, checkpoints and each budget's weights. It resumes from its latest checkpoint, checkpoints and exits
    75 on SIGTERM or SIGUSR1 (Slurm's warning), and refuses a run directory holding another configuration. Off a
    terminal (a Slurm log) it prints a line every train.log_every steps and one per evaluation and budget.

    Example: ladder train rung=tiny-14k 'ladder.budgets=[1e5,2e5]' train.log_every=20
    """
    from ladder.plan import make_plan
    from ladder.train.loop import train_rung

    plan = make_plan(cfg)
    return train_rung(cfg, plan, plan.rung(cfg.rung))


def evaluate(cfg, overrides) -> int:
    """Scores a finished rung's budgets with the eval entries given (tasks or validation corpora), from each
    budget's saved weights, and merges the results into its summary.json, metrics.jsonl and W&B run: for rungs
    trained before a task was added.

    Example: ladder eval rung=tiny-40k 'eval=[next_line]' budget=1xC
    """
    from ladder.plan import make_plan
    from ladder.train.evaluate import eval_rung

    return eval_rung(cfg, make_plan(cfg))


def export(cfg, overrides) -> int:
    """Writes a finished rung's budget as a transformers model and tokenizer directory, so lm-evaluation-harness
    (or anything that reads a Hugging Face checkpoint) scores exactly the weights and tokens ladder scores. Only a
    directory ladder exported may be replaced.

    Example: ladder export rung=tiny-201k budget=2xC out=exports/tiny-201k
    """
    from ladder.plan import make_plan
    from ladder.train.export import export_rung

    out = export_rung(cfg, make_plan(cfg))
    print(f"wrote {out}: lm_eval --model hf --model_args pretrained={out},add_bos_token=True --tasks ...")
    return 0


def sweep(cfg, overrides) -> int:
    """Launches every rung that is not done as a Hydra multirun: in this process (the default), as parallel local
    processes (hydra/launcher=local) or as Slurm jobs (hydra/launcher=slurm, GPUs and time limits from the plan).
    Done, queued and running rungs are skipped, partial ones resume. The data is prepared first (on Slurm, as a job
    the rungs depend on). While it waits it prints a line as each rung starts, finishes or fails; submit_only=true
    returns once the jobs are queued.

    Example: ladder sweep ladder=olmo hydra/launcher=slurm hydra.launcher.partition=gpu submit_only=true
    """
    from ladder.sweep.run import run_sweep

    return run_sweep(cfg, overrides)


def status(cfg, overrides) -> int:
    """One row per rung: its state (pending, queued, running, done, failed, interrupted, or changed: finished with
    another configuration than the ladder's now), budgets done, the validation loss of its last finished budget,
    tokens, tokens/s, MFU, ETA, Slurm job and W&B run; then the data's state. report=true also refreshes the
    ladder's report page from the rungs finished so far.

    Example: ladder status ladder=olmo runs_dir=/scratch/runs
    """
    from ladder.plan import make_plan
    from ladder.sweep.status import data_status, format_data_status, format_status, rung_status

    require(isinstance(cfg.report, bool), f"report={cfg.report!r}: use true (refresh the ladder's report page) or "
                                          f"false")
    plan = make_plan(cfg)
    rows = rung_status(plan, cfg.runs_dir)
    data = data_status(_plain(cfg.data), plan, cfg.runs_dir)
    report = None
    if cfg.report:
        from ladder.report.ladder_page import write_ladder_report
        try:
            report = {"page": str(write_ladder_report(cfg, plan))}
        except LadderError as error:  # nothing to fit yet is no failure of `status`
            report = {"not_written": str(error)}
    if _format(cfg) == "json":
        print_json({"rungs": rows, "data": data, **({"report": report} if report else {})})
        return 0
    print(format_status(rows))
    print(format_data_status(data))
    if report:
        print(f"report: {report['page']} (from the rungs finished so far)" if "page" in report else
              f"report: not written yet: {report['not_written']}")
    return 0


def report(cfg, overrides) -> int:
    """Writes the ladder's report, one self-contained HTML page (and report.md): the plan and its cost, every
    loss curve, the fit and its residuals, the forecast with each part of its interval, the rolling backtest, the
    task forecast, and the forecast as rungs landed.

    Example: ladder report ladder=tiny
    """
    from ladder.plan import make_plan
    from ladder.report.ladder_page import write_ladder_report

    page = write_ladder_report(cfg, make_plan(cfg), directory=Path(cfg.out) if cfg.out else None)
    print(f"wrote {page} (one file, images inline: open it in a browser or mail it) and "
          f"{page.parent / 'report.md'}")
    return 0


def watch(cfg, overrides) -> int:
    """Places a running or finished run in the band of the curve its forecast promised (a fit with law=curve): each
    evaluation inside or outside, since when it left the band and by how much, and its final loss forecast from the
    part seen so far, with an interval that narrows as the run proceeds. A second per call: run it every few minutes.

    Example: ladder watch watch.forecast=fits/curve watch.run=runs/tiny-heldout/tiny-665k
    """
    from ladder.fit.watch import format_watch, load_curve, observe, watch as watch_run

    require(cfg.watch.forecast, "watch.forecast: missing; give the fit directory of a forecast curve "
                                "(ladder fit law=curve out=DIR), e.g. watch.forecast=fits/curve")
    require(cfg.watch.run, "watch.run: missing; give a run directory, a CSV of tokens,loss or a W&B run path")
    curve = load_curve(cfg.watch.forecast, cfg.watch.curve)
    report = watch_run(curve, observe(str(cfg.watch.run)))
    if cfg.watch.plot:
        from ladder.fit.plots import plot_watch
        report["plot"] = str(plot_watch(curve, report, Path(cfg.watch.plot)))
    if _format(cfg) == "json":
        print_json(report)
    else:
        print(format_watch(report))
        if cfg.watch.plot:
            print(f"plot: {report['plot']}")
    return 0


def fit(cfg, overrides) -> int:
    """Fits a scaling law to a CSV (runs=FILE.csv) or to the ladder's runs, forecasts its targets with predictive
    intervals (the coefficients' bootstrap, run-to-run noise and the extrapolation error the rolling backtest
    measures), and writes fit.json, predictions.csv, plots and a report page to `out`. Runs that finished with
    another configuration than the ladder's now are left out unless collect.include_changed=true.

    Example: ladder fit runs=runs.csv law=chinchilla target.params=7e9 target.tokens=1.4e12 backtest=rolling
    """
    from ladder.fit.checks import exclude_runs
    from ladder.fit.collect import include_changed
    from ladder.fit.forecast import input_columns, load_table, resolve_targets, run_fit
    from ladder.fit.laws import LAWS
    from ladder.fit.table import flops_per_nd
    from ladder.plan import make_plan

    fmt = _format(cfg)
    law_options = _plain(cfg.law)
    require(law_options.get("name") in LAWS, f"law={law_options.get('name')}: use one of {', '.join(LAWS)}")
    columns = input_columns(_plain(cfg.columns), law_options)
    law = LAWS[law_options["name"]]
    path = Path(cfg.runs) if cfg.runs else ladder_dir(cfg.runs_dir, cfg.ladder.name)
    columns["params"], params_used = _params_column(cfg, path, columns, overrides)
    table = load_table(path, columns, law.required_columns, curves=bool(cfg.curves or law.reads_curves),
                       plan=make_plan(cfg) if path.is_dir() else None,
                       include_changed=include_changed(cfg.collect.include_changed))
    table, excluded = exclude_runs(table, list(cfg.fit.exclude or []), str(path))
    explicit = {o.lstrip("+").split("=")[0] for o in overrides if o.lstrip("+").startswith("target.")}
    target = _plain(cfg.target)
    if cfg.runs and "target.name" not in explicit:
        target["name"] = None  # a CSV's forecast is not the default ladder's target
    if not explicit and not cfg.runs:
        target = _ladder_target(cfg, columns["params"])  # fitting the ladder's own runs: forecast its target
        explicit = {"target.params", "target.tokens"}
    targets = resolve_targets(target, explicit, cfg.targets, flops_per_nd(table))
    curves = None
    if law.forecasts_curves:  # each target trained under the recipe: its whole curve
        from ladder.fit.curves import target_paths
        targets, curves = target_paths(targets, _plain(cfg.recipe), int(cfg.ladder.seq_len))
    out = Path(cfg.out) if cfg.out else Path("fits") / law_options["name"]
    result = run_fit(table, law_options, targets, int(cfg.bootstrap.n), int(cfg.bootstrap.seed),
                     float(cfg.ci_level), cfg.backtest, out, bool(cfg.plots), source=str(path),
                     interval=_plain(cfg.interval), run_column=str(columns.get("run") or "run"),
                     params_used=params_used, curves=curves,
                     checks={**_plain(cfg.fit), "excluded": excluded, "params_column": columns["params"]})
    if fmt == "json":
        print_json(result)
    else:
        print(format_fit(result))
        print(f"\nwrote {out / 'fit.json'}, {out / 'predictions.csv'} and {len(result.get('plots', []))} plots")
    if cfg.plots:
        from ladder.report.ladder_page import write_fit_page
        page = write_fit_page(result, out)
        if fmt != "json":
            print(f"report: {page}")
    return 0


def _params_column(cfg, path: Path, columns: dict, overrides) -> tuple[str, str]:
    """(the table's column that is N, what the output says it is). A runs directory, or a CSV that `ladder
    collect` wrote (it has every count), gives the ladder's own convention (ladder.params_convention); a CSV of
    other origin gives the column columns.params names, as the user's count; columns.params=NAME always wins."""
    from ladder.fit.collect import is_collected, params_column
    from ladder.fit.table import Table

    explicit = any(o.lstrip("+").startswith("columns.params=") for o in overrides)
    collected = path.is_dir() or (path.exists() and is_collected(Table.read_csv(path).columns))
    return params_column(cfg.ladder.get("params_convention"), collected, columns["params"], explicit, path.name)


def _ladder_target(cfg, params_column: str) -> dict:
    from ladder.model import ParamCount
    from ladder.plan import resolve_target

    recipe = cfg.recipe
    resolved = resolve_target(cfg.target, cfg.ladder, cfg.flops_convention,
                              ParamCount.named(recipe.params_for, "recipe.params_for"), float(recipe.tokens_per_param))
    convention = ParamCount.of_column(params_column)
    require(convention is not None, f"columns.params={params_column}: forecasting the ladder's target needs N as one "
                                    f"of the counts {', '.join(ParamCount)}")
    return {"name": resolved.name, "params": resolved.counts.by_convention(convention),
            "tokens": resolved.tokens, "flops": None}


def collect(cfg, overrides) -> int:
    """Gathers run directories (or a W&B project, or a CSV) into one tidy CSV: a row per rung and budget with
    every parameter count, tokens, FLOPs, loss and eval column; curves=true adds each intermediate evaluation. A rung
    that finished with another configuration than the ladder's now is left out, and said so, unless
    collect.include_changed=true.

    Example: ladder collect ladder=olmo runs_dir=/scratch/runs out=olmo.csv
    """
    from ladder.fit.collect import collect_runs, collect_wandb, include_changed
    from ladder.fit.table import Table, standard_table

    if cfg.from_wandb:
        table, source = collect_wandb(str(cfg.from_wandb)), f"wandb {cfg.from_wandb}"
    elif cfg.runs and not Path(cfg.runs).is_dir():
        table, source = standard_table(Table.read_csv(cfg.runs), _plain(cfg.columns), str(cfg.runs)), str(cfg.runs)
    else:
        from ladder.plan import make_plan
        path = Path(cfg.runs) if cfg.runs else ladder_dir(cfg.runs_dir, cfg.ladder.name)
        table = collect_runs(path, bool(cfg.curves), make_plan(cfg), include_changed(cfg.collect.include_changed))
        source = str(path)
    if cfg.out:
        table.write_csv(cfg.out)
        print(f"collected {len(table)} rows from {source} into {cfg.out}")
    else:
        print(table.to_csv(), end="")
    return 0


def reproduce(cfg, overrides) -> int:
    """Refits published data beside the published fits: chinchilla (Hoffmann et al.'s points, against Epoch AI's
    and the paper's fits), olmo (the OLMo ladder's two-step forecasts of 13B at 5T tokens), gadre (Gadre et al.'s
    over-training and error laws).

    Example: ladder reproduce chinchilla
    """
    datasets = {"chinchilla": _reproduce_chinchilla, "olmo": _reproduce_olmo, "gadre": _reproduce_gadre}
    require(cfg.dataset in datasets, f"dataset={cfg.dataset}: use one of {', '.join(datasets)}")
    return datasets[str(cfg.dataset)](cfg)


def _reproduce_chinchilla(cfg) -> int:
    from ladder.fit.forecast import run_fit
    from ladder.fit.reproduce import EPOCH_CI, PUBLISHED, chinchilla_csv, load_chinchilla
    from ladder.fit.table import Table

    table = load_chinchilla(chinchilla_csv(cfg.path))
    law_options = {**_plain(cfg.law), "name": "chinchilla"} if cfg.law.name == "chinchilla" else {"name": "chinchilla"}
    out = Path(cfg.out) if cfg.out else None
    empty = Table({"name": [], "params": [], "tokens": [], "flops": []})
    result = run_fit(table, law_options, empty, int(cfg.bootstrap.n), int(cfg.bootstrap.seed), float(cfg.ci_level),
                     out=out, plots=bool(cfg.plots), source="Chinchilla (Epoch AI extraction)")
    if _format(cfg) == "json":
        print_json({"ours": result, "published": PUBLISHED, "epoch_ci": EPOCH_CI})
        return 0
    names = ["E", "A", "B", "alpha", "beta"]
    header = ["", *names, "objective"]
    rows = [["ours", *[f"{result['coefficients'][n]:.5g}" for n in names], f"{result['objective']['value']:.8f}"]]
    if result["ci"]:
        rows.append([f"ours {result['ci_level']:.0%} CI",
                     *[f"{result['ci'][n][0]:.4g}-{result['ci'][n][1]:.4g}" for n in names], ""])
    rows += [[name, *[f"{values[n]:.5g}" for n in names], ""] for name, values in PUBLISHED.items()]
    rows.append(["Epoch 95% CI", *[f"{EPOCH_CI[n][0]:.4g}-{EPOCH_CI[n][1]:.4g}" for n in names], ""])
    print(f"Chinchilla refit on {result['n_points']} points (5 highest losses dropped), Huber delta "
          f"{result['objective']['delta']}, {result['objective']['n_starts']} starts, "
          f"{result['bootstrap']['n']} bootstrap resamples\n")
    print(format_table(header, rows))
    return 0


def _reproduce_olmo(cfg) -> int:
    """The OLMo ladder's two-step forecasts of 13B-5T from its 16 runs, beside the paper's (chained_main.csv)."""
    from ladder.fit.laws import make_law
    from ladder.fit.reproduce import (OLMO_PUBLISHED_13B, OLMO_TARGETS, OLMO_TASKS, load_olmo_task,
                                      olmo_runs_dir)
    from ladder.fit.table import Table

    directory = olmo_runs_dir(cfg.path)
    params, tokens = OLMO_TARGETS["13B-5T"]
    rows = []
    for task, (_, chance) in OLMO_TASKS.items():
        law = make_law({"name": "two_step", "step2": {"minimum": chance}}).fit(load_olmo_task(directory, task))
        task_loss, accuracy = law.predict_all(Table({"params": [params], "tokens": [tokens]}))
        rows.append({"task": task, "task_loss": float(task_loss.value[0]), "accuracy": float(accuracy.value[0]),
                     "published": OLMO_PUBLISHED_13B[task]})
    if _format(cfg) == "json":
        print_json({"target": "13B-5T", "rows": rows})
        return 0
    print(f"OLMo ladder (Bhagia et al. 2024): two-step forecasts of 13B at 5T tokens from the 16 runs in {directory}\n")
    print(format_table(["task", "task loss", "accuracy", "published", "difference"],
                       [[r["task"], f"{r['task_loss']:.5f}", f"{r['accuracy']:.5f}", f"{r['published']:.5f}",
                         f"{r['accuracy'] - r['published']:+.1e}"] for r in rows]))
    return 0


def _reproduce_gadre(cfg) -> int:
    """Gadre et al. 2024's over-training law and error law on their five default runs, beside their errors."""
    from ladder.fit.laws import make_law
    from ladder.fit.reproduce import (GADRE_ERROR_RUNS, GADRE_PUBLISHED, GADRE_RUNS, GADRE_TARGETS, gadre_rows,
                                      gadre_table)
    from ladder.fit.table import Table

    raw = gadre_table(cfg.path)

    def table(rows, loss=None):
        return Table({"params": raw["N_params"][rows], "tokens": raw["D_tokens"][rows],
                      "loss": raw["loss_c4_val"][rows] if loss is None else loss, "err_avg17": raw["err_avg17"][rows]})

    targets = gadre_rows(raw, GADRE_TARGETS)
    loss_law = make_law({"name": "chinchilla", "tie_exponents": True, "objective": "mse"})
    loss = loss_law.fit(table(gadre_rows(raw, GADRE_RUNS))).predict(table(targets)).value
    error_law = make_law({"name": "exp_error", "error": "err_avg17"}).fit(table(gadre_rows(raw, GADRE_ERROR_RUNS)))
    error = error_law.predict(table(targets, loss=loss)).value
    ours = {"loss": np.abs(loss / raw["loss_c4_val"][targets] - 1),
            "err_avg17": np.abs(error / raw["err_avg17"][targets] - 1)}
    if _format(cfg) == "json":
        print_json({"ours": {k: v.tolist() for k, v in ours.items()}, "published": GADRE_PUBLISHED})
        return 0
    print("Gadre et al. 2024 (RedPajama, C4 eval loss): relative errors at the targets\n")
    body = [[f"{name} M={m}", quantity, f"{GADRE_PUBLISHED[quantity][i]:.4%}", f"{ours[quantity][i]:.4%}"]
            for quantity in ("loss", "err_avg17") for i, (name, m) in enumerate(GADRE_TARGETS)]
    print(format_table(["target", "quantity", "published", "ours"], body))
    return 0


def design(cfg, overrides) -> int:
    """Searches candidate ladders (largest rung, number of sizes, budgets, seeds, recipes) by simulating each one's
    forecast of the target under a prior law, prints the frontier of cost against forecast error, and writes the
    cheapest ladder that meets design.error as a ladder YAML (then: ladder plan ladder=THAT_FILE).

    Example: ladder design target.params=7e9 target.tokens=1.4e12 design.error=0.03 out=designs/7b
    """
    from ladder.config import CONF_DIR, compose_config
    from ladder.design.prior import load_prior
    from ladder.fit.calibrate import IntervalOptions
    from ladder.design.run import format_design, run_design
    from ladder.design.search import DesignOptions
    from ladder.model import ParamCount

    fmt = _format(cfg)
    options = DesignOptions.from_config(_plain(cfg.design))
    require(options.name is None or not (CONF_DIR / "ladder" / f"{options.name}.yaml").exists(),
            f"design.name={options.name}: a built-in ladder has that name; choose another")
    explicit = {o.lstrip("+").split("=")[0] for o in overrides}
    others = [o for o in overrides if o.split("=", 1)[0] != "recipe"]
    recipes = list(options.recipes) or [str(cfg.recipe.name)]
    cfgs = {name: (cfg if name == cfg.recipe.name else compose_config([*others, f"recipe={name}"])) for name in recipes}
    if "target.flops" in explicit and not explicit & {"target.params", "target.tokens", "target.preset"}:
        # compute alone: the target is the prior law's compute-optimal size at that compute
        require(options.params is ParamCount.total, f"target.flops alone: the compute-optimal size is in the "
                                                    f"prior's N; with design.params={options.params.name} give "
                                                    f"target.params too")
        flops = float(cfg.target.flops)
        prior = load_prior(options.prior)
        require(prior.law == "chinchilla", f"target.flops alone: the compute-optimal size needs a prior of "
                                           f"law=chinchilla, not law={prior.law}; give target.params and target.tokens")
        n_opt = _compute_optimal_params(prior.readable(), flops)
        for c in cfgs.values():
            c.target.params, c.target.preset, c.target.tokens = float(f"{n_opt:.3g}"), None, None
            c.target.name = f"optimal-{flops:.3g}F".replace("+", "")
    out = Path(cfg.out) if cfg.out else None
    result = run_design(cfgs, options, float(cfg.ci_level), out, IntervalOptions.from_config(_plain(cfg.interval)),
                        " ".join(overrides), target_cfg=cfg)
    if fmt == "json":
        print_json({k: v for k, v in result.items() if k != "frontier_rows"})
    else:
        print(format_design(result))
        print(f"wrote {', '.join(result['files'])}")
    return 0 if "chosen" in result else 1


def tune(cfg, overrides) -> int:
    """Sweeps the learning rate (and on request the batch, warmup and beta2) at the ladder's smallest sizes, fits
    LR_opt(N, D) with intervals, and writes a tuned recipe YAML with a report. The runs go through the sweep's
    launcher; run the same command again once they are done to fit.

    Example: ladder tune ladder=tiny tune.sizes=[tiny-14k,tiny-40k] hydra/launcher=local
    """
    from ladder.config import CONF_DIR, compose_config
    from ladder.io import atomic_write_json
    from ladder.tune.grid import TuneOptions
    from ladder.tune.report import format_tune, recipe_yaml, write_report
    from ladder.tune.run import run_tune

    options = TuneOptions.from_config(_plain(cfg.tune))
    name = options.name or f"{cfg.recipe.name}-tuned"
    require(not (CONF_DIR / "recipe" / f"{name}.yaml").exists(),
            f"tune.name={name}: a built-in recipe has that name; choose another")
    out = Path(cfg.out) if cfg.out else Path("tunes") / str(cfg.ladder.name)
    result = run_tune(cfg, overrides, options, out, compose_config)
    if "submitted" in result:
        print(f"submitted {result['submitted']} runs; follow with ladder status ladder={result['ladder_file']} "
              f"runs_dir={out / 'runs'}, and when they are done run the same ladder tune command again")
        return 0
    result["recipe_yaml"] = str(out / "recipe" / f"{name}.yaml")
    atomic_write_text(Path(result["recipe_yaml"]), recipe_yaml(result, _plain(cfg.recipe), name, " ".join(overrides)))
    result["files"] = [result["recipe_yaml"], *write_report(result, out)]
    atomic_write_json(out / "tune.json", result)
    if _format(cfg) == "json":
        print_json(result)
    else:
        print(format_tune(result))
        print(f"\nwrote {out / 'tune.json'}, {', '.join(result['files'])}\n"
              f"use it: ladder plan ladder={cfg.ladder.name} recipe={result['recipe_yaml']}")
    return 0


def _compute_optimal_params(law: dict, flops: float) -> float:
    """argmin over N of E + A/N^alpha + B/(C/6N)^beta (Hoffmann et al. 2022, eq. 4)."""
    alpha, beta = law["alpha"], law["beta"]
    g = (alpha * law["A"] / (beta * law["B"])) ** (1 / (alpha + beta))
    return float(g * (flops / 6) ** (beta / (alpha + beta)))

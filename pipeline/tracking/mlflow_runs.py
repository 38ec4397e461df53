"""MLflow: where runs go, what a run records, and the UI over the same store."""

import hashlib
import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import mlflow
from omegaconf import DictConfig, OmegaConf

from pipeline.report import charts
from pipeline.models import export
from pipeline.tracking import stores

# used from here too
from pipeline.tracking.stores import absolute, probe, tracking_uri  # noqa: F401
from pipeline.tracking.datasets import log_datasets
from pipeline.core.errors import no_space_error
from pipeline.core.names import Attr, Fig, higher_is_better
from pipeline.models.zoo import model_label

# tracking.redact is used across the package
from pipeline.core.redaction import redact  # noqa: F401
from pipeline.report.sweep_report import confusion_figure, learning_curves_figure, plt
from pipeline.models.scores import per_class_metrics

log = logging.getLogger(__name__)


class RaisedNext(logging.Filter):
    """MLflow logs a database error with its traceback, then raises it: on a full disk the command
    says it in one line, so the record is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and no_space_error(record.exc_info[1]))


logging.getLogger("mlflow.store.db.utils").addFilter(RaisedNext())
# no bar for one small download
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# the values MLflow's UI reads
EXPERIMENT_KIND, MODEL_DEVELOPMENT = "mlflow.experimentKind", "custom_model_development"
QUIET_LOGGERS = ("mlflow.store.db.utils", "alembic")
NOTE = "mlflow.note.content"  # a run's description in the MLflow UI (Markdown)
TRIAL_ENTRY = "rnn-sweep trial"  # the entry tag of a sweep's trial runs
# an experiment tag: the runs-list view ?viewStateShareKey= opens
SHARED_VIEW = "mlflow.sharedViewState."
MODEL_FIGURES = ("best_", "test_")  # per-run figures of the stored model: linked to its LoggedModel


def trial_run_name(number: int, cfg: DictConfig) -> str:
    """A trial's run name says what it trained: t3-lstm32-lr4.5e-3, t0-average_pooling-lr1e-3."""
    label = model_label(cfg.model)
    if cfg.model.body != "pooling":
        label = label.replace(cfg.model.body, f"{cfg.model.body}{cfg.model.units}", 1)
    mantissa, exponent = f"{cfg.optimizer.learning_rate:.1e}".split("e")
    return f"t{number}-{label}-lr{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def local_artifact_root(cfg: DictConfig) -> str | None:
    """Artifacts of the local store live beside its database; a server decides its own."""
    if cfg.tracking.uri:
        return None
    return (absolute(cfg.paths.mlruns_dir) / "artifacts").as_uri()


def configure(cfg: DictConfig, also_check: tuple[stores.Store, ...] = ()) -> str:
    """Point MLflow at the configured store and experiment (created on first use); return the
    experiment id.

    First `paths.*`, the MLflow store and `also_check` (the sweep's Optuna store) are probed without
    writing; the store is then created or opened under its lock (pipeline/stores.py)."""
    uri = tracking_uri(cfg)
    store = probe(cfg, also_check)
    # their INFO lines ("Creating initial MLflow database tables...") are no news
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    with stores.opening(store):
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.get_experiment_by_name(cfg.tracking.experiment)
        if experiment is None:
            try:
                experiment_id = mlflow.create_experiment(
                    cfg.tracking.experiment, artifact_location=local_artifact_root(cfg)
                )
            except mlflow.exceptions.MlflowException:  # another worker created it a moment ago
                experiment_id = mlflow.get_experiment_by_name(cfg.tracking.experiment).experiment_id
        else:
            experiment_id = experiment.experiment_id
        mark_model_development(experiment_id, experiment)
        mlflow.set_experiment(experiment_id=experiment_id)
    log.info("MLflow: %s, experiment %r", redact(uri), cfg.tracking.experiment)
    return experiment_id


def mark_model_development(experiment_id: str, experiment=None) -> None:
    """MLflow 3.17's UI opens an experiment on its GenAI pages unless it is marked as model
    training."""
    if experiment is None or EXPERIMENT_KIND not in experiment.tags:  # a kind someone chose is kept
        try:
            mlflow.MlflowClient().set_experiment_tag(
                experiment_id, EXPERIMENT_KIND, MODEL_DEVELOPMENT
            )
        # a server's INSERT lost the race to a worker that started with us
        except mlflow.exceptions.MlflowException:
            if EXPERIMENT_KIND not in mlflow.get_experiment(experiment_id).tags:
                raise


def flat_params(cfg: DictConfig, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """The resolved config as `group.key` -> value strings, secrets redacted, top-level `skip` keys
    left out."""
    flat = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = redact(str(node))

    walk({k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in skip}, "")
    return flat


def log_config(cfg: DictConfig, skip: tuple[str, ...] = ()) -> None:
    """Params = the flattened resolved config (less `skip`); artifact config.yaml = the whole config
    as YAML."""
    mlflow.log_params(flat_params(cfg, skip))
    mlflow.log_text(redact(OmegaConf.to_yaml(cfg, resolve=True)), "config.yaml")


def run_tags(cfg: DictConfig, entry: str) -> dict[str, str]:
    """Tags to filter and group runs by in the MLflow UI."""
    return {
        "entry": entry,
        "data": cfg.data.name,
        "model": model_label(cfg.model),  # what was trained, whichever preset it started from
        "body": cfg.model.body,
        "optimizer": cfg.optimizer._target_.rsplit(".", 1)[-1].lower(),
    }


def log_data(data, cfg: DictConfig) -> None:
    """How the data was prepared (cache hit or miss, seconds, sizes), its vocabulary, and the splits
    the run uses as MLflow dataset inputs (training, validation, and test when the run is scored on
    it)."""
    log_datasets(
        data, cfg.data, ("train", "val", "test") if cfg.train.evaluate_test else ("train", "val")
    )
    mlflow.set_tag("data_cache", "hit" if data.cache_hit else "miss")
    mlflow.log_metrics(
        {"prep_seconds": data.prep_seconds}
        | {f"empty_texts_{split}": n for split, n in data.empty_texts.items()}
    )
    mlflow.log_params(
        {f"data_size.{split}": size for split, size in data.sizes().items()}
        | {"vocab_size": data.vocab_size}
        | {"num_classes": data.num_classes, "classes": ", ".join(data.class_names)[:6000]}
    )
    if data.vocabulary:
        mlflow.log_text("\n".join(data.vocabulary), "vocabulary.txt")


def log_training(result, data, cfg: DictConfig, title: str | None) -> str | None:
    """Per-run figures as metrics; learning curves as an artifact titled `title` (None: not here; a
    sweep trial's is drawn by pipeline/charts.py); the model as an MLflow model whose id is returned
    (None with train.log_model=false). The best-epoch and test figures are linked to the model."""
    model_figures = {
        name: float(value)
        for name, value in result.summary.items()
        if name.startswith(MODEL_FIGURES)
    }
    mlflow.log_metrics(
        {name: float(value) for name, value in result.summary.items() if name not in model_figures}
    )
    if title is not None:
        figure = learning_curves_figure(result.history, title, result.summary.get(Fig.chance_loss))
        mlflow.log_figure(figure, charts.ARTIFACT)
        plt.close(figure)
    model_id = None
    if cfg.train.log_model:
        started = time.perf_counter()
        model_id = export.log_model(
            result.model, data, cfg.data, int(result.summary.get("best_epoch", 0))
        )
        mlflow.log_metric("log_model_seconds", time.perf_counter() - started)
    mlflow.log_metrics(model_figures, model_id=model_id)
    if result.test_report is not None:
        log_test_report(result.test_report, mlflow.active_run().info.run_id, model_id)
    return model_id


def log_test_report(report: dict, run_id: str, model_id: str | None = None) -> None:
    """The test split's per-class scores on `run_id`: one metric per class and score,
    test_report.json, and confusion_matrix.png with the class names."""
    client = mlflow.MlflowClient()
    for name, value in per_class_metrics(report).items():
        client.log_metric(run_id, name, value, model_id=model_id)
    client.log_metric(run_id, Fig.test_macro_f1, report["macro_f1"], model_id=model_id)
    client.log_dict(run_id, report, "test_report.json")
    figure = confusion_figure(report)
    client.log_figure(run_id, figure, "confusion_matrix.png")
    plt.close(figure)


def describe_run(text: str, run_id: str | None = None) -> None:
    """The run's description in the MLflow UI (Markdown)."""
    if run_id:
        mlflow.MlflowClient().set_tag(run_id, NOTE, text)
    else:
        mlflow.set_tag(NOTE, text)


def end_stale_runs(trial_attrs: dict) -> None:
    """A dead worker's trial run and sweep run stay RUNNING in MLflow: mark them KILLED."""
    client = mlflow.MlflowClient()
    for key in (Attr.mlflow_run_id, Attr.mlflow_parent_run_id):
        run_id = trial_attrs.get(key)
        if run_id and client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="KILLED")
            log.info("MLflow run %s of a dead worker marked KILLED", run_id)


def ui_command(cfg: DictConfig) -> list[str]:
    uri = tracking_uri(cfg)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    command += ["--host", cfg.tracking.ui_host, "--port", str(cfg.tracking.ui_port)]
    if local_artifact_root(cfg):
        command += ["--default-artifact-root", local_artifact_root(cfg)]
    return command


def run_link(address: str, run) -> str:
    """The run's page in the MLflow UI's model-training view (not the GenAI overview MLflow 3.17
    opens on)."""
    return (
        f"{address.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/"
        f"{run.info.run_id}?workflowType=machine_learning"
    )


def share_trials_view(cfg: DictConfig, experiment_id: str) -> str:
    """Keep the study's trials as a view of the MLflow UI's runs list; return its key. The view
    shows this study's trial runs, best first, with the objective, test accuracy, body, learning
    rate, dropout, plateau and trial state as columns, and every trial in the compare charts (the UI
    draws the first 10 unless told)."""
    study, key = cfg.search.study_name, view_key(cfg.search.study_name)
    best = f"metrics.`{Fig.best(cfg.search.objective)}`"
    columns = [
        best,
        f"metrics.`{Fig.test_accuracy}`",
        "tags.`body`",
        "params.`optimizer.learning_rate`",
        "params.`model.dropout`",
        f"metrics.`{Fig.plateau_epochs}`",
        "tags.`trial_state`",
    ]
    view = {
        "searchFilter": study_filter(study),
        "orderByKey": best,
        "orderByAsc": not higher_is_better(cfg.search.objective),
        "selectedColumns": columns,
        "runsHiddenMode": "SHOW_ALL",
    }
    mlflow.MlflowClient().set_experiment_tag(experiment_id, SHARED_VIEW + key, json.dumps(view))
    return key


def view_key(study: str) -> str:
    """The key of a study's runs-list view: one per study, kept up to date by each of its sweeps. A
    name with other characters than a tag key allows gets a hash, so that `a b` and `a-b` keep two
    views."""
    key = re.sub(r"[^\w.-]+", "-", study)
    return key if key == study else f"{key}-{hashlib.sha256(study.encode()).hexdigest()[:8]}"


def study_filter(study: str) -> str:
    """MLflow's search filter for a study's trial runs (not its sweeps' parent runs or the
    confirmations' seed runs). Its strings cannot hold a quote or a backslash: there, LIKE's `_`
    matches that character."""
    trials = f"tags.entry = '{TRIAL_ENTRY}'"
    if "'" in study or "\\" in study:
        return "tags.study LIKE '" + re.sub(r"['\\\\]", "_", study) + f"' AND {trials}"
    return f"tags.study = '{study}' AND {trials}"


def trials_link(address: str, experiment_id: str, view_key: str, charts: bool = False) -> str:
    """The runs list (or, with `charts`, the compare-charts view) opened on a view share_trials_view
    kept."""
    mode = "&compareRunsMode=CHART" if charts else ""
    return (
        f"{address.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={view_key}{mode}"
        "&workflowType=machine_learning"
    )


def ui_address(cfg: DictConfig) -> str:
    """Where the MLflow UI of the runs is: the tracking server, or rnn-ui's address."""
    if remote_tracking(cfg):
        return cfg.tracking.uri
    return f"http://{cfg.tracking.ui_host}:{cfg.tracking.ui_port}"


def remote_tracking(cfg: DictConfig) -> bool:
    return bool(cfg.tracking.uri) and cfg.tracking.uri.startswith(("http://", "https://"))


def trials_hint(cfg: DictConfig, experiment_id: str, view_key: str) -> str:
    """The lines under ui_hint's that open a sweep's trials: their table and their curves."""
    address = ui_address(cfg)
    return (
        f"  its trials, best first: {redact(trials_link(address, experiment_id, view_key))}\n"
        f"  their curves: {redact(trials_link(address, experiment_id, view_key, charts=True))}"
    )


def ui_hint(cfg: DictConfig, run=None, more: str = "") -> str:
    """What to type to look at the runs: the lines that end a run's output; with `run`, the link to
    its page; `more` (more links) under it."""
    more = f"\n{more}" if more else ""
    if remote_tracking(cfg):
        link = redact(run_link(cfg.tracking.uri, run) if run else cfg.tracking.uri)
        return f"  open {link} in a browser{more}"
    ui = Path(sys.executable).parent / "rnn-ui"
    ui = os.path.relpath(ui) if ui.is_relative_to(Path.cwd()) else str(ui)
    address = ui_address(cfg)
    address = run_link(address, run) if run else address
    overrides = (
        f" paths.mlruns_dir={cfg.paths.mlruns_dir}" if cfg.paths.mlruns_dir != "mlruns" else ""
    )
    plain = "mlflow ui " + " ".join(ui_command(cfg)[4:])
    return (
        f"  {ui}{overrides}        then open {address}{more}\n  (the same without rnnsweep: "
        f"{redact(plain)})"
    )

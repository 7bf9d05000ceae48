# Helpers for every stage: config access, canonical params, scene fan-out, code inputs.
import json
from pathlib import Path


N_ITERATIONS = 2
RUNS = [f"iter{k}" for k in range(N_ITERATIONS + 1)] + ["full"]
# Optional runs, switched on under `ablations:`; the summary adds a table for them.
ABLATION_RUNS = ["iter0_noassoc"] if config.get("ablations", {}).get("association") else []
REPO = Path(workflow.basedir)


def ds_cfg(ds):
    return config["datasets"][ds]


def canonical(value):
    """One JSON string with sorted keys: Snakemake compares params by repr, so key order must not matter."""
    return json.dumps(value, sort_keys=True)


def stage_params(section, seeded=False, **overrides):
    """The config section of one stage (plus the global seed if it draws random numbers), as canonical JSON.

    `overrides` replace keys of the section (an ablation run's one changed setting).
    """
    settings = {**config.get(section, {}), **overrides}
    if seeded:
        settings["seed"] = config["seed"]
    return canonical(settings)


def device():
    return config["device"]


def raw_root(ds):
    """Where the raw dataset lives: produced by the raw_dataset rule, or a user's local root."""
    cfg = ds_cfg(ds)
    if cfg["source"] == "local":
        return cfg["root"]
    return f"resources/{ds}/raw"


def raw_input(wildcards):
    """The raw dataset as a job input; for a local root, its table folder (checked to exist)."""
    cfg = ds_cfg(wildcards.ds)
    if cfg["source"] != "local":
        return f"resources/{wildcards.ds}/raw"
    root = cfg.get("root")
    if not root:
        raise ValueError(f"config key datasets.{wildcards.ds}.root: required when source is 'local'")
    tables = Path(root) / cfg["version"]
    if not tables.is_dir():
        raise FileNotFoundError(
            f"config key datasets.{wildcards.ds}.root: {root} has no '{cfg['version']}/' table folder "
            f"(expected nuScenes tables such as {tables / 'sample.json'})"
        )
    return str(tables)


def code_files(*parts):
    """The library sources a stage imports, as inputs: Snakemake does not track imported modules."""
    files = []
    for part in parts:
        path = REPO / part
        files += sorted(str(p) for p in path.rglob("*.py")) if path.is_dir() else [str(path)]
    return files


def scene_list(ds, split):
    """Scene names of one split, known once the scenes checkpoint has run."""
    scenes_json = checkpoints.scenes.get(ds=ds).output[0]
    with open(scenes_json) as f:
        info = json.load(f)
    if split == "all":
        return info["train"] + info["val"]
    return info[split]


def per_scene(pattern, split):
    """An input function: `pattern` formatted for every scene of `split` of the job's dataset."""

    def inputs(wildcards):
        return [pattern.format(ds=wildcards.ds, scene=s) for s in scene_list(wildcards.ds, split)]

    return inputs


def previous_model(wildcards):
    return f"results/{wildcards.ds}/iter{int(wildcards.k) - 1}/model.pt"


def previous_pseudo(wildcards):
    k = int(wildcards.k)
    return [] if k == 1 else [f"results/{wildcards.ds}/iter{k - 1}/pseudo"]


def all_targets():
    targets = []
    for ds in config["datasets"]:
        targets += [f"results/{ds}/{run}.miou" for run in RUNS + ABLATION_RUNS]
        targets.append(f"results/{ds}/summary.md")
    return targets


TRAIN_CODE = code_files(
    "kernels",
    "weak3d/models",
    "weak3d/train",
    "weak3d/losses",
    "weak3d/metrics.py",
    "weak3d/classes.py",
    "weak3d/config.py",
    "weak3d/io.py",
)


def training_data(wildcards):
    return {
        "scenes": per_scene("results/{ds}/preprocessed/{scene}.h5", "all")(wildcards),
        "labels": per_scene("results/{ds}/weak_labels/{scene}.h5", "train")(wildcards),
        "superpixels": per_scene("results/{ds}/superpixels/{scene}.h5", "train")(wildcards),
    }


def gpus():
    return 0 if config["device"] == "cpu" else 1
